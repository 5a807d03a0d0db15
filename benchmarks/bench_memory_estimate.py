"""How close the scan engine's pre-compile memory estimate is to XLA's count.

`jf.scan` sizes a chunk from `jaxfeat._scan.liveness.peak_bytes` of the traced chunk program
(no compile), with a margin of `ESTIMATE_MARGIN` against the memory budget, so that each static
point compiles one program. This script traces and compiles the chunk programs of each
registered experiment's `quick` preset (its first static points, 1 and 8 seeds) and records the
estimate, XLA's `memory_analysis` (arguments + outputs + temporaries) and their ratio. A ratio
(estimate / XLA) below 1/ESTIMATE_MARGIN would let a budget-sized chunk outgrow its budget (the
engine then measures, shrinks and compiles again).

    python benchmarks/bench_memory_estimate.py [--names spikes,local_convergence,...]

Writes `results/memory_estimate-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import time

import jax
from _timing import save

from jaxfeat._scan.liveness import peak_bytes
from jaxfeat._scan.plan import Plan
from jaxfeat._scan.program import ESTIMATE_MARGIN, Runner
from jaxfeat.experiments import _experiment

NAMES = "spikes,local_convergence,teacher_student,gradient_features,random_features"


def measure(name: str, batches=(1, 8), static_points: int = 2) -> list[dict]:
    preset = _experiment.get(name).presets["quick"]
    plan = Plan(name, preset["grid"], 64, preset.get("set", {}), 0, None)
    runner = Runner(plan, chunk_size=1, memory_budget="2GiB", buckets="off")
    rows = []
    for s in range(min(static_points, len(plan.static_points))):
        for b in batches:
            t0 = time.perf_counter()
            traced = runner._trace(runner.program_of[s], b)
            est = peak_bytes(traced.jaxpr)
            t1 = time.perf_counter()
            mem = traced.lower().compile().memory_analysis()
            xla = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
            rows.append({
                "static_point": s,
                "batch": b, "estimate_bytes": est, "xla_bytes": int(xla),
                "estimate_over_xla": est / xla, "trace_and_estimate_s": t1 - t0,
                "compile_s": time.perf_counter() - t1,
            })  # fmt: skip
            ratio = rows[-1]["estimate_over_xla"]
            mib = f"estimate {est / 2**20:8.2f} MiB, XLA {xla / 2**20:8.2f} MiB"
            print(f"{name:18s} s={s} batch={b}: {mib}, ratio {ratio:.2f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", default=NAMES)
    args = p.parse_args()
    result = {"margin": ESTIMATE_MARGIN, "experiments": {}}
    for name in args.names.split(","):
        result["experiments"][name] = measure(name)
    ratios = [r["estimate_over_xla"] for rows in result["experiments"].values() for r in rows]
    result["ratio_min"], result["ratio_max"] = min(ratios), max(ratios)
    print(f"estimate / XLA: {min(ratios):.2f} … {max(ratios):.2f} (margin {ESTIMATE_MARGIN})")
    print("wrote", save("memory_estimate", result))
    jax.clear_caches()


if __name__ == "__main__":
    main()
