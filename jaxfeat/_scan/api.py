"""`scan` and `plan_summary`: a plan, its programs, its store and the loop, put together."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping

import jax

from .._checks import InputError
from .._compile_cache import _DEFAULT, _Default, enable_compile_cache
from . import store as _store
from .cost import Calibration, default_path
from .loop import forget_damaged, run_chunks
from .plan import Plan
from .program import Runner


# long: one signature line per option (each documented below)
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
    buckets: str | int = "auto",
    cache_dir: str | os.PathLike[str] | None | _Default = _DEFAULT,
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
    - `buckets`: for an experiment with sizes below a capacity (`Experiment.capacity`, e.g.
      the spikes experiment's n): `"auto"` groups an axis's values into buckets that share a
      compiled program, from a cost model (a compile against the padded compute, calibrated
      on this machine by earlier scans), `"off"` compiles one program per value, an int k
      exactly k programs (the cheapest split; one per value when there are fewer). Results
      do not depend on it (to rounding; the same draws).
    - `cache_dir`: JAX's persistent compilation cache, shared with `jaxfeat run` (default
      `$JAXFEAT_CACHE_DIR`, else `~/.cache/jaxfeat/xla`; `jaxfeat.enable_compile_cache`): a
      scan run again in a new process loads its programs instead of compiling them. None
      leaves JAX's cache settings as they are (off unless you turned it on).

    **Returns:** a Dataset with dims (grid axes…, seed, output dims…), a `diverged` flag per
    (point, seed) (its float outputs are NaN), a `finished` flag per (point, seed), and
    `attrs["jaxfeat_config"]` holding the config, and this call's `attrs["programs"]` (JSON: one
    record per program it compiled, its static points, equations, trace and compile seconds),
    `attrs["trace_seconds"]` (tracing, lowering), `attrs["compile_seconds"]` (XLA, or the
    persistent cache) and `attrs["compute_seconds"]` (computing and writing the chunks), not
    stored. Processes started with `jax.distributed.initialize()` share the chunks of one
    store and each returns the whole scan.
    """
    seed = _renamed_seed(seed, deprecated)
    plan = Plan(experiment, grid, seeds, params or {}, seed, devices)
    if cache_dir is not None:
        enable_compile_cache(cache_dir)
    code = _store.code_fingerprint(plan.exp)
    if out is None:
        store = _store.MemoryStore(plan)
    else:
        store = _store.open_for_writing(
            out, plan, overwrite=overwrite, allow_code_change=allow_code_change, code=code
        )
    store.code = code
    calibration = Calibration(default_path(), plan.devices[0].platform)
    runner = Runner(
        plan, store.chunk_size or chunk_size, memory_budget, workers, buckets, calibration
    )
    store.ensure(runner)
    if out is not None:
        forget_damaged(store)
    order = [(s, c) for s in _static_order(runner) for c in range(store.n_chunks)]
    shift = (len(order) * jax.process_index()) // max(jax.process_count(), 1)
    todo = [sc for sc in order[shift:] + order[:shift] if not store.is_done(*sc)]
    if out is not None and progress:
        _say_resuming(len(order) - len(todo), len(order))
    return _timed_loop(runner, store, todo, progress)


def _say_resuming(done: int, total: int) -> None:
    """One line when a store already holds finished chunks (stderr)."""
    if done == total:
        print(f"jaxfeat: already complete: {total}/{total} chunks, nothing to compute",
              file=sys.stderr)  # fmt: skip
    elif done:
        print(f"jaxfeat: resuming: {done}/{total} chunks already done", file=sys.stderr)


def _static_order(runner) -> list[int]:
    """Static points whose program is compiled first, then by program: the workers start on
    chunks they can run at once, and each later program is compiled once, by the first worker
    to reach it."""
    batch = runner.batch(runner.chunk_size)
    n = len(runner.plan.static_points)
    return sorted(range(n), key=lambda s: (not runner.is_compiled(runner.program_of[s], batch),
                                           runner.program_of[s], s))  # fmt: skip


def _timed_loop(runner, store, todo, progress):
    """`run_chunks`, then the dataset with this call's `trace_seconds`, `compile_seconds` and
    `compute_seconds` (the loop less the compiling done inside it) in its attrs (not stored);
    the machine's calibration updated with what this run measured."""
    before, t0 = runner.trace_seconds + runner.compile_seconds, time.perf_counter()
    flops_before = runner.flops_done
    run_chunks(runner, store, todo, progress)
    compiling = runner.trace_seconds + runner.compile_seconds - before
    computing = max(time.perf_counter() - t0 - compiling, 1e-9)
    if runner.flops_done > flops_before:
        runner.calibration.record_compute(
            runner.flops_done - flops_before, computing, runner.plan.exp.name
        )
    runner.calibration.save()
    ds = store.dataset()
    # what this call compiled, as JSON text (a list of dicts would not serialise as an attribute)
    ds.attrs["programs"] = json.dumps(runner.compiled)
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
    buckets: str | int = "auto",
    **deprecated,
) -> str:
    """What `scan` with these arguments would do, without running it (`jaxfeat run --dry-run`):
    grid points, seeds, chunks (and how many `out` already holds), the programs it will compile
    (with the sample-size buckets), memory per chunk, and an ETA that counts tracing, compiling
    and computing. Every grid value is validated and every program traced; nothing compiles.
    The ETA comes from the programs' traces (equations, flops) and this machine's calibration
    (`cost.Calibration`, updated by every scan), so it sharpens as the machine runs scans.

    **Arguments:** those of `scan`, with the same meanings and defaults:

    - `experiment`: an `Experiment`, a registered name, or a plain `fn(key, **params)`.
    - `grid`: `{parameter: values}`; every value is validated.
    - `seeds`: number of seeds S.
    - `out`: a store path: its finished chunks are counted (checked by size, not SHA-256) and
      its chunk size is used in place of `chunk_size`; a store `scan` would refuse (another
      scan, or results of other code) adds a `note:` line instead. `None` (default), or no
      store there yet: nothing is finished.
    - `params`, `seed`, `chunk_size`, `memory_budget`, `workers`, `devices`, `buckets`: as in
      `scan`; `key=` (before 0.2) still works for `seed` with a `DeprecationWarning`, and any
      other unknown keyword raises `TypeError`.

    **Returns:** the summary, a multi-line `str`: the experiment, the grid (its vmapped and
    static axes), seeds and chunks, the compiled programs, memory per chunk and the ETA (split
    into tracing, compiling and computing; computing counts only the unfinished chunks).
    """
    seed = _renamed_seed(seed, deprecated, "plan_summary")
    t0 = time.perf_counter()
    plan = Plan(experiment, grid, seeds, params or {}, seed, devices)
    stored_chunk, finished, clash = _stored_state(out, plan)
    calibration = Calibration(default_path(), plan.devices[0].platform)
    runner = Runner(
        plan, stored_chunk or chunk_size, memory_budget, workers, buckets, calibration,
        measure=False,
    )  # fmt: skip
    batch = runner.batch(runner.chunk_size)
    per_chunk = max(runner._estimate(pid, batch) for pid in range(len(runner.fixed)))
    seconds = runner.estimate_seconds(batch)
    return _summary(runner, out, finished, clash, per_chunk, time.perf_counter() - t0, seconds)


def _summary(runner, out, finished, clash, per_chunk, tracing, seconds) -> str:
    """The lines of `plan_summary`."""
    plan, (compile_s, compute_s) = runner.plan, seconds
    n_static = len(plan.static_points)
    n_chunks = -(-plan.seeds // runner.chunk_size)
    compute_s *= (n_static * n_chunks - finished) / max(n_static * n_chunks, 1)
    points = math.prod(len(v) for v in plan.grid.values())
    sizes = ", ".join(f"{a}: {len(v)}" for a, v in plan.grid.items()) or "one point"
    programs = runner.program_summary()
    total = tracing + compile_s + compute_s
    lines = [
        f"experiment: {plan.exp.name}",
        _changed_line(plan),
        f"grid: {points} point{'s' * (points != 1)} ({sizes}); "
        f"vmapped: {', '.join(plan.dynamic) or '-'}; static: {', '.join(plan.static) or '-'}",
        f"seeds: {plan.seeds} in chunks of {runner.chunk_size} → {n_static * n_chunks} chunks"
        + (f", {finished} already finished in {out}" if finished else ""),
        f"compiled programs: {len(programs)}: " + "; ".join(programs),
        f"memory per chunk: ≈ {_fmt_bytes(per_chunk)} per device ({len(plan.devices)} devices; "
        f"estimated from the trace); {runner.workers} chunk{'s' * (runner.workers != 1)} at once",
        f"ETA: {_fmt_seconds(total)} (tracing ≈ {_fmt_seconds(tracing)}, compiling ≈ "
        f"{_fmt_seconds(compile_s)}, computing ≈ {_fmt_seconds(compute_s)}; "
        f"{_calibration_note(runner.calibration, plan.exp.name)})",
    ] + ([clash] if clash else [])
    return "\n".join(lines)


def _changed_line(plan) -> str:
    """The fixed parameters that differ from the experiment's defaults (a preset's protocol,
    say), or that none do (`Experiment.non_defaults`)."""
    changed = plan.exp.non_defaults(plan.params)
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in changed.items())
    return "set (differs from the defaults): " + (shown or "nothing")


def _calibration_note(calibration, name: str) -> str:
    measured = calibration.has_rate(name)
    return "rates measured on this machine" if measured else "default rates: no scan of it here yet"


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


def _renamed_seed(seed, deprecated: dict, where: str = "scan"):
    """`key=` (the spelling before 0.2) as `seed=`, with a DeprecationWarning; any other unknown
    keyword is a `TypeError`, as Python would raise, naming the caller `where`."""
    unknown = sorted(set(deprecated) - {"key"})
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {', '.join(unknown)}")
    if "key" in deprecated:
        warnings.warn(
            f"{where}(key=...) is deprecated: the base PRNG seed is now `seed=`",
            DeprecationWarning,
            stacklevel=3,
        )
        return deprecated["key"]
    return seed
