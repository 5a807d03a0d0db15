"""The grid × seeds engine: one compiled program per static configuration, seeds chunked to a
memory budget and sharded over devices, results written chunk by chunk to a resumable Zarr store.

Layout of a scan (DESIGN §4):

- grid axes whose parameter the experiment declares dynamic (α, c, λ, η, padded widths) are
  flattened into one vmapped axis; the other axes are static and loop in Python, one compile each;
- seed i always gets `fold_in(PRNGKey(key), i)`, so results never depend on chunking or devices,
  and every grid point sees the same seeds (common random numbers across the diagram);
- the seed axis is cut into chunks of `chunk_size` seeds; a chunk's batch is padded to a multiple
  of the device count and sharded over the devices; one chunk is one Zarr chunk of every output;
- a chunk is finished when its marker file exists (written atomically after its data): a rerun
  skips finished chunks and recomputes only unfinished ones, so a killed scan loses at most the
  chunks in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._checks import InputError
from .experiment import Experiment, from_function

_DONE = "_done"
_IDENTITY = ("experiment", "grid", "params", "seeds", "key", "x64")


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
    progress: bool = True,
):
    """Run `experiment` over every point of `grid` × `seeds` seeds; return an `xarray.Dataset`.

    **Arguments:**

    - `experiment`: an `Experiment`, a registered name (`jaxfeat.experiments.names()`), or a plain
      `fn(key, **params) -> dict[str, Array]` (its float-valued grid axes are vmapped).
    - `grid`: `{parameter: values}`; each axis becomes a coordinate of the dataset.
    - `seeds`: number of seeds S; seed i uses `fold_in(PRNGKey(key), i)`.
    - `out`: Zarr store path. Rerunning with the same `out` continues an interrupted scan; a store
      holding a different configuration is refused unless `overwrite=True`. `None`: in memory.
    - `params`: fixed values of the experiment's other parameters.
    - `chunk_size`: seeds per chunk; default from `memory_budget` (bytes or "2GiB"), measured
      on a one-seed-per-device compile.
    - `devices`: devices to shard each chunk over (default: all local devices).

    **Returns:** a Dataset with dims (grid axes…, seed, output dims…), a `diverged` flag per
    (point, seed) (its float outputs are NaN), and `attrs["jaxfeat_config"]` holding the config.
    Several processes started with `jax.distributed.initialize()` share the chunks of one store.
    """
    plan = _Plan(experiment, grid, seeds, params or {}, key, devices)
    store = _open_store(out, plan, overwrite) if out is not None else _MemoryStore(plan)
    chunk = store.chunk_size or chunk_size
    runner = _Runner(plan, chunk, memory_budget)
    store.ensure(runner)
    todo = [
        (s, c)
        for s in range(len(plan.static_points))
        for c in range(store.n_chunks)
        if not store.is_done(s, c)
        and (s * store.n_chunks + c) % jax.process_count() == jax.process_index()
    ]
    _run_chunks(runner, store, todo, progress)
    return store.dataset()


class _Plan:
    """Validated experiment, grid split into static and dynamic axes, and the scan's config."""

    def __init__(self, experiment, grid, seeds, params, key, devices):
        from . import experiments

        if isinstance(experiment, str):
            experiment = experiments.get(experiment)
        if not isinstance(grid, Mapping) or not grid:
            raise InputError("grid must be a non-empty mapping {parameter: values}")
        self.grid = {str(k): _axis_values(k, v) for k, v in grid.items()}
        self.exp: Experiment = from_function(experiment, self.grid)
        both = sorted(set(self.grid) & set(params))
        if both:
            raise InputError(f"parameter(s) {', '.join(both)} given both as grid axes and fixed")
        self.params = self.exp.resolve({**params, **{k: None for k in self.grid}})
        for k in self.grid:
            del self.params[k]
        self.seeds = _checks.check_positive_int("seeds", seeds)
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


def _axis_values(name, values) -> list:
    vals = list(values) if isinstance(values, (list, tuple, np.ndarray, range)) else [values]
    if not vals:
        raise InputError(f"grid axis {name!r} is empty")
    vals = [v.item() if isinstance(v, np.generic) else v for v in vals]
    if len({json.dumps(v) for v in vals}) != len(vals):
        raise InputError(f"grid axis {name!r} has repeated values: {vals}")
    return vals


def _json(obj) -> str:
    try:
        return json.dumps(obj, sort_keys=True)
    except TypeError as e:
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

        def chunk(base_key, seeds, points):
            keys = jax.vmap(jax.random.fold_in, (None, 0))(base_key, seeds)
            per_seed = jax.vmap(lambda p, k: fn(k, **static, **p), (None, 0))
            out = jax.vmap(per_seed, (0, None), axis_size=self.P)(points, keys)
            return _flag_diverged(dict(out), check)

        return chunk

    def _output_shapes(self) -> dict:
        static = self.plan.static_params(0)
        point = {a: v[0] for a, v in self.points.items()}
        shapes = jax.eval_shape(lambda k: self.plan.exp.fn(k, **static, **point), self.base_key)
        if not isinstance(shapes, Mapping) or not shapes:
            raise InputError(f"experiment {self.plan.exp.name!r} must return a non-empty dict")
        return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in shapes.items()} | {
            "diverged": ((), np.dtype(bool))
        }

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
        return max(1, budget // per_seed) * self.n_dev


def _flag_diverged(out: dict, check) -> dict:
    """`diverged` (P, S) = any non-finite value in the checked outputs; their floats become NaN."""
    names = check if check is not None else [k for k, v in out.items() if _floating(v)]
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
    if isinstance(x, (int, float)) and x > 0:
        return int(x)
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 1e3, "mb": 1e6, "gb": 1e9, "b": 1}
    s = str(x).strip().lower()
    for u, f in units.items():
        if s.endswith(u):
            with contextlib.suppress(ValueError):
                v = float(s[: -len(u)]) * f
                if v > 0:
                    return int(v)
    raise InputError(f"memory_budget must be a positive number of bytes or like '2GiB', got {x!r}")


# --------------------------------------------------------------------------- stores


class _BaseStore:
    chunk_size: int | None = None
    n_chunks: int = 0

    def __init__(self, plan: _Plan):
        self.plan = plan

    def ensure(self, runner: _Runner):
        self.runner = runner
        self.chunk_size = runner.chunk_size
        self.n_chunks = -(-self.plan.seeds // self.chunk_size)

    def dims(self, name: str) -> tuple[str, ...]:
        shape, _ = self.runner.outputs[name]
        named = tuple(self.plan.exp.dims.get(name, ()))
        extra = (
            named if len(named) == len(shape) else tuple(f"{name}_{i}" for i in range(len(shape)))
        )
        return tuple(self.plan.axes) + ("seed",) + extra

    def shape(self, name: str) -> tuple[int, ...]:
        shape, _ = self.runner.outputs[name]
        return tuple(len(self.plan.grid[a]) for a in self.plan.axes) + (self.plan.seeds,) + shape

    def region(self, s: int, c: int) -> tuple:
        point = dict(zip(self.plan.static, self.plan.static_points[s]))
        lo = c * self.chunk_size
        seeds = slice(lo, min(lo + self.chunk_size, self.plan.seeds))
        return tuple(point.get(a, slice(None)) for a in self.plan.axes) + (seeds,)

    def attrs(self) -> dict:
        from . import __version__

        return {
            "experiment": self.plan.exp.name,
            "description": self.plan.exp.description,
            "jaxfeat_config": _json(self.plan.config),
            "jaxfeat_version": __version__,
            "jax_version": jax.__version__,
            "devices": ", ".join(str(d) for d in self.plan.devices),
            "chunk_size": self.chunk_size,
            "chunks_total": len(self.plan.static_points) * self.n_chunks,
        }

    def coords(self) -> dict:
        c = {a: np.asarray(v) for a, v in self.plan.grid.items()}
        params = self.plan.static_params(0)
        extra = {d: np.asarray(fn(params)) for d, fn in self.plan.exp.coords.items()}
        return c | {"seed": np.arange(self.plan.seeds)} | extra


class _MemoryStore(_BaseStore):
    def ensure(self, runner):
        super().ensure(runner)
        self.data = {
            k: np.full(self.shape(k), np.nan if dt.kind == "f" else 0, dt)
            for k, (_, dt) in runner.outputs.items()
        }
        self.done = set()

    def is_done(self, s, c):
        return (s, c) in self.done

    def write(self, s, c, res):
        for k, v in res.items():
            self.data[k][self.region(s, c)] = v
        self.done.add((s, c))

    def dataset(self):
        import xarray as xr

        vars_ = {k: (self.dims(k), v) for k, v in self.data.items()}
        return xr.Dataset(vars_, coords=self.coords(), attrs=self.attrs())


class _ZarrStore(_BaseStore):
    """A Zarr v3 group: one array per output, chunked exactly like the scan; markers in `_done/`."""

    def __init__(self, plan, path, existing_chunk):
        super().__init__(plan)
        self.path = os.fspath(path)
        self.chunk_size = existing_chunk

    def ensure(self, runner):
        import zarr

        super().ensure(runner)
        ready = os.path.join(self.path, _DONE, "ready")
        if os.path.exists(ready):
            self.group = zarr.open_group(self.path, mode="r+")
            return
        if jax.process_index() != 0:  # process 0 creates the store; the others wait for it
            _wait_for(ready, "the store to be created by process 0")
            self.group = zarr.open_group(self.path, mode="r+")
            return
        g = zarr.open_group(self.path, mode="w", zarr_format=3)
        for name, values in self.coords().items():
            a = g.create_array(
                name, shape=values.shape, dtype=values.dtype, dimension_names=(name,)
            )
            a[:] = values
        for name, (_, dt) in runner.outputs.items():
            shape = self.shape(name)
            chunks = (
                tuple(
                    1 if a in self.plan.static else len(self.plan.grid[a]) for a in self.plan.axes
                )
                + (self.chunk_size,)
                + shape[len(self.plan.axes) + 1 :]
            )
            g.create_array(
                name,
                shape=shape,
                dtype=dt,
                chunks=chunks,
                dimension_names=self.dims(name),
                fill_value=np.nan if dt.kind == "f" else 0,
            )
        g.attrs.update(self.attrs())
        g.create_group(_DONE)
        _atomic_write(ready, "")
        self.group = g

    def _marker(self, s, c):
        return os.path.join(self.path, _DONE, f"s{s}-c{c}")

    def is_done(self, s, c):
        return os.path.exists(self._marker(s, c))

    def write(self, s, c, res):
        region = self.region(s, c)
        for k, v in res.items():
            self.group[k][region] = v
        _atomic_write(self._marker(s, c), json.dumps({"pid": os.getpid(), "time": time.time()}))
        with open(
            os.path.join(self.path, _DONE, "journal"), "a"
        ) as f:  # one line per computed chunk
            f.write(f"s{s}-c{c}\n")

    def dataset(self):
        import xarray as xr

        total = len(self.plan.static_points) * self.n_chunks
        if jax.process_count() > 1:  # every process returns the whole scan
            for s, c in itertools.product(
                range(len(self.plan.static_points)), range(self.n_chunks)
            ):
                _wait_for(self._marker(s, c), f"chunk s{s}-c{c} ({total} in all)")
        return xr.open_zarr(self.path, consolidated=False)


def _open_store(out, plan: _Plan, overwrite: bool) -> _ZarrStore:
    """Open `out` for this plan: new, resumed (same config), refused (different), or overwritten."""
    path = os.fspath(out)
    cfg_file = os.path.join(path, "zarr.json")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"out {path!r} exists and is not a directory")
    existing_chunk = None
    if os.path.exists(cfg_file):
        stored = _stored_config(path)
        if stored is None and not overwrite:
            raise InputError(
                f"out {path!r} is a Zarr store not written by jaxfeat.scan; use --overwrite"
            )
        if stored is not None and not overwrite:
            diff = [k for k in _IDENTITY if _json(stored[0].get(k)) != _json(plan.config.get(k))]
            if diff:
                raise InputError(
                    f"out {path!r} holds a different scan (differs in: {', '.join(diff)}); "
                    "choose another --out or pass --overwrite"
                )
            existing_chunk = stored[1]
        if overwrite and jax.process_index() == 0:
            shutil.rmtree(path)
    elif os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise InputError(f"out {path!r} is a non-empty directory that is not a jaxfeat store")
    elif os.path.isdir(path) and overwrite and jax.process_index() == 0:
        shutil.rmtree(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        probe = os.path.abspath(path) + f".probe-{os.getpid()}"
        _atomic_write(probe, "")
        os.remove(probe)
    except OSError as e:
        raise InputError(f"out {path!r} is not writable: {e.strerror or e}") from None
    return _ZarrStore(plan, path, existing_chunk)


def _stored_config(path):
    with open(os.path.join(path, "zarr.json")) as f:
        attrs = json.load(f).get("attributes", {})
    if "jaxfeat_config" not in attrs:
        return None
    return json.loads(attrs["jaxfeat_config"]), attrs.get("chunk_size")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _wait_for(path: str, what: str, timeout: float = 3600.0) -> None:
    t0 = time.monotonic()
    while not os.path.exists(path):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- the loop


def _run_chunks(runner: _Runner, store: _BaseStore, todo: list, progress: bool) -> None:
    """Compute and write every chunk in `todo`; a first Ctrl-C stops after the current chunk."""
    from tqdm.auto import tqdm

    stop = _StopFlag()
    t0, seeds_done = time.perf_counter(), 0
    with stop, tqdm(total=len(todo), unit="chunk", disable=not progress, file=sys.stderr) as bar:
        for s, c in todo:
            start = c * store.chunk_size
            count = min(store.chunk_size, runner.plan.seeds - start)
            store.write(s, c, runner.run(s, start, count))
            seeds_done += count
            bar.set_postfix(seeds_per_s=f"{seeds_done / (time.perf_counter() - t0):.3g}")
            bar.update()
            if stop.requested:
                print(
                    f"jaxfeat: interrupted; {bar.n}/{len(todo)} chunks of this run are saved, "
                    "rerun the same command to continue",
                    file=sys.stderr,
                )
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
    `dim`, excluding diverged seeds; a new `stat` dimension holds them, plus `n_seeds` (seeds
    used)."""
    import xarray as xr

    ok = ~ds["diverged"] if "diverged" in ds else xr.ones_like(ds[dim], dtype=bool)
    data = ds.drop_vars("diverged", errors="ignore").where(ok)
    n = ok.sum(dim)
    parts = [data.mean(dim), data.std(dim, ddof=1) / np.sqrt(n)]
    names = ["mean", "se"]
    for q in quantiles:
        parts.append(data.quantile(q, dim=dim).drop_vars("quantile"))
        names.append(f"q{round(100 * q):02d}")
    out = xr.concat(parts, dim=xr.DataArray(names, dims="stat", name="stat"))
    out["n_seeds"] = n
    out.attrs = dict(ds.attrs)
    return out
