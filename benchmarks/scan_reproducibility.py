"""How much a scan's numbers depend on its chunking and device count (README, "Reproducibility").

Seed i always draws from `fold_in(PRNGKey(key), i)`, so every chunking sees the same random
numbers; what changes is the batch XLA compiles for, and with it the order of floating-point
sums inside batched linear algebra. This script runs the `spikes` experiment (one step, SVD of
F₁, ridge) at n = 1000 with several chunk sizes and with 1 and 2 (virtual CPU) devices, and
records, per output, the largest difference from the chunk-64 run in ulp and relative terms, and
whether the integer outputs (spike counts) agree exactly.

    python benchmarks/scan_reproducibility.py            # writes results/scan-reproducibility.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GRID = {"alpha": [0.25, 0.35]}
PARAMS = {"n": 1000, "n_test": 500}
SEEDS = 64


def run_one(chunk: int, out: str) -> None:
    import jaxfeat as jf

    ds = jf.scan("spikes", GRID, SEEDS, params=PARAMS, chunk_size=chunk, progress=False)
    ds.drop_vars(["finished"]).to_netcdf(out)


def compare(ref, other) -> dict:
    res = {}
    for name in ref.data_vars:
        if name in ("diverged", "finished"):
            continue
        a, b = np.asarray(ref[name].values), np.asarray(other[name].values)
        if a.dtype.kind in "iub":
            res[name] = {"equal": bool(np.array_equal(a, b))}
            continue
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        ulp = np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(a.dtype))
        rel = np.abs(a - b) / np.maximum(np.abs(a), np.finfo(a.dtype).tiny)
        res[name] = {
            "max_ulp": float(ulp.max()) if ulp.size else 0.0,
            "max_rel": float(rel.max()) if rel.size else 0.0,
            "identical_fraction": float(np.mean(a == b)) if a.size else 1.0,
        }
    return res


def main() -> None:
    import xarray as xr

    tmp = tempfile.mkdtemp(prefix="jaxfeat-repro-")
    runs = {f"chunk {c}": (c, "1") for c in (64, 16, 8, 1)} | {"chunk 64, 2 devices": (64, "2")}
    for label, (chunk, devices) in runs.items():
        env = dict(
            os.environ,
            XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
            JAX_PLATFORMS="cpu",
        )
        path = os.path.join(tmp, label.replace(" ", "_").replace(",", "") + ".nc")
        subprocess.run([sys.executable, __file__, "--one", str(chunk), path], env=env, check=True)
        runs[label] = path
    ref = xr.open_dataset(runs["chunk 64"])
    results = {
        "experiment": "spikes",
        "grid": GRID,
        "params": PARAMS,
        "seeds": SEEDS,
        "dtype": str(ref["singular_values"].dtype),
        "against": "chunk 64, 1 device",
        "comparisons": {
            label: compare(ref, xr.open_dataset(path))
            for label, path in runs.items()
            if label != "chunk 64"
        },
    }
    with open(os.path.join(HERE, "results", "scan-reproducibility.json"), "w") as f:
        json.dump(results, f, indent=1)
    shutil.rmtree(tmp)
    for label, comp in results["comparisons"].items():
        worst = max((v.get("max_ulp", 0) for v in comp.values()), default=0)
        ints = all(v.get("equal", True) for v in comp.values())
        print(f"{label:22s} worst {worst:8.0f} ulp; integer outputs equal: {ints}")
        for name, v in comp.items():
            if "max_ulp" in v:
                print(f"    {name:24s} {v['max_ulp']:8.0f} ulp  rel {v['max_rel']:.2e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        run_one(int(sys.argv[2]), sys.argv[3])
    else:
        main()
