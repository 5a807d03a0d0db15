"""`scan` and `plan_summary`: a plan, its programs, its store and the loop, put together."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping

import jax

from .._checks import InputError
from . import store as _store
from .loop import forget_damaged, run_chunks
from .plan import Plan
from .program import Runner


def scan(
    experiment,
    grid: Mapping,
    seeds: int,
    *,
    out: str | os.PathLike | None = None,
    params: Mapping | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    memory_budget: float | str = "2GiB",
    workers: int | None = None,
    devices=None,
    overwrite: bool = False,
    allow_code_change: bool = False,
    progress: bool = True,
    **deprecated,
):
    """Run `experiment` over every point of `grid` × `seeds` seeds; return an `xarray.Dataset`.

    **Arguments:**

    - `experiment`: an `Experiment`, a registered name (`jaxfeat.experiments.names()`), or a plain
      `fn(key, **params) -> dict[str, Array]` (its float-valued grid axes are vmapped).
    - `grid`: `{parameter: values}`; each axis becomes a coordinate of the dataset (`{}`: one
      point). Every value of every axis is validated before anything compiles.
    - `seeds`: number of seeds S; seed i uses `fold_in(key(seed), i)`.
    - `out`: Zarr store path. Rerunning with the same `out` continues an interrupted scan and
      recomputes damaged chunks; a store holding another configuration is refused, and so is one
      computed by other code unless `allow_code_change=True`; `overwrite=True` discards it.
      `None`: in memory. Several processes may run the same scan on one `out` at once: they
      share its chunks (see `jaxfeat._store`).
    - `params`: fixed values of the experiment's other parameters.
    - `chunk_size`: seeds per chunk; default: the most that keep the chunks in flight within
      `memory_budget` (bytes or "2GiB", per device), estimated from the traced programs
      before anything compiles and checked against the compiled ones, and on a CPU at most 64
      seeds a chunk, near the caches (32 MiB) for small seeds, one chunk per worker at least
      (throughput, not only memory: `benchmarks/results/scan-throughput-cpu.json`). The last
      chunk is padded, so each static point compiles one program (two only when the estimate
      fell short of the compiled program's size).
    - `workers`: chunks computed at once (default: 2 on one CPU device, where two chunks in
      flight ran 1.4× faster than one, else 1). Results do not depend on it.
    - `devices`: devices to shard each chunk over (default: all local devices).
    - `seed`: the base PRNG seed (an int ≥ 0; before 0.2 it was called `key`, which still works
      with a `DeprecationWarning`).

    **Returns:** a Dataset with dims (grid axes…, seed, output dims…), a `diverged` flag per
    (point, seed) (its float outputs are NaN), a `finished` flag per (point, seed), and
    `attrs["jaxfeat_config"]` holding the config, and this call's `attrs["trace_seconds"]`
    (tracing, lowering), `attrs["compile_seconds"]` (XLA, or the persistent cache) and
    `attrs["compute_seconds"]` (computing and writing the chunks), not stored. Processes
    started with
    `jax.distributed.initialize()` share the chunks of one store and each returns the whole scan.
    """
    seed = _renamed_seed(seed, deprecated)
    plan = Plan(experiment, grid, seeds, params or {}, seed, devices)
    code = _store.code_fingerprint(plan.exp)
    if out is None:
        store = _store.MemoryStore(plan)
    else:
        store = _store.open_for_writing(
            out, plan, overwrite=overwrite, allow_code_change=allow_code_change, code=code
        )
    store.code = code
    runner = Runner(plan, store.chunk_size or chunk_size, memory_budget, workers)
    store.ensure(runner)
    if out is not None:
        forget_damaged(store)
    order = [(s, c) for s in range(len(plan.static_points)) for c in range(store.n_chunks)]
    shift = (len(order) * jax.process_index()) // max(jax.process_count(), 1)
    todo = [sc for sc in order[shift:] + order[:shift] if not store.is_done(*sc)]
    return _timed_loop(runner, store, todo, progress)


def _timed_loop(runner, store, todo, progress):
    """`run_chunks`, then the dataset with this call's `trace_seconds`, `compile_seconds` and
    `compute_seconds` (the loop less the compiling done inside it) in its attrs (not stored)."""
    before, t0 = runner.trace_seconds + runner.compile_seconds, time.perf_counter()
    run_chunks(runner, store, todo, progress)
    compiling = runner.trace_seconds + runner.compile_seconds - before
    ds = store.dataset()
    ds.attrs["trace_seconds"] = runner.trace_seconds
    ds.attrs["compile_seconds"] = runner.compile_seconds
    ds.attrs["compute_seconds"] = time.perf_counter() - t0 - compiling  # chunks and writes
    return ds


def plan_summary(
    experiment,
    grid: Mapping,
    seeds: int,
    *,
    out=None,
    params: Mapping | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    memory_budget: float | str = "2GiB",
    workers: int | None = None,
    devices=None,
    **deprecated,
) -> str:
    """What `scan` with these arguments would do, without running it (`jaxfeat run --dry-run`):
    grid points, seeds, chunks (and how many `out` already holds), compiled programs, memory per
    chunk, and an ETA timed on one seed per device (an upper estimate: a chunk vmaps its seeds).
    Every grid value is validated; one small program is compiled and run once."""
    seed = _renamed_seed(seed, deprecated)
    plan = Plan(experiment, grid, seeds, params or {}, seed, devices)
    stored_chunk, finished, clash = _stored_state(out, plan)
    runner = Runner(plan, stored_chunk or chunk_size, memory_budget, workers)
    n_static = len(plan.static_points)
    n_chunks = -(-plan.seeds // runner.chunk_size)
    per_seed, per_run = _time_one_seed(runner)
    todo = n_static * n_chunks - finished
    eta = per_run * plan.seeds * n_static * (todo / max(n_static * n_chunks, 1))
    points = math.prod(len(v) for v in plan.grid.values())
    sizes = ", ".join(f"{a}: {len(v)}" for a, v in plan.grid.items()) or "one point"
    memory = f"{_fmt_bytes(per_seed * runner.chunk_size)}" if per_seed else "unknown"
    lines = [
        f"experiment: {plan.exp.name}",
        f"grid: {points} point{'s' * (points != 1)} ({sizes}); "
        f"vmapped: {', '.join(plan.dynamic) or '-'}; static: {', '.join(plan.static) or '-'}",
        f"seeds: {plan.seeds} in chunks of {runner.chunk_size} → {n_static * n_chunks} chunks"
        + (f", {finished} already finished in {out}" if finished else ""),
        f"compiled programs: {n_static} (one per static point)",
        f"memory per chunk: {memory} per device ({len(plan.devices)} devices); "
        f"{runner.workers} chunk{'s' * (runner.workers != 1)} at once",
        f"ETA: {_fmt_seconds(eta)} + compiling ({_fmt_seconds(per_run * runner.n_dev)} per "
        "seed per static point, timed on one seed)",
    ] + ([clash] if clash else [])
    return "\n".join(lines)


def _stored_state(out, plan) -> tuple[int | None, int, str]:
    """(chunk size, finished chunks, a note if it holds another scan) of the store at `out`."""
    if out is None or not os.path.exists(os.path.join(os.fspath(out), "zarr.json")):
        return None, 0, ""
    try:
        code = _store.code_fingerprint(plan.exp)
        stored_chunk = _store.check_existing(os.fspath(out), plan, code, False)
        return stored_chunk, len(_store.verify_scan(os.fspath(out), full=False).ok), ""
    except InputError as e:
        return None, 0, f"note: {e}"


def _time_one_seed(runner) -> tuple[int | None, float]:
    """(bytes per seed, seconds per seed) of the first static point's program, compiled for one
    seed per device and run twice (the second run is timed)."""
    one = runner.program(0, runner.n_dev)
    mem = one.memory_analysis()
    per_seed = (
        mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
        if mem is not None
        else None
    )
    args = runner._args(0, runner.n_dev)
    jax.block_until_ready(one(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(one(*args))
    return per_seed, (time.perf_counter() - t0) / runner.n_dev


def _fmt_bytes(b) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} GiB"


def _fmt_seconds(t) -> str:
    if t < 1:
        return f"{1e3 * t:.3g} ms"
    return f"{t:.1f} s" if t < 120 else f"{t / 60:.1f} min" if t < 7200 else f"{t / 3600:.1f} h"


def _renamed_seed(seed, deprecated: dict):
    """`key=` (the spelling before 0.2) as `seed=`, with a DeprecationWarning; any other unknown
    keyword is a `TypeError`, as Python would raise."""
    unknown = sorted(set(deprecated) - {"key"})
    if unknown:
        raise TypeError(f"scan() got unexpected keyword argument(s) {', '.join(unknown)}")
    if "key" in deprecated:
        warnings.warn(
            "scan(key=...) is deprecated: the base PRNG seed is now `seed=`",
            DeprecationWarning,
            stacklevel=3,
        )
        return deprecated["key"]
    return seed
