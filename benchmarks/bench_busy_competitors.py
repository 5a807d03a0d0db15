"""jaxfeat next to the three competitors of issue #27 (item 6), against a NumPy version of the
same work under the same load: is jaxfeat's slowdown within 1.5× of NumPy's?

    python benchmarks/bench_busy_competitors.py [--repeats 3] [--calls 15] [--cap 20]

- Work: `jax.jit(one_step_spikes(…)["n_outliers"])` at the issue's size (n = ñ = 2000,
  width 500, d = 250, 500 test points, ReLU, α = 0.3), one seed per call; `numpy`: the same
  protocol written in NumPy (sample, one gradient step on W, F₁ on fresh inputs, centred Gram,
  `eigvalsh`), float32, default OpenBLAS threads.
- Settings (each a FRESH process started while the competitor runs, since jaxfeat chooses its
  CPUs at import): `auto` (jaxfeat's default: the CPUs free at start, `jaxfeat/_cpus.py`),
  `all` (`JAXFEAT_CPUS=all`: every CPU, unpinned, the default before), `numpy`.
- Competitors: `quiet` (none, the reference), `numpy_mt` (`a = a @ a` on 1024² float32,
  normalised, default OpenBLAS threads, unpinned), `numpy_pin1` (the same pinned to CPU 0 with
  `taskset`), `jax` (another JAX process looping a jitted 1024² matmul).
- Each repeat visits every competitor (order rotated) and, under it, every setting (shuffled);
  a measurement is `--calls` calls after two warm-up calls, cut after `--cap` s. Reported per
  (competitor, setting): median and max seconds per call over all repeats, slowdown = median /
  quiet median, and jaxfeat's slowdown over NumPy's. Results:
  `results/busy_competitors-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMPETITORS = {
    "numpy_mt": (
        [],
        "import numpy as np\na = np.random.default_rng(0).standard_normal((1024, 1024))"
        ".astype(np.float32)\nwhile True:\n    a = a @ a; a /= np.abs(a).max()\n",
    ),
    "numpy_pin1": (["taskset", "-c", "0"], None),  # the code of numpy_mt
    "jax": (
        [],
        "import jax, jax.numpy as jnp\nf = jax.jit(lambda a: (a @ a) / jnp.abs(a @ a).max())\n"
        "a = jax.random.normal(jax.random.key(0), (1024, 1024))\n"
        "while True:\n    a = f(a).block_until_ready()\n",
    ),
}
SETTINGS = {"auto": {}, "all": {"JAXFEAT_CPUS": "all"}, "numpy": {}}
N, N_TILDE, WIDTH, DIM, N_TEST = 2000, 2000, 500, 250, 500


def numpy_work():
    import numpy as np

    rng = np.random.default_rng(0)
    beta = np.eye(1, DIM)[0].astype(np.float32)

    def work():
        X = rng.standard_normal((N, DIM), dtype=np.float32)
        z = X @ beta
        y = z + 0.7071 * (z**2 - 1) + 0.1 * rng.standard_normal(N, dtype=np.float32)
        W0 = rng.standard_normal((WIDTH, DIM), dtype=np.float32) / np.sqrt(DIM)
        a = rng.standard_normal(WIDTH, dtype=np.float32) / np.sqrt(WIDTH)
        Z = X @ W0.T
        r = np.maximum(Z, 0) @ a - y
        G = ((r[:, None] * (Z > 0)) * a[None]).T @ X / N
        W1 = W0 - np.sqrt(WIDTH) * N**0.3 * G
        F1 = np.maximum(rng.standard_normal((N_TILDE, DIM), dtype=np.float32) @ W1.T, 0)
        F1 -= F1.mean(0)
        Xt = rng.standard_normal((N_TEST, DIM), dtype=np.float32)
        np.maximum(Xt @ W1.T, 0)
        ev = np.linalg.eigvalsh(F1.T @ F1 / N_TILDE)
        return int((ev > 4 * np.median(ev)).sum())

    return work


def jaxfeat_work():
    import jax
    import numpy as np

    import jaxfeat
    from jaxfeat.algorithms.one_gradient_step import one_step_spikes

    dist = jaxfeat.data.SingleIndex(np.eye(1, DIM)[0], [0.0, 1.0, 0.7071067811865476], noise=0.1)
    kw = dict(n=N, n_tilde=N_TILDE, width=WIDTH, n_test=N_TEST, activation="relu", alpha=0.3)
    f = jax.jit(lambda k: one_step_spikes(k, dist, **kw)["n_outliers"])
    key = jax.random.key(0)
    return lambda: jax.block_until_ready(f(key))


def child(setting: str, calls: int, cap: float) -> None:
    call = numpy_work() if setting == "numpy" else jaxfeat_work()
    call()
    call()
    times, start = [], time.perf_counter()
    while len(times) < calls and time.perf_counter() - start < cap:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "affinity": sorted(os.sched_getaffinity(0))}))


def measure(setting: str, calls: int, cap: float) -> dict:
    env = {**os.environ, **SETTINGS[setting]}
    cmd = [sys.executable, __file__, "child", setting, str(calls), str(cap)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=cap + 120)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def start(name: str):
    if name == "quiet":
        return None
    prefix, code = COMPETITORS[name]
    code = code or COMPETITORS["numpy_mt"][1]
    p = subprocess.Popen(prefix + [sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    time.sleep(3.0)  # imports done, the loop running
    return p


# long: the measurement loop, the table and the record, read top to bottom
def main() -> None:
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--calls", type=int, default=15)
    p.add_argument("--cap", type=float, default=20.0)
    args = p.parse_args()
    levels = ["quiet", *COMPETITORS]
    runs = {(c, s): [] for c in levels for s in SETTINGS}
    masks = {(c, s): [] for c in levels for s in SETTINGS}
    t0, rng, load_before = time.time(), random.Random(0), os.getloadavg()
    for rep in range(args.repeats):
        for comp in levels[rep % len(levels) :] + levels[: rep % len(levels)]:
            p_comp = start(comp)
            try:
                for s in rng.sample(list(SETTINGS), len(SETTINGS)):
                    got = measure(s, args.calls, args.cap)
                    runs[(comp, s)] += got["times"]
                    masks[(comp, s)].append(got["affinity"])
            finally:
                if p_comp is not None:
                    p_comp.kill()
                    p_comp.wait()
        print(f"repeat {rep + 1}/{args.repeats} ({time.time() - t0:.0f} s)", flush=True)
    rows = []
    for comp in levels:
        for s in SETTINGS:
            med = statistics.median(runs[(comp, s)])
            quiet = statistics.median(runs[("quiet", s)])
            rows.append({
                "competitor": comp, "setting": s, "median_s": med,
                "max_s": max(runs[(comp, s)]), "slowdown": med / quiet,
                "calls_s": runs[(comp, s)], "affinity": masks[(comp, s)],
            })  # fmt: skip
    slow = {(r["competitor"], r["setting"]): r for r in rows}
    head = f"{'competitor':11} {'setting':7} {'median s':>9} {'max s':>7} {'slowdown':>8}"
    print(f"\n{head} {'/numpy':>7}")
    for r in rows:
        r["vs_numpy"] = r["slowdown"] / slow[(r["competitor"], "numpy")]["slowdown"]
        r["max_vs_numpy"] = r["max_s"] / slow[(r["competitor"], "numpy")]["max_s"]
        print(
            f"{r['competitor']:11} {r['setting']:7} {r['median_s']:9.3f} {r['max_s']:7.3f} "
            f"{r['slowdown']:8.2f} {r['vs_numpy']:7.2f}"
        )
    sys.path.insert(0, HERE)

    from _timing import save

    print(save("busy_competitors", {
        "command": "python benchmarks/bench_busy_competitors.py " + " ".join(sys.argv[1:]),
        "repeats": args.repeats, "calls": args.calls, "cap_s": args.cap,
        "sizes": {"n": N, "n_tilde": N_TILDE, "width": WIDTH, "dim": DIM, "n_test": N_TEST},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "wall_s": time.time() - t0, "rows": rows,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
