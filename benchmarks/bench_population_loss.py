"""Population loss + gradient (a, W) for m = 4,096 student neurons against 16 teacher neurons.

Closed form (sigma_ge2, relu) and the Hermite/Mehler path (tanh, K = 50), float32 by default.

    python benchmarks/bench_population_loss.py [--students 4096] [--teachers 16] [--dim 64]
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
from _timing import save, time_jitted

import jaxfeat as jf


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--students", type=int, default=4096)
    p.add_argument("--teachers", type=int, default=16)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--degree", type=int, default=50)
    args = p.parse_args(argv)
    out = {"students": args.students, "teachers": args.teachers, "dim": args.dim, "runs": {}}
    for act, method in (("sigma_ge2", "closed_form"), ("relu", "closed_form"), ("tanh", "hermite")):
        s = jf.TwoLayer.init(jax.random.key(0), args.students, args.dim, act, "small")
        t = jf.TwoLayer.init(jax.random.key(1), args.teachers, args.dim, act, "sphere")
        f = eqx.filter_jit(
            eqx.filter_value_and_grad(
                lambda s, t: jf.population_loss(s, t, method=method, degree=args.degree)
            )
        )
        r = time_jitted(f, s, t)
        out["runs"][f"{act}-{method}"] = r
        print(
            f"{act:9s} {method:11s}: loss+grad {r['steady_s'] * 1e3:8.1f} ms steady, "
            f"{r['first_call_s']:.2f} s first call (compile)"
        )
    print("saved", save("population_loss", out))


if __name__ == "__main__":
    main()
