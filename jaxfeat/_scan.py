"""The grid × seeds engine: one compiled program per static configuration, seeds chunked to a
memory budget and sharded over devices, results written chunk by chunk to a resumable Zarr store.

Layout of a scan (DESIGN §4):

- grid axes whose parameter the experiment declares dynamic (α, c, λ, η, padded widths) are
  flattened into one vmapped axis; the other axes are static and loop in Python, one compile each;
- seed i always gets `fold_in(PRNGKey(key), i)`, so every grid point sees the same seeds (common
  random numbers across the diagram) and a seed's draw never depends on chunking or devices;
- the seed axis is cut into chunks of `chunk_size` seeds; a chunk's batch is padded to a multiple
  of the device count and sharded over the devices; one chunk is one Zarr chunk of every output;
- the store (`jaxfeat._store`) records each finished chunk with checksums; a rerun skips finished,
  intact chunks and recomputes unfinished or damaged ones, so a killed scan loses at most the
  chunks in flight, and writers on one store claim chunks with lock files.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _store
from ._checks import InputError
from .experiment import Experiment, from_function


def scan(
    experiment,
    grid: Mapping,
    seeds: int,
    *,
    out: str | os.PathLike | None = None,
    params: Mapping | None = None,
    key: int = 0,
    chunk_size: int | None = None,
    memory_budget: float | str = "2GiB",
    devices=None,
    overwrite: bool = False,
    allow_code_change: bool = False,
    progress: bool = True,
):
    """Run `experiment` over every point of `grid` × `seeds` seeds; return an `xarray.Dataset`.

    **Arguments:**

    - `experiment`: an `Experiment`, a registered name (`jaxfeat.experiments.names()`), or a plain
      `fn(key, **params) -> dict[str, Array]` (its float-valued grid axes are vmapped).
    - `grid`: `{parameter: values}`; each axis becomes a coordinate of the dataset (`{}`: one
      point). Every value of every axis is validated before anything compiles.
    - `seeds`: number of seeds S; seed i uses `fold_in(PRNGKey(key), i)`.
    - `out`: Zarr store path. Rerunning with the same `out` continues an interrupted scan and
      recomputes damaged chunks; a store holding another configuration is refused, and so is one
      computed by other code unless `allow_code_change=True`; `overwrite=True` discards it.
      `None`: in memory. Several processes may run the same scan on one `out` at once: they
      share its chunks (see `jaxfeat._store`).
    - `params`: fixed values of the experiment's other parameters.
    - `chunk_size`: seeds per chunk; default from `memory_budget` (bytes or "2GiB"), measured
      on a one-seed-per-device compile.
    - `devices`: devices to shard each chunk over (default: all local devices).

    **Returns:** a Dataset with dims (grid axes…, seed, output dims…), a `diverged` flag per
    (point, seed) (its float outputs are NaN), a `finished` flag per (point, seed), and
    `attrs["jaxfeat_config"]` holding the config. Processes started with
    `jax.distributed.initialize()` share the chunks of one store and each returns the whole scan.
    """
    plan = _Plan(experiment, grid, seeds, params or {}, key, devices)
    code = _store.code_fingerprint(plan.exp)
    if out is None:
        store = _store.MemoryStore(plan)
    else:
        store = _store.open_for_writing(
            out, plan, overwrite=overwrite, allow_code_change=allow_code_change, code=code
        )
    store.code = code
    runner = _Runner(plan, store.chunk_size or chunk_size, memory_budget)
    store.ensure(runner)
    if out is not None:
        _forget_damaged(store)
    order = [(s, c) for s in range(len(plan.static_points)) for c in range(store.n_chunks)]
    shift = (len(order) * jax.process_index()) // max(jax.process_count(), 1)
    todo = [sc for sc in order[shift:] + order[:shift] if not store.is_done(*sc)]
    _run_chunks(runner, store, todo, progress)
    return store.dataset()


def plan_summary(
    experiment,
    grid: Mapping,
    seeds: int,
    *,
    out=None,
    params: Mapping | None = None,
    key: int = 0,
    chunk_size: int | None = None,
    memory_budget: float | str = "2GiB",
    devices=None,
) -> str:
    """What `scan` with these arguments would do, without running it (`jaxfeat run --dry-run`):
    grid points, seeds, chunks (and how many `out` already holds), compiled programs, memory per
    chunk, and an ETA timed on one seed per device (an upper estimate: a chunk vmaps its seeds).
    Every grid value is validated; one small program is compiled and run once."""
    plan = _Plan(experiment, grid, seeds, params or {}, key, devices)
    stored_chunk, finished, clash = None, 0, ""
    if out is not None and os.path.exists(os.path.join(os.fspath(out), "zarr.json")):
        try:
            code = _store.code_fingerprint(plan.exp)
            stored_chunk = _store.check_existing(os.fspath(out), plan, code, False)
            finished = len(_store.verify_scan(os.fspath(out), full=False).ok)
        except InputError as e:
            clash = f"note: {e}"
    runner = _Runner(plan, stored_chunk or chunk_size, memory_budget)
    n_static = len(plan.static_points)
    n_chunks = -(-plan.seeds // runner.chunk_size)
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
    per_run = (time.perf_counter() - t0) / runner.n_dev
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
        f"memory per chunk: {memory} per device ({len(plan.devices)} devices)",
        f"ETA: {_fmt_seconds(eta)} + compiling ({_fmt_seconds(per_run * runner.n_dev)} per "
        "seed per static point, timed on one seed)",
    ] + ([clash] if clash else [])
    return "\n".join(lines)


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


def _forget_damaged(store) -> None:
    """Chunks whose files no longer match their markers are unmarked, so they are recomputed."""
    v = _store.verify_scan(store.path)
    attrs = _store.layout(store.path)
    for (s, c), why in sorted(v.damaged.items()):
        print(
            f"jaxfeat: {_store.describe_chunk(attrs, s, c)} of {store.path} is damaged ({why}); "
            "recomputing it",
            file=sys.stderr,
        )
        store.unmark(s, c)


class _Plan:
    """Validated experiment, grid split into static and dynamic axes, and the scan's config."""

    def __init__(self, experiment, grid, seeds, params, key, devices):
        from . import experiments

        if isinstance(experiment, str):
            experiment = experiments.get(experiment)
        if not isinstance(grid, Mapping):
            raise InputError(
                f"grid must be a mapping {{parameter: values}} ({{}} for one point), got "
                f"{type(grid).__name__}"
            )
        if not isinstance(params, Mapping):
            raise InputError(f"params must be a mapping, got {type(params).__name__}")
        self.grid = {str(k): _axis_values(k, v) for k, v in grid.items()}
        self.exp: Experiment = from_function(experiment, self.grid)
        both = sorted(set(self.grid) & set(params))
        if both:
            raise InputError(f"parameter(s) {', '.join(both)} given both as grid axes and fixed")
        for k, v in params.items():
            _check_json_value(f"parameter {k!r}", v)
        self.params = self.exp.resolve({**params, **{k: None for k in self.grid}})
        for k in self.grid:
            del self.params[k]
        self.seeds = _checks.check_positive_int("seeds", seeds)
        if self.seeds > _MAX_SEEDS:
            raise InputError(
                f"seeds must be at most {_MAX_SEEDS:,} per scan (the seed coordinate and the "
                f"finished-seed mask are held in memory), got {seeds:,}"
            )
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise InputError(f"key must be an integer >= 0 (the base PRNG seed), got {key!r}")
        self.key = int(key)
        self.axes = list(self.grid)
        self.dynamic = [a for a in self.axes if a in self.exp.dynamic]
        for a in self.dynamic:
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.grid[a]
            ):
                raise InputError(
                    f"grid axis {a!r} is vmapped and must hold numbers, got {self.grid[a]}"
                )
        self.static = [a for a in self.axes if a not in self.exp.dynamic]
        for a, target in self.exp.padded.items():
            if a in self.grid:
                self.params[target] = max(self.grid[a])
        self.static_points = list(
            itertools.product(*(range(len(self.grid[a])) for a in self.static))
        )
        self.devices = list(devices) if devices is not None else jax.local_devices()
        if not self.devices:
            raise InputError("devices must name at least one device")
        self.config = {
            "experiment": self.exp.name,
            "grid": self.grid,
            "params": self.params,
            "seeds": self.seeds,
            "key": self.key,
        }
        if jax.config.jax_enable_x64:  # float64 results never mix with float32 ones
            self.config["x64"] = True
        _json(self.config)  # every value must serialise, so the store can hold it

    def static_params(self, s: int) -> dict:
        point = {a: self.grid[a][i] for a, i in zip(self.static, self.static_points[s])}
        return {**self.params, **point}

    def dynamic_points(self) -> dict:
        """(P,) arrays of every dynamic axis over the flattened product of the dynamic axes."""
        values = [self.grid[a] for a in self.dynamic]
        flat = list(itertools.product(*values)) or [()]
        return {a: np.asarray([p[i] for p in flat]) for i, a in enumerate(self.dynamic)}

    @property
    def dynamic_shape(self) -> tuple[int, ...]:
        return tuple(len(self.grid[a]) for a in self.dynamic)

    def points_to_validate(self):
        """One parameter point per grid value: each axis's values in turn, every other axis at
        its first value (the experiment's own checks then see every value once)."""
        first = {a: v[0] for a, v in self.grid.items()}
        yield {**self.params, **first}
        for a, values in self.grid.items():
            for v in values[1:]:
                yield {**self.params, **first, a: v}


_MAX_SEEDS = 10**7


def _axis_values(name, values) -> list:
    if isinstance(values, (jax.Array, np.ndarray)):
        values = np.asarray(values).tolist()
    vals = list(values) if isinstance(values, (list, tuple, range)) else [values]
    if not vals:
        raise InputError(f"grid axis {name!r} is empty")
    vals = [v.item() if isinstance(v, np.generic) else v for v in vals]
    for v in vals:
        _check_json_value(f"grid axis {name!r}", v)
    if len({json.dumps(v) for v in vals}) != len(vals):
        raise InputError(f"grid axis {name!r} has repeated values: {vals}")
    return vals


def _check_json_value(what: str, v) -> None:
    """NaN and ±inf are refused anywhere in a value (they are not JSON and mean nothing here)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{what} holds {v!r}; values must be finite")
    if isinstance(v, (list, tuple)):
        for x in v:
            _check_json_value(what, x)
    if isinstance(v, (np.ndarray, jax.Array)):
        raise InputError(
            f"{what} is an array; give a list of values (e.g. {np.asarray(v).tolist()!r:.40})"
        )


def _json(obj) -> str:
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"scan parameters must be JSON values (numbers, strings, lists): {e}"
        ) from None


class _Runner:
    """One jitted program per static point: vmap over points of vmap over seeds, sharded on
    seeds."""

    def __init__(self, plan: _Plan, chunk_size, memory_budget):
        self.plan = plan
        self.n_dev = len(plan.devices)
        self.mesh = jax.sharding.Mesh(np.asarray(plan.devices), ("seed",))
        self.points = plan.dynamic_points()
        self.P = math.prod(plan.dynamic_shape)
        self.base_key = jax.random.key(plan.key)
        self._programs = {}
        self.outputs = self._output_shapes()
        if chunk_size is None:
            chunk_size = self._chunk_from_budget(_parse_bytes(memory_budget))
        self.chunk_size = min(_checks.check_positive_int("chunk_size", chunk_size), plan.seeds)

    def batch(self, chunk: int) -> int:
        return -(-chunk // self.n_dev) * self.n_dev

    def _fn(self, static):
        fn, check = self.plan.exp.fn, self.plan.exp.check
        skip = frozenset(self.plan.exp.not_applicable)

        def chunk(base_key, seeds, points):
            keys = jax.vmap(jax.random.fold_in, (None, 0))(base_key, seeds)
            per_seed = jax.vmap(lambda p, k: fn(k, **static, **p), (None, 0))
            out = jax.vmap(per_seed, (0, None), axis_size=self.P)(points, keys)
            return _flag_diverged(dict(out), check, skip)

        return chunk

    def _output_shapes(self) -> dict:
        """Output shapes and dtypes; tracing the experiment at every grid value (`jax.eval_shape`,
        nothing compiles) runs its argument checks on each value, so a bad value anywhere in the
        grid is refused before the scan starts."""
        fn, shapes = self.plan.exp.fn, None
        for params in self.plan.points_to_validate():
            try:
                got = jax.eval_shape(lambda k, p=params: fn(k, **p), self.base_key)
            except (InputError, _checks.InputTypeError) as e:
                where = {a: params[a] for a in self.plan.axes}
                at = f" at grid point {where}" if where else ""
                raise type(e)(f"{e}{at}") from None
            if shapes is None:
                shapes = got
        if not isinstance(shapes, Mapping) or not shapes:
            raise InputError(f"experiment {self.plan.exp.name!r} must return a non-empty dict")
        outputs = {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in shapes.items()}
        unknown = sorted(set(self.plan.exp.not_applicable) - set(outputs))
        if unknown:
            raise InputError(
                f"experiment {self.plan.exp.name!r} declares not_applicable for "
                f"{', '.join(unknown)}, which it does not return"
            )
        return outputs | {"diverged": ((), np.dtype(bool))}

    def program(self, s: int, batch: int):
        if (s, batch) not in self._programs:
            static = self.plan.static_params(s)
            seeds_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("seed"))
            out_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(None, "seed"))
            rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
            jitted = jax.jit(
                self._fn(static), in_shardings=(rep, seeds_sh, rep), out_shardings=out_sh
            )
            args = self._args(0, batch)
            self._programs[(s, batch)] = jitted.lower(*args).compile()
        return self._programs[(s, batch)]

    def _args(self, start: int, batch: int):
        seeds = jnp.arange(start, start + batch, dtype=jnp.int32)
        points = {a: jnp.asarray(v) for a, v in self.points.items()}
        return self.base_key, seeds, points

    def run(self, s: int, start: int, count: int) -> dict:
        """Outputs for seeds [start, start + count) at static point s: {name: (dyn…, count, …)}."""
        batch = self.batch(count)
        out = self.program(s, batch)(*self._args(start, batch))
        shape = self.plan.dynamic_shape
        res = {}
        for name, v in jax.device_get(out).items():
            v = np.asarray(v)[:, :count]
            want, _ = self.outputs[name]
            if v.shape[2:] != want:
                raise InputError(
                    f"output {name!r} has shape {v.shape[2:]} at static point "
                    f"{self.plan.static_params(s)}, but {want} at the first point; outputs must "
                    "keep their shapes across the grid"
                )
            res[name] = v.reshape(shape + v.shape[1:])
        return res

    def _chunk_from_budget(self, budget: int) -> int:
        """Seeds per chunk so that a chunk's buffers fit `budget` bytes per device at every
        static point (their sizes differ: n = 4000 needs 16× the memory of n = 1000)."""
        per_seed = 0
        for s in range(len(self.plan.static_points)):
            mem = self.program(s, self.n_dev).memory_analysis()  # one seed per device
            if mem is None:
                return min(self.plan.seeds, 16 * self.n_dev)
            used = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
            per_seed = max(per_seed, used)
        if not per_seed:
            return min(self.plan.seeds, 16 * self.n_dev)
        most = max(1, budget // per_seed) * self.n_dev
        n_chunks = -(-self.plan.seeds // most)  # as few chunks as fit, then equal sizes:
        even = -(-self.plan.seeds // n_chunks)  # 32 seeds at most 31 a chunk → 16 + 16
        return -(-even // self.n_dev) * self.n_dev


def _flag_diverged(out: dict, check, skip=frozenset()) -> dict:
    """`diverged` (P, S) = any non-finite value in the checked outputs (default: every floating
    output not declared `not_applicable`); a diverged seed's floats become NaN."""
    names = (
        check
        if check is not None
        else [k for k, v in out.items() if _floating(v) and k not in skip]
    )
    lead = next(iter(out.values())).shape[:2]
    own = out.get("diverged")  # a training run reports its own stop (jaxfeat.train)
    bad = jnp.zeros(lead, bool) if own is None else own.reshape(lead).astype(bool)
    for name in names:
        v = out[name]
        if _floating(v):
            bad = bad | ~jnp.all(jnp.isfinite(v.reshape(lead + (-1,))), axis=-1)
    masked = {
        k: jnp.where(bad.reshape(lead + (1,) * (v.ndim - 2)), jnp.nan, v) if _floating(v) else v
        for k, v in out.items()
    }
    return masked | {"diverged": bad}


def _floating(v) -> bool:
    return jnp.issubdtype(v.dtype, jnp.floating)


def _parse_bytes(x) -> int:
    """Bytes from a number (or a digit string, as the CLI passes it) or '2GiB', '500MB', …"""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0:
        return int(x)
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 1e3, "mb": 1e6, "gb": 1e9, "b": 1}
    s = str(x).strip().lower()
    for u, f in list(units.items()) + [("", 1)]:
        if s.endswith(u):
            with contextlib.suppress(ValueError):
                v = float(s[: len(s) - len(u)]) * f
                if math.isfinite(v) and v >= 1:
                    return int(v)
    raise InputError(f"memory_budget must be a positive number of bytes or like '2GiB', got {x!r}")


# --------------------------------------------------------------------------- the loop


def _run_chunks(runner: _Runner, store, todo: list, progress: bool) -> None:
    """Compute and write every chunk in `todo` that no other writer holds, then wait for the
    chunks other writers hold (taking over those whose writer died); a first Ctrl-C stops after
    the current chunk."""
    from tqdm.auto import tqdm

    stop = _StopFlag()
    t0, seeds_done, waiting_said = time.perf_counter(), 0, False
    pending = list(todo)
    with stop, tqdm(total=len(todo), unit="chunk", disable=not progress, file=sys.stderr) as bar:
        while pending:
            held = []
            for s, c in pending:
                if store.is_done(s, c):  # finished by another writer
                    bar.update()
                    continue
                if not store.claim(s, c):
                    held.append((s, c))
                    continue
                try:
                    if not store.is_done(s, c):  # it may have finished while we claimed it
                        start = c * store.chunk_size
                        count = min(store.chunk_size, runner.plan.seeds - start)
                        store.write(s, c, runner.run(s, start, count))
                        seeds_done += count
                        rate = seeds_done / (time.perf_counter() - t0)
                        bar.set_postfix(seeds_per_s=f"{rate:.3g}")
                finally:
                    store.release(s, c)
                bar.update()
                if stop.requested:
                    print(
                        f"jaxfeat: interrupted; {bar.n}/{len(todo)} chunks of this run are "
                        "saved, rerun the same command to continue",
                        file=sys.stderr,
                    )
                    raise KeyboardInterrupt
            pending = held
            if pending:
                if not waiting_said and progress:
                    print(
                        f"\njaxfeat: waiting for {len(pending)} chunks that another writer is "
                        "computing",
                        file=sys.stderr,
                    )
                    waiting_said = True
                time.sleep(0.2)
                if stop.requested:
                    raise KeyboardInterrupt


class _StopFlag:
    """SIGINT sets a flag (checked between chunks); a second SIGINT interrupts at once."""

    requested = False

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\njaxfeat: stopping after the current chunk (Ctrl-C again to abort)", file=sys.stderr
        )

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def summarize(ds, dim: str = "seed", quantiles=(0.1, 0.5, 0.9)):
    """Seed-averaged summary of a scan: mean, standard error and quantiles of every variable over
    `dim`, over the finished seeds that did not diverge; a new `stat` dimension holds them, plus
    `n_seeds` (the seeds used at each point). A value an output declares "not applicable"
    (`Experiment.not_applicable`) is left out of that output's statistics, and its standard
    error counts only the seeds where it applies."""
    import xarray as xr

    ok = ~ds["diverged"] if "diverged" in ds else xr.ones_like(ds[dim], dtype=bool)
    if "finished" in ds:
        ok = ok & ds["finished"]
    data = ds.drop_vars(["diverged", "finished"], errors="ignore").where(ok)
    data = data.drop_vars([c for c in data.coords if data[c].ndim == 0])  # from a .sel(x=…)
    for name in list(data.data_vars):
        fill = data[name].attrs.get("not_applicable")
        if fill is not None and fill != "NaN":
            data[name] = data[name].where(data[name] != float(fill))
    n = ok.sum(dim)
    parts = [data.mean(dim), data.std(dim, ddof=1) / np.sqrt(data.count(dim))]
    names = ["mean", "se"]
    for q in quantiles:
        parts.append(data.quantile(q, dim=dim).drop_vars("quantile"))
        names.append(f"q{round(100 * q):02d}")
    out = xr.concat(parts, dim=xr.DataArray(names, dims="stat", name="stat"))
    out["n_seeds"] = n
    out.attrs = dict(ds.attrs)
    return out
