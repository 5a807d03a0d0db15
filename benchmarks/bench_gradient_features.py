"""Shi–Wei–Liang Algorithm 1 with its baselines (`gradient_features`), vmapped over seeds in one
compiled call against a per-seed Python loop over the same jitted function.

    python benchmarks/bench_gradient_features.py [--seeds 32] [--dim 64] [--n 500]

One point of the `quick` preset (XOR, |μ| = 3, unit noise, width 128, n = 500, 300 readout
steps, the three kernel baselines with their leave-one-out ridge) at `--dim`: compile
(`lower().compile()`) and one steady run of `jax.jit(jax.vmap(run))` over `--seeds` seeds, then
`--loop-seeds` seeds one by one through `jax.jit(run)` (compiled once, each call blocked). Seconds
per seed both ways and their ratio. The whole-preset wall times are recorded by
`jaxfeat run gradient_features --preset NAME` (README, issue 13); this script adds the
per-seed comparison. Results: `results/gradient_features-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from _timing import block, save

from jaxfeat.experiments import get


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--loop-seeds", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--n", type=int, default=500)
    args = p.parse_args()
    exp = get("gradient_features")
    params = exp.resolve({"dim": args.dim, "n": args.n})

    def run(key):
        return exp.fn(key, **params)

    keys = jax.random.split(jax.random.key(0), args.seeds)
    t0 = time.perf_counter()
    batched = jax.jit(jax.vmap(run)).lower(keys).compile()
    compile_vmap = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = block(batched(keys))
    steady_vmap = time.perf_counter() - t0

    single = jax.jit(run)
    t0 = time.perf_counter()
    block(single(keys[0]))
    compile_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in keys[1 : args.loop_seeds + 1]:
        block(single(k))
    loop = (time.perf_counter() - t0) / args.loop_seeds
    err = np.asarray(out["test_error"])
    result = {
        "params": {k: v for k, v in params.items() if k in ("dim", "n", "width", "steps")},
        "seeds": args.seeds,
        "vmap": {
            "compile_s": compile_vmap,
            "steady_s": steady_vmap,
            "s_per_seed": steady_vmap / args.seeds,
        },
        "loop": {"first_call_s": compile_loop, "s_per_seed": loop, "seeds": args.loop_seeds},
        "loop_over_vmap": loop / (steady_vmap / args.seeds),
        "test_error_mean": dict(zip(exp.coords["learner"](params).tolist(), err.mean(0).tolist())),
    }
    print(result)
    save("gradient_features", result)


if __name__ == "__main__":
    main()
