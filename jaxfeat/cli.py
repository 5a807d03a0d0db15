"""Command line: `jaxfeat demo`, `jaxfeat hermite ACT`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._checks import InputError, InputTypeError


def _demo(args) -> int:
    import jax

    from . import _demo, plotting

    print("Hermite coefficients c_k = E[σ(z) He_k(z)/√(k!)], z ~ N(0,1):")
    print(_demo.coefficient_table(degree=args.degree))
    widths = [int(w) for w in args.widths.split(",")]
    t0 = time.perf_counter()
    res = _demo.random_features_demo(jax.random.key(args.seed), widths, args.seeds)
    print(
        f"\nrandom-features ensemble: widths {widths} × {args.seeds} seeds, one compiled program "
        f"({time.perf_counter() - t0:.1f} s incl. compile)"
    )
    for w, mse in zip(widths, res["test_mse"]):
        print(
            f"  width {w:5d}: excess test MSE {mse.mean():.4f} ± {mse.std() / len(mse) ** 0.5:.4f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    print(f"figure: {plotting.ensemble_predictions(res, widths, args.out)}")
    return 0


def _hermite(args) -> int:
    from . import activations

    act = activations.get(args.activation)
    c = act.hermite_coefficients(args.degree, args.scale)
    for k, v in enumerate(c):
        print(f"{k:3d} {v: .15e}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxfeat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="print Hermite coefficients; fit and plot a width ensemble")
    p.add_argument("--out", default="out/demo.png", help="figure path (PNG/PDF)")
    p.add_argument("--widths", default="16,64,256", help="comma-separated widths")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--degree", type=int, default=6)
    p.set_defaults(fn=_demo)
    p = sub.add_parser("hermite", help="Hermite coefficients of a named activation")
    p.add_argument("activation")
    p.add_argument("--degree", type=int, default=10)
    p.add_argument("--scale", type=float, default=1.0)
    p.set_defaults(fn=_hermite)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (InputError, InputTypeError) as e:  # our validation; anything else is a bug
        print(f"jaxfeat: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
