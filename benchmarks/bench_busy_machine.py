"""Behaviour on a busy machine (issue #16, item 5): how much jaxfeat slows down when other
CPU-bound processes share the cores, under which XLA / thread settings, against a NumPy loop
doing the same work (the "proportional" reference).

    python benchmarks/bench_busy_machine.py [--loads 0,1,2] [--repeats 5] [--calls 3]
        [--variants default,eigen_st,nproc1,nproc1_eigen_st,pin1] [--workloads onestep,eigh_mm]

What is measured, and how:
- Load: `L` background processes, each a NumPy loop of 512×512 `np.dot` with
  OMP/OPENBLAS/MKL threads = 1 (one busy core each). They are started once (paused with
  SIGSTOP) and the load level is switched by SIGCONT/SIGSTOP, so levels can be interleaved;
  they are killed at the end.
- Workloads, each in a FRESH subprocess per settings variant (XLA flags, thread env vars and
  CPU affinity are per process), compiled and warmed up once, then timed on command
  (`jax.block_until_ready`, steady state only):
  `onestep`: `jit(vmap(one_step_spikes(..., n=ñ=500, d=125, N=125, n_test=250, relu,
  α=0.3)["n_outliers"]))` over 8 keys; `eigh_mm`: one jitted function doing a batched
  `jnp.linalg.eigh` on (16, 256, 256) and a 2048×2048 matmul; `numpy`: the same as `eigh_mm`
  with `np.linalg.eigh` per matrix and `np.dot` (default OpenBLAS threads), the reference.
- Interleaving: each repeat visits the load levels (order rotated per repeat) and, within a
  level, every (workload, variant) process in shuffled order; a measurement is `--calls`
  consecutive calls (cut short after `--cap` seconds). Reported: the median seconds per call
  over all calls at that level and slowdown = loaded / quiet (load 0). The NumPy ratio is the
  proportional slowdown; `fair_share_2thread` = (L + 2)/2 is what a 2-thread program gets
  under fair scheduling on 2 cores with L busy single-thread processes.
- Variants (`VARIANTS`): `default`; `eigen_st` = XLA_FLAGS "--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1" (the folklore recipe; XLA ignores the second token, it has
  no such flag); `nproc1` = PJRT_NPROC=1 (the size of the PJRT CPU client's thread pools,
  read by xla::DefaultThreadPoolSize() when the client is created; default: the CPUs in the
  affinity mask); `nproc1_eigen_st` both; `pin1`: affinity to one CPU (os.sched_setaffinity
  before jax is imported, i.e. `taskset -c 0`), which also sizes the pools to 1. Others
  selectable: `nproc1_sync` (PJRT_NPROC=1, JAX_CPU_ENABLE_ASYNC_DISPATCH=false),
  `no_xnnpack` (--xla_cpu_use_xnnpack=false).

The machine is shared: the load average (which includes this benchmark's own load) before,
after each repeat and after the run is recorded. Results:
`results/busy_machine-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
VARIANTS = {  # name -> (environment additions, CPUs to pin to or None)
    "default": ({}, None),
    "eigen_st": (
        {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"},
        None,
    ),
    "nproc1": ({"PJRT_NPROC": "1"}, None),
    "nproc1_eigen_st": (
        {"PJRT_NPROC": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
        None,
    ),
    "pin1": ({}, [0]),
    "nproc1_sync": ({"PJRT_NPROC": "1", "JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"}, None),
    "no_xnnpack": ({"XLA_FLAGS": "--xla_cpu_use_xnnpack=false"}, None),
}
LOAD_CODE = """
import numpy as np
a = np.random.default_rng(0).standard_normal((512, 512))
while True:
    a = np.dot(a, a); a /= np.abs(a).max()
"""


# ------------------------------------------------------------------------- the child side


def build(workload: str):
    """The workload as a zero-argument callable whose result is ready when it returns."""
    import numpy as np

    if workload == "numpy":
        rng = np.random.default_rng(1)
        a = rng.standard_normal((16, 256, 256)).astype(np.float32)
        a = a + a.transpose(0, 2, 1)
        b = rng.standard_normal((2048, 2048)).astype(np.float32)
        return lambda: ([np.linalg.eigh(m)[0] for m in a], np.dot(b, b))

    import jax
    import jax.numpy as jnp

    if workload == "onestep":
        import jaxfeat
        from jaxfeat.algorithms.one_gradient_step import one_step_spikes

        dist = jaxfeat.data.SingleIndex(
            np.eye(1, 125)[0], [0.0, 1.0, 0.7071067811865476], noise=0.1
        )
        kw = dict(n=500, n_tilde=500, width=125, n_test=250, activation="relu", alpha=0.3)
        f = jax.jit(jax.vmap(lambda k: one_step_spikes(k, dist, **kw)["n_outliers"]))
        keys = jax.random.split(jax.random.key(0), 8)
        return lambda: jax.block_until_ready(f(keys))
    if workload == "eigh_mm":
        g = jax.jit(lambda a, b: (jnp.linalg.eigh(a)[0], b @ b))
        a = jax.random.normal(jax.random.key(1), (16, 256, 256))
        a = a + a.transpose(0, 2, 1)
        b = jax.random.normal(jax.random.key(2), (2048, 2048))
        return lambda: jax.block_until_ready(g(a, b))
    raise ValueError(workload)


def child(workload: str, cpus: str) -> None:
    """Serve timing requests on stdin: `N CAP` -> JSON list of per-call seconds on stdout."""
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # before jax is imported
    call = build(workload)
    t0 = time.perf_counter()
    call()  # compile + first run
    first = time.perf_counter() - t0
    call()  # warm-up
    print(json.dumps({"ready": True, "first_call_s": first}), flush=True)
    for line in sys.stdin:
        n, cap = line.split()
        times, start = [], time.perf_counter()
        for _ in range(int(n)):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > float(cap):
                break
        print(json.dumps(times), flush=True)


# ------------------------------------------------------------------------ the parent side


class Worker:
    """One (workload, variant) in its own process, compiled and warm."""

    def __init__(self, workload: str, variant: str):
        extra, cpus = VARIANTS[variant] if workload != "numpy" else ({}, None)
        env = {**os.environ, **extra}
        cmd = [sys.executable, __file__, "child", workload, ",".join(map(str, cpus or []))]
        self.name, self.workload, self.variant = f"{workload}/{variant}", workload, variant
        self.env = {k: v for k, v in extra.items()} | ({"affinity": cpus} if cpus else {})
        self.p = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.first_call_s = json.loads(self.p.stdout.readline())["first_call_s"]

    def time(self, calls: int, cap: float) -> list[float]:
        self.p.stdin.write(f"{calls} {cap}\n")
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Load:
    """`n` paused background busy processes; `level(L)` lets the first L run."""

    def __init__(self, n: int):
        env = {**os.environ, **ONE_THREAD}
        self.ps = [subprocess.Popen([sys.executable, "-c", LOAD_CODE], env=env) for _ in range(n)]
        time.sleep(1.0)  # let numpy import before pausing
        self.level(0)

    def level(self, n: int):
        for i, p in enumerate(self.ps):
            os.kill(p.pid, signal.SIGCONT if i < n else signal.SIGSTOP)

    def close(self):
        for p in self.ps:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()


def main():
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
        return
    p = argparse.ArgumentParser()
    p.add_argument("--loads", default="0,1,2", help="background busy processes per level")
    p.add_argument("--variants", default="default,eigen_st,nproc1,nproc1_eigen_st,pin1")
    p.add_argument("--workloads", default="onestep,eigh_mm", help="jaxfeat/XLA workloads")
    p.add_argument("--repeats", type=int, default=5, help="visits of every load level")
    p.add_argument("--calls", type=int, default=3, help="consecutive calls per measurement")
    p.add_argument("--cap", type=float, default=12.0, help="seconds after which calls stop")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    args = p.parse_args()
    loads = [int(v) for v in args.loads.split(",")]
    assert loads[0] == 0, "the first load level must be 0 (the quiet reference)"
    variants = args.variants.split(",")
    t_start, load_before = time.time(), os.getloadavg()

    pairs = [(w, v) for w in args.workloads.split(",") for v in variants]
    pairs += [] if args.no_numpy else [("numpy", "default")]
    load = Load(max(loads))
    workers = []
    try:
        for w, v in pairs:
            workers.append(Worker(w, v))
            print(
                f"ready {workers[-1].name}: first call {workers[-1].first_call_s:.1f} s", flush=True
            )
        runs = {(wk.name, L): [] for wk in workers for L in loads}
        rng, loadavg = random.Random(0), []
        for rep in range(args.repeats):
            order = loads[rep % len(loads) :] + loads[: rep % len(loads)]
            for L in order:
                load.level(L)
                time.sleep(0.5)
                for wk in rng.sample(workers, len(workers)):
                    runs[(wk.name, L)] += wk.time(args.calls, args.cap)
            load.level(0)
            loadavg.append(os.getloadavg())
            print(
                f"repeat {rep + 1}/{args.repeats} done ({time.time() - t_start:.0f} s)", flush=True
            )
    finally:
        load.close()
        for wk in workers:
            wk.close()

    rows = []
    for wk in workers:
        quiet = statistics.median(runs[(wk.name, 0)])
        for L in loads:
            s = statistics.median(runs[(wk.name, L)])
            rows.append({
                "workload": wk.workload, "variant": wk.variant, "settings": wk.env, "load": L,
                "seconds": s, "slowdown": s / quiet, "fair_share_2thread": (L + 2) / 2,
                "calls_s": runs[(wk.name, L)], "first_call_s": wk.first_call_s,
            })  # fmt: skip
    base = {
        r["workload"]: r["seconds"] for r in rows if r["variant"] == "default" and r["load"] == 0
    }
    for r in rows:
        r["quiet_vs_default"] = (
            next(q["seconds"] for q in rows if q["workload"] == r["workload"]
                 and q["variant"] == r["variant"] and q["load"] == 0) / base[r["workload"]]
        )  # fmt: skip

    print(f"\n{'workload':9} {'variant':16} {'quiet/default':>13}", end="")
    print("".join(f" {'L=' + str(L) + ' s':>9} {'x':>6}" for L in loads))
    for wk in workers:
        mine = [r for r in rows if r["workload"] == wk.workload and r["variant"] == wk.variant]
        print(f"{wk.workload:9} {wk.variant:16} {mine[0]['quiet_vs_default']:13.2f}", end="")
        print("".join(f" {r['seconds']:9.3f} {r['slowdown']:6.2f}" for r in mine))
    print("fair share, 2 threads:" + "".join(f" L={L}: {(L + 2) / 2:.2f}" for L in loads))

    sys.path.insert(0, HERE)
    import jax
    from _timing import machine

    path = os.path.join(HERE, "results", f"busy_machine-{jax.devices()[0].platform}.json")
    result = {
        "machine": machine(),
        "command": "python benchmarks/bench_busy_machine.py " + " ".join(sys.argv[1:]),
        "loads": loads, "repeats": args.repeats, "calls": args.calls, "cap_s": args.cap,
        "variants": {v: {"env": VARIANTS[v][0], "affinity": VARIANTS[v][1]} for v in variants},
        "load_generator": "L processes: 512x512 np.dot loop, OPENBLAS/OMP/MKL threads = 1",
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "loadavg_after_each_repeat": loadavg,
        "wall_s": time.time() - t_start, "rows": rows,
    }  # fmt: skip
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
