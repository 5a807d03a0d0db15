"""Zhou–Ge three stages (`jf.local_convergence`) vmapped over seeds in one compiled call.

    python benchmarks/bench_local_convergence.py [--seeds 64] [--big-seeds 4] [--scan-seeds 1000]

Three set-ups (issue 12's benchmark). The first two are timed as compile (`lower().compile()`)
and one steady run of `jax.jit(jax.vmap(...))` with `block_until_ready` (DESIGN §6.11; one
run, not five: a run is a minute here):

- **quick**: the `quick` preset's three stages (d = 20, teachers a* = (1, .8, 1.2, −.9), width
  50, stage 3 at lr 0.6 for 6 phases × 1,000 steps, logged every 125), decay and the control,
  `--seeds` seeds each; throughput in (seed, decay) runs per second, extrapolated linearly to
  the issue's 1,000 seeds (2,000 runs) against its 5-minute target;
- **big**: d = 100, 8 orthonormal teachers, width 256, the same stage-3 schedule, decay only,
  `--big-seeds` seeds: seconds per seed.

- **scan**: the whole `quick` preset at `--scan-seeds` seeds through `jf.scan` (what
  `jaxfeat run local_convergence --seeds 1000` does, in memory): wall time with compiling,
  its chunk size and workers: the issue's target is 5 minutes for 1,000 seeds on 2 CPU cores.

All report the fraction of seeds `recovered` (so a faster schedule that stopped recovering
would show). Results: `results/local_convergence-PLATFORM[-x64].json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from _timing import block, machine

import jaxfeat as jf
from jaxfeat._scan.program import default_workers
from jaxfeat.experiments import get

BIG_TEACHER = (1.0, 0.8, 1.2, -0.9, 1.1, -0.7, 0.9, -1.0)


def timed(fn, *args) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = block(compiled(*args))
    return {"compile_s": compile_s, "steady_s": time.perf_counter() - t0}, out


def summary(out) -> dict:
    rec = np.asarray(out["recovered"], float)
    far = np.asarray(out["far_mass"], float)
    return {
        "recovered": rec.mean(axis=0).tolist(),
        "recovered_se": (rec.std(axis=0, ddof=1) / np.sqrt(rec.shape[0])).tolist(),
        "far_mass_median": np.median(far, axis=0).tolist(),
        "diverged": int(np.sum(out["diverged"])),
    }


def whole_scan(seeds: int) -> dict:
    """The quick preset through the scan engine, compile included."""
    exp = get("local_convergence")
    preset = exp.presets["quick"]
    t0 = time.perf_counter()
    ds = jf.scan(exp, preset["grid"], seeds, params=preset["set"], progress=False)
    wall = time.perf_counter() - t0
    rec = ds["recovered"].values.astype(float)  # (decay, seed), decay = (1, 0)
    return {
        "seeds": seeds,
        "wall_s": wall,
        "chunk_size": int(ds.attrs["chunk_size"]),
        "workers": default_workers(jax.devices()[:1]),
        "recovered": rec.mean(axis=1).tolist(),
        "recovered_se": (rec.std(axis=1, ddof=1) / np.sqrt(seeds)).tolist(),
        "diverged": int(ds["diverged"].values.sum()),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--big-seeds", type=int, default=4)
    p.add_argument("--scan-seeds", type=int, default=1000)
    p.add_argument("--x64", action="store_true")
    args = p.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    quick = get("local_convergence").presets["quick"]["set"]
    cfg = {k: v for k, v in quick.items() if k != "log_every"}
    keys = jax.random.split(jax.random.key(0), args.seeds)
    decays = jnp.array([1.0, 0.0])

    def run_quick(keys, decays):
        one = lambda k, d: jf.local_convergence(  # noqa: E731
            k, decay=d, log_every=quick["log_every"], per_neuron=False, **cfg
        )
        return jax.vmap(jax.vmap(one, (None, 0)), (0, None))(keys, decays)

    t_quick, out = timed(run_quick, keys, decays)
    runs = 2 * args.seeds
    t_quick["runs"] = runs
    t_quick["runs_per_s"] = runs / t_quick["steady_s"]
    t_quick["extrapolated_1000_seeds_s"] = 2000 / t_quick["runs_per_s"] + t_quick["compile_s"]
    res = {"quick": {"set_up": {**cfg, "seeds": args.seeds}, **t_quick, **summary(out)}}
    print(json.dumps(res["quick"], indent=1))

    bkeys = jax.random.split(jax.random.key(1), args.big_seeds)
    big = dict(dim=100, teacher=BIG_TEACHER, width=256, per_neuron=False, **cfg)

    def run_big(keys):
        return jax.vmap(lambda k: jf.local_convergence(k, **big))(keys)

    t_big, out = timed(run_big, bkeys)
    t_big["s_per_seed"] = t_big["steady_s"] / args.big_seeds
    res["big"] = {"set_up": {**big, "seeds": args.big_seeds}, **t_big, **summary(out)}
    print(json.dumps(res["big"], indent=1))
    if args.scan_seeds:
        res["scan"] = whole_scan(args.scan_seeds)
        print(json.dumps(res["scan"], indent=1))
    res["dtype"] = str(jnp.zeros(()).dtype)
    name = "local_convergence" + ("-x64" if args.x64 else "")
    path = os.path.join(
        os.path.dirname(__file__), "results", f"{name}-{jax.devices()[0].platform}.json"
    )
    with open(path, "w") as f:
        json.dump({"machine": machine(), **res}, f, indent=2)
    print(path)


if __name__ == "__main__":
    main()
