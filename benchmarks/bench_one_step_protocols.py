"""Dandi et al.'s giant-step protocol (the `spikes` experiment's `dandi` preset) against the
authors' NumPy loop: peak memory and wall time of 10 seeds, and the scan engine's overhead.

    python benchmarks/bench_one_step_protocols.py memory [--n 29532] [--seeds 10]
    python benchmarks/bench_one_step_protocols.py overhead [--dim 128] [--seeds 10]

`memory`: each variant runs in a fresh subprocess and reports its peak RSS (`ru_maxrss`):
- `numpy`: the single_step notebook's loop (float64, d = 512, p = 1024, 10⁵ test points),
  transcribed: the authors' code, not jaxfeat's;
- `map_seeds`: `jf.map_seeds(spikes.run, keys, batch_size=1)` on the same protocol (which also
  computes the spike statistics the NumPy loop does not), in float64 and in float32 (jaxfeat's
  default);
- `vmap` (with `--vmap`): `jax.jit(jax.vmap(spikes.run))` over all seeds at once, the 0.2
  recipe that needed 4× the NumPy loop's memory.
Both report the seeds' mean ± sd test error (the notebook printed 0.336 ± 0.006 at n = 3326 and
0.207 ± 0.006 at n = 29532, over other draws). `overhead`: `jf.scan` of the same per-seed
function against a hand-written `jit(vmap)` over the same keys, steady state (second call of
each; the scan's `compute_seconds` and the total). Results:
`results/one_step_protocols-PLATFORM.json` (merged per mode).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def dandi_params(n, dim=512, width=1024, n_test=100_000):
    from jaxfeat.experiments.spikes import DANDI

    return DANDI["set"] | {"n": n, "dim": dim, "width": width, "n_test": n_test}


def numpy_loop(n, seeds, dim=512, p=1024, n_test=100_000):
    """The authors' single_step loop (their notebook), one seed after another."""
    import numpy as np

    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((p, dim)) / np.sqrt(dim)
    a0 = rng.standard_normal(p) / np.sqrt(p)
    theta = np.linalg.qr(rng.standard_normal((dim, 2)))[0].T
    f = lambda z: (z**4 - 6 * z**2 + 3) / 24 + (z**2 - 1) / 2 + z  # noqa: E731
    eta, errors = 10 * np.sqrt(n) * np.sqrt(p), []
    for _ in range(seeds):
        Z, Zt = rng.standard_normal((n, dim)), rng.standard_normal((n_test, dim))
        Y, Yt = (f(Z @ theta[0]) + f(Z @ theta[1])) / 2, (f(Zt @ theta[0]) + f(Zt @ theta[1])) / 2
        Yu = Y - Y.mean() - Z @ np.mean(Y[:, None] * Z, axis=0)
        Ytu = Yt - Yt.mean() - Zt @ np.mean(Yt[:, None] * Zt, axis=0)
        fnn0 = np.maximum(Z @ W0.T, 0) @ a0 / np.sqrt(p)
        G = Z.T @ (np.outer(Yu - fnn0, a0) / np.sqrt(p) * (Z @ W0.T > 0)) / n
        W = W0 + eta * G.T
        X, Xt = np.maximum(Z @ W.T, 0) / np.sqrt(p), np.maximum(Zt @ W.T, 0) / np.sqrt(p)
        w = np.linalg.inv(X.T @ X + np.eye(p)) @ X.T @ Yu
        errors.append(float(np.mean((Xt @ w - Ytu) ** 2)))
    return errors


def jax_seeds(n, seeds, how, x64):
    import jax

    jax.config.update("jax_enable_x64", x64)
    import jaxfeat as jf
    from jaxfeat.experiments.spikes import run

    params = dandi_params(n)
    keys = jax.random.split(jax.random.key(0), seeds)
    one = lambda key: run(key, **params)["test_mse_w1"]  # noqa: E731
    if how.startswith("map_seeds"):  # "map_seeds" (a seed at a time) or "map_seeds:B"
        batch = int(how.split(":")[1]) if ":" in how else 1
        return lambda: jf.map_seeds(one, keys, batch_size=batch)
    return lambda: jax.jit(jax.vmap(one))(keys)


def child(variant, n, seeds, x64=True) -> dict:
    """One variant in this process: wall seconds (first and second call) and peak RSS."""
    import numpy as np

    t0 = time.perf_counter()
    if variant == "numpy":  # the authors' loop
        errors, first = numpy_loop(n, seeds), None
    else:
        call = jax_seeds(n, seeds, variant, x64)
        np.asarray(call())
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        errors = np.asarray(call()).tolist()
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux → GiB
    err = np.asarray(errors)
    return {
        "variant": variant + ("" if variant == "numpy" or x64 else "-float32"), "n": n,
        "seeds": seeds, "peak_rss_gib": round(peak, 3),
        "first_call_s": first, "steady_s": round(wall, 2),
        "test_mse_mean": float(err.mean()), "test_mse_sd": float(err.std()),
    }  # fmt: skip


def in_subprocess(variant, n, seeds, x64=True) -> dict:
    cmd = [sys.executable, __file__, "child", variant, str(n), str(seeds), str(int(x64))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def overhead(dim, seeds, n_test, chunk_size=None) -> dict:
    """jf.scan against jit(vmap) on the same per-seed function and keys (steady state)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import jaxfeat as jf
    from jaxfeat.experiments.spikes import run, spikes_experiment

    n = round(dim**1.65)
    params = dandi_params(n, dim=dim, width=2 * dim, n_test=n_test)
    one = lambda key: run(key, **params)  # every output, as the scan computes them  # noqa: E731
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(np.arange(seeds))
    vmapped = jax.jit(jax.vmap(one))
    times, scan_vs, vmap_vs = {}, np.zeros(1), np.zeros(1)
    scan_kw = dict(params=params, progress=False, chunk_size=chunk_size)
    for label, call in (
        ("jit_vmap", lambda: jax.device_get(vmapped(keys))),
        ("scan", lambda: jf.scan(spikes_experiment, {}, seeds, **scan_kw)),
    ):
        t0 = time.perf_counter()
        out = call()  # the first call: tracing and compiling included
        times[f"{label}_first"] = time.perf_counter() - t0
        reruns = []
        for _ in range(3):  # reruns (a notebook cell run again): compiled programs reused
            t0 = time.perf_counter()
            out = call()
            reruns.append(time.perf_counter() - t0)
        times[label] = float(np.median(reruns))
        times[f"{label}_reruns"] = reruns
        if label == "scan":
            times["scan_compute"] = float(out.attrs["compute_seconds"])
            times["scan_compile"] = float(out.attrs["compile_seconds"])
            scan_vs = np.asarray(out["test_mse_w1"]).ravel()
        else:
            vmap_vs = np.asarray(out["test_mse_w1"]).ravel()
    return {
        "dim": dim, "width": 2 * dim, "n": n, "n_test": n_test, "seeds": seeds,
        **times,
        "scan_over_jit_vmap": round(times["scan"] / times["jit_vmap"], 3),
        "scan_compute_over_jit_vmap": round(times["scan_compute"] / times["jit_vmap"], 3),
        "max_rel_diff_scan_vs_vmap": float(np.max(np.abs(scan_vs / vmap_vs - 1))),
        "scan_chunk_size": int(out.attrs["chunk_size"]),
    }  # fmt: skip


def record(mode: str, result) -> str:
    sys.path.insert(0, HERE)
    import jax
    from _timing import machine

    path = os.path.join(HERE, "results", f"one_step_protocols-{jax.devices()[0].platform}.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    old.update({"machine": machine(), mode: result})
    with open(path, "w") as f:
        json.dump(old, f, indent=2)
    return path


def main():
    if sys.argv[1:2] == ["child"]:
        variant, n, seeds, x64 = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps(child(variant, n, seeds, x64 == "1")))
        return
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["memory", "overhead"])
    p.add_argument("--n", default="29532")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--chunk-size", type=int, help="overhead: the scan's chunk (default: its own)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--vmap", action="store_true", help="also jit(vmap) over all seeds")
    p.add_argument("--batch", type=int, help="also map_seeds with this batch (float32)")
    args = p.parse_args()
    if args.mode == "overhead":
        res = overhead(args.dim, args.seeds, args.n_test, args.chunk_size)
        print(json.dumps(res, indent=1))
        print(record("overhead", res))
        return
    rows = []
    for n in (int(v) for v in args.n.split(",")):
        variants = [("numpy", True), ("map_seeds", True), ("map_seeds", False)]
        variants += [("vmap", True)] if args.vmap else []
        variants += [(f"map_seeds:{args.batch}", False)] if args.batch else []
        for variant, x64 in variants:
            rows.append(in_subprocess(variant, n, args.seeds, x64))
            print(json.dumps(rows[-1]), flush=True)
    for n in {r["n"] for r in rows}:
        by = {r["variant"]: r for r in rows if r["n"] == n}
        ratio = by["map_seeds"]["peak_rss_gib"] / by["numpy"]["peak_rss_gib"]
        speed = by["numpy"]["steady_s"] / by["map_seeds"]["steady_s"]
        print(f"n={n}: peak RSS map_seeds/NumPy {ratio:.2f}; time NumPy/map_seeds {speed:.2f}")
    print(record("memory", rows))


if __name__ == "__main__":
    main()
