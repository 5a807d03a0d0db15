"""Shared timing helpers: compile and steady state measured separately (DESIGN §6.11)."""

from __future__ import annotations

import json
import os
import statistics
import time

import jax

from jaxfeat.bench import machine  # one record of the machine and versions


def block(x):
    return jax.tree_util.tree_map(
        lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x
    )


def time_jitted(fn, *args, repeats: int = 5) -> dict:
    """`fn` must be jitted. Returns compile seconds (first call) and steady-state seconds
    (median of `repeats` calls after it), each with block_until_ready."""
    t0 = time.perf_counter()
    block(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        times.append(time.perf_counter() - t0)
    return {"first_call_s": first, "steady_s": statistics.median(times), "runs_s": times}


def matmul_flops(n: int = 2048, dtype="float32", repeats: int = 5) -> float:
    """Measured FLOP/s of a square n×n matmul on the default device (the machine's peak proxy)."""

    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    return 2.0 * n**3 / time_jitted(f, a, repeats=repeats)["steady_s"]


def save(name: str, result: dict) -> str:
    path = os.path.join(
        os.path.dirname(__file__), "results", f"{name}-{jax.devices()[0].platform}.json"
    )
    with open(path, "w") as f:
        json.dump({"machine": machine(), **result}, f, indent=2)
    return path
