"""Scan-engine throughput against the chunk size and the chunks in flight (`workers`).

    python benchmarks/bench_scan_throughput.py [--seeds 256] [--steps 150]

The `local_convergence` quick preset (d = 20, 4 teachers, width 50, decay and control) with
stage 3 shortened to 6 phases × `--steps` steps, through `jf.scan` in memory: for each chunk
size (in seeds; a chunk vmaps seeds × the 2 decay values) and each `workers`, the scan's wall
time spent computing chunks (`ds.attrs["compute_seconds"]`: the chunk loop less its tracing
and compiling), in µs per seed-step of stage 3 and extrapolated to the issue's 1,000 seeds at 1,000
steps a phase. Results:
`results/scan-throughput-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
from _timing import machine

import jaxfeat as jf
from jaxfeat.experiments import get


def timed(exp, grid, seeds, params, chunk, workers) -> float:
    kw = dict(params=params, chunk_size=chunk, workers=workers, progress=False)
    return jf.scan(exp, grid, seeds, **kw).attrs["compute_seconds"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=256)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--chunks", default="16,64,128")
    p.add_argument("--workers", default="1,2")
    args = p.parse_args()
    exp = get("local_convergence")
    preset = exp.presets["quick"]
    params = preset["set"] | {"steps_per_phase": args.steps, "log_every": args.steps // 6}
    params["per_neuron"] = False
    seed_steps = 2 * args.seeds * 6 * args.steps
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        for chunk in [int(c) for c in args.chunks.split(",")]:
            wall = timed(exp, preset["grid"], args.seeds, params, chunk, workers)
            row = {
                "workers": workers,
                "chunk_seeds": chunk,
                "chunk_runs": 2 * chunk,
                "wall_s": wall,
                "us_per_seed_step": 1e6 * wall / seed_steps,
                "extrapolated_1000_seeds_s": wall / args.seeds * 1000 * 1000 / args.steps,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    res = {
        "machine": machine(),
        "set_up": {**params, "seeds": args.seeds},
        "rows": rows,
        "note": "wall_s: jf.scan's compute_seconds (chunk loop less tracing and compiling)",
    }
    path = os.path.join(
        os.path.dirname(__file__), "results", f"scan-throughput-{jax.devices()[0].platform}.json"
    )
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
    print(path)


if __name__ == "__main__":
    main()
