"""The matrix-free scale path of the one-step experiment: seconds per seed and peak memory.

    python benchmarks/bench_spectrum_scale.py                # CPU: ñ = n = 2·10⁴, d = N = 5·10³
    python benchmarks/bench_spectrum_scale.py --check-dense         # + dense reference, same rows
    python benchmarks/bench_spectrum_scale.py --n 100000 --dim 25000 --compile-only   # memory plan
    python benchmarks/bench_spectrum_scale.py --n 100000 --dim 25000 --alpha 0.41 \\
        --activation elu --seeds 2                                   # GPU goal: ≤ 10 s per seed

One seed is `one_step_spikes(..., tile=T)`: the step's n samples and the ñ feature rows are drawn
tile by tile and never stored; the spike statistics come from the lockstep block Krylov on
`LazyFeatures` (1 statistics pass + `iters` passes, each recomputing σ(X̃_t W₁ᵀ)). Memory is
W₀, W₁ (N×d) plus tiles, independent of n and ñ. Reported:

- `compile_s` and the compiler's buffer plan (`memory_analysis`: arguments + outputs + temps),
  which on an accelerator is the device memory the program needs;
- `seconds_per_seed` after a warm-up seed, and the process's peak RSS (on CPU the device memory
  is host memory, so this is the measured peak);
- with `--check-dense`, the dense `count_spikes` on the same rows materialised (only where F
  fits), and the relative differences of the singular values and of the deflated edge.
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from _timing import block, save

import jaxfeat as jf
from jaxfeat.algorithms import one_step, one_step_spikes
from jaxfeat.rows import SampledRows, materialize
from jaxfeat.spectrum import hermite_features


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="n = ñ (step and feature samples)")
    p.add_argument("--dim", type=int, default=5_000, help="d = N")
    p.add_argument("--tile", type=int, default=2048)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.4)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--activation", default="relu")
    p.add_argument("--seeds", type=int, default=1, help="timed seeds after the warm-up seed")
    p.add_argument("--compile-only", action="store_true", help="memory plan without running")
    p.add_argument("--check-dense", action="store_true")
    p.add_argument("--tag", default="", help="suffix of the results file name")
    args = p.parse_args()

    n, d = args.n, args.dim
    dist = jf.data.SingleIndex(np.eye(1, d)[0], [0, 1.0, 0.5 * np.sqrt(2)], noise=0.1)
    kw = dict(
        n=n, width=d, activation=args.activation, output_scale="1/sqrt(width)", tile=args.tile
    )

    @jax.jit
    def seed(key, alpha):
        return one_step_spikes(
            key, dist, n_tilde=n, alpha=alpha, c=args.c, k=args.k, iters=args.iters, **kw
        )

    rss0 = peak_rss_gib()
    key0 = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = seed.lower(key0, jnp.float32(args.alpha)).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    plan = {
        "argument_bytes": mem.argument_size_in_bytes,
        "output_bytes": mem.output_size_in_bytes,
        "temp_bytes": mem.temp_size_in_bytes,
        "total_gib": (
            mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
        )
        / 2**30,
    }
    result = {
        "config": {**vars(args), "n_tilde": n, "N": d, "dtype": str(jnp.zeros(()).dtype)},
        "compile_s": compile_s,
        "memory_plan": plan,
        "W_bytes_each": d * d * jnp.zeros(()).dtype.itemsize,
    }
    print(f"compiled in {compile_s:.1f} s; buffer plan {plan['total_gib']:.2f} GiB")
    if not args.compile_only:
        t0 = time.perf_counter()
        out = block(compiled(key0, jnp.float32(args.alpha)))
        result["first_seed_s"] = time.perf_counter() - t0
        times, last = [], key0
        for s in range(1, args.seeds + 1):
            last = jax.random.key(s)
            t0 = time.perf_counter()
            out = block(compiled(last, jnp.float32(args.alpha)))
            times.append(time.perf_counter() - t0)
        result["seconds_per_seed"] = float(np.median(times)) if times else None
        result["runs_s"] = times
        result["peak_rss_gib"] = peak_rss_gib()
        result["rss_before_gib"] = rss0
        result["stats_last_seed"] = {
            k: np.asarray(v).tolist() for k, v in out.items() if np.size(v) <= 16
        }
        print(
            f"first seed {result['first_seed_s']:.1f} s, steady {result['seconds_per_seed']} s per"
            f" seed, peak RSS {result['peak_rss_gib']:.2f} GiB;"
            f" spikes {int(out['n_outliers'])}, top sv {np.asarray(out['singular_values'])[:3]},"
            f" deflated edge {float(out['deflated_edge']):.2f}"
        )
        if args.check_dense:
            result["dense_check"] = dense_check(dist, args, kw, last, out)
            print("dense check:", result["dense_check"])
    suffix = f"-{args.tag}" if args.tag else ""
    print("saved", save(f"spectrum_scale-n{n}-d{d}{suffix}", result))


def dense_check(dist, args, kw, key, out):
    """The dense statistics on the same rows (the keys `one_step_spikes` uses internally)."""
    k_step, k_feat, _ = jax.random.split(key, 3)
    step = one_step(k_step, dist, alpha=args.alpha, c=args.c, **kw)
    Xt, _ = materialize(SampledRows(dist, args.n, key=jax.random.split(k_feat)[0], tile=args.tile))
    F1 = jf.TwoLayer(step.W1, jnp.zeros(args.dim), step.a, args.activation).features(Xt)
    t0 = time.perf_counter()
    ref = block(
        jax.jit(lambda F, H: jf.count_spikes(F, H, k=args.k))(
            F1, hermite_features(Xt, step.zeta, 8)
        )
    )
    dense_s = time.perf_counter() - t0
    sv, sv_ref = np.asarray(out["singular_values"]), np.asarray(ref["singular_values"])
    outliers = int(ref["n_outliers"])
    return {
        "dense_s": dense_s,
        "n_outliers": [int(out["n_outliers"]), outliers],
        "rel_diff_outlier_sv": float(np.max(np.abs(sv - sv_ref)[:outliers] / sv_ref[:outliers]))
        if outliers
        else 0.0,
        "rel_diff_all_top_k_sv": float(np.max(np.abs(sv - sv_ref) / sv_ref)),
        "rel_diff_deflated_edge": float(
            abs(float(out["deflated_edge"]) - float(ref["deflated_edge"]))
            / float(ref["deflated_edge"])
        ),
        "deflated_edge": [float(out["deflated_edge"]), float(ref["deflated_edge"])],
    }


if __name__ == "__main__":
    main()
