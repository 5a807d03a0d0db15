"""The compiled program of a scan: per static point, one `jit` of vmap over the dynamic points of
vmap over seeds, sharded on seeds; output shapes traced (and every grid value checked) before
anything compiles; the chunk size from a memory budget; divergence flags."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import threading
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._checks import InputError
from .liveness import peak_bytes
from .plan import Plan


class Runner:
    """One jitted program per static point: vmap over points of vmap over seeds, sharded on
    seeds."""

    def __init__(self, plan: Plan, chunk_size, memory_budget, workers=None):
        self.plan = plan
        self.n_dev = len(plan.devices)
        self.mesh = jax.sharding.Mesh(np.asarray(plan.devices), ("seed",))
        self.points = plan.dynamic_points()
        self.P = math.prod(plan.dynamic_shape)
        self.base_key = jax.random.key(plan.key)
        self._programs = {}
        self._traced = {}  # traced for the memory estimate, awaiting their compile
        self._lock = threading.Lock()
        self.trace_seconds = 0.0  # tracing and lowering to StableHLO
        self.compile_seconds = 0.0  # XLA, or loading from the persistent compilation cache
        self.workers = default_workers(plan.devices) if workers is None else workers
        self.workers = _checks.check_positive_int("workers", self.workers)
        self.outputs = self._output_shapes()
        if chunk_size is None:
            chunk_size = self._chunk_from_budget(parse_bytes(memory_budget))
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
            return flag_diverged(dict(out), check, skip)

        return chunk

    def _output_shapes(self) -> dict:
        """Output shapes and dtypes; tracing the experiment at every grid value (`jax.eval_shape`,
        nothing compiles) runs its argument checks on each value, so a bad value anywhere in the
        grid is refused before the scan starts."""
        fn, shapes = self.plan.exp.fn, None
        for params in self.plan.points_to_validate():
            try:
                got = _traced_shapes(fn, params, self.base_key)
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
        """The compiled program of static point s for `batch` seeds (compiled once; workers
        asking for it at the same time wait for the one compile). A program compiled by an
        earlier scan of the same experiment function, static parameters, dynamic point shapes,
        batch, devices and JAX numerics config is reused (`PROGRAMS`): calling `jf.scan` again
        from a notebook does not compile again, as a `jax.jit`-ed function would not."""
        with self._lock:
            if (s, batch) not in self._programs:
                key = self._program_key(s, batch)
                compiled = PROGRAMS.get(key)
                if compiled is None:
                    compiled = PROGRAMS.put(key, self._compile(s, batch))
                self._programs[(s, batch)] = compiled
            return self._programs[(s, batch)]

    def _program_key(self, s: int, batch: int):
        """What a chunk program depends on besides the values of its arguments."""
        exp = self.plan.exp
        points = tuple((a, v.shape, str(v.dtype)) for a, v in sorted(self.points.items()))
        return (
            exp.fn, _canonical(exp.check), tuple(sorted(exp.not_applicable)),
            _canonical(self.plan.static_params(s)), points, batch,
            tuple((d.platform, d.id) for d in self.plan.devices), _numerics_config(),
        )  # fmt: skip

    def _jitted(self, s: int):
        seeds_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("seed"))
        out_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(None, "seed"))
        rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        fn = self._fn(self.plan.static_params(s))
        return jax.jit(fn, in_shardings=(rep, seeds_sh, rep), out_shardings=out_sh)

    def _compile(self, s: int, batch: int):
        t0 = time.perf_counter()
        traced = self._traced.pop((s, batch), None)
        if traced is None:
            traced = self._jitted(s).trace(*self._args(0, batch))
        lowered = traced.lower()
        t1 = time.perf_counter()
        compiled = lowered.compile()
        self.trace_seconds += t1 - t0
        self.compile_seconds += time.perf_counter() - t1
        return compiled

    def _args(self, start: int, batch: int):
        seeds = jnp.arange(start, start + batch, dtype=jnp.int32)
        points = {a: jnp.asarray(v) for a, v in self.points.items()}
        return self.base_key, seeds, points

    def run(self, s: int, start: int, count: int) -> dict:
        """Outputs for seeds [start, start + count) at static point s: {name: (dyn…, count, …)}.
        Every chunk runs the one program of its static point: a short last chunk is padded with
        the seeds after it (computed, then dropped) instead of compiling a program of its own."""
        batch = self.batch(max(count, self.chunk_size))
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
        """Seeds per chunk so that the `workers` chunks in flight fit `budget` bytes per device
        at every static point (their sizes differ: n = 4000 needs 16× the memory of n = 1000),
        sized before anything compiles, so each static point compiles one program.

        A chunk's bytes are estimated from its traced program (`liveness.peak_bytes`, within
        0.7–2.1× of XLA's `memory_analysis` on the registered presets), with `ESTIMATE_MARGIN`
        for the budget. After the programs compile, their measured sizes are checked against
        the budget; only when the estimate fell short does the chunk shrink and compile again.
        On a CPU a chunk holds at most `CPU_GUESS_SEEDS` seeds, stays near the caches
        (`CPU_CHUNK_BYTES`) when at least `CPU_MIN_CACHED_SEEDS` seeds fit there, and the
        seeds are split so that every worker has a chunk (at
        d = 128, 10 spike seeds: one seed a chunk ran 1.5× slower than `jit(vmap)` over all
        ten, five a chunk 0.99×; `benchmarks/results/one_step_protocols-cpu.json`)."""
        limit = budget // self.workers
        cpu = _on_cpu(self.plan.devices)
        probe = self._fit(0.0, 0.0, limit, cpu)  # what the caps alone allow
        n_static = range(len(self.plan.static_points))
        per_seed = max(self._estimate(s, probe) for s in n_static) / probe
        chunk = self._fit(per_seed, per_seed * ESTIMATE_MARGIN, limit, cpu)
        batch = self.batch(chunk)
        measured = [_total_bytes(self.program(s, batch).memory_analysis()) for s in n_static]
        self._traced.clear()  # the probe's traces, when the chunk differs from it
        most = max((m for m in measured if m is not None), default=0)
        if most // self.n_dev <= limit:
            return chunk
        return self._fit(most / batch, most / batch, limit, cpu)

    def _fit(self, per_seed: float, hard_per_seed: float, limit: int, cpu: bool) -> int:
        """Seeds per chunk (a multiple of the device count) for seeds of `per_seed` bytes per
        device (`hard_per_seed` against the budget's `limit`): as few chunks as fit, then equal
        sizes (32 seeds at most 31 a chunk → 16 + 16)."""
        seeds, n_dev = self.plan.seeds, self.n_dev
        most = seeds if hard_per_seed <= 0 else max(1, int(limit // hard_per_seed)) * n_dev
        if cpu:
            near_cache = int(CPU_CHUNK_BYTES // per_seed) if per_seed > 0 else seeds
            if near_cache >= CPU_MIN_CACHED_SEEDS:  # small seeds: keep a chunk near the caches
                most = min(most, near_cache * n_dev)
            most = min(most, CPU_GUESS_SEEDS * n_dev, -(-seeds // self.workers))  # all busy
        most = -(-max(1, min(most, seeds)) // n_dev) * n_dev
        n_chunks = -(-seeds // most)
        even = -(-seeds // n_chunks)
        return -(-even // n_dev) * n_dev

    def _estimate(self, s: int, batch: int) -> int:
        """Estimated peak bytes of static point s's program for `batch` seeds, from its trace
        (kept in `self._traced` for the compile when the chunk is `batch`; remembered in
        `ESTIMATES`, so a rerun traces nothing)."""
        key = self._program_key(s, batch)
        got = ESTIMATES.get(key)
        if got is None:
            t0 = time.perf_counter()
            traced = self._jitted(s).trace(*self._args(0, batch))
            got = ESTIMATES.put(key, peak_bytes(traced.jaxpr))
            self.trace_seconds += time.perf_counter() - t0
            self._traced[(s, batch)] = traced
        return got


def _total_bytes(mem) -> int | None:
    if mem is None:
        return None
    return mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes


# Measured on 2 CPU cores (benchmarks/results/scan-throughput-cpu.json): the local-convergence
# quick preset ran at 17 µs per seed-step with two chunks of 16–128 runs in flight, against
# 24–30 µs with one chunk of 64–256 (XLA's threads idle in each step's serial parts) and more
# as a chunk's buffers outgrow the caches; on accelerators one large chunk at a time.
CPU_WORKERS = 2
CPU_GUESS_SEEDS = 64
CPU_CHUNK_BYTES = 32 * 2**20
# Below this many seeds in `CPU_CHUNK_BYTES` a chunk cannot stay near the caches anyway: no
# cache cap (large GEMMs; the spike experiment at n = 1000 is 32 MiB a seed).
CPU_MIN_CACHED_SEEDS = 4
# XLA's measured bytes over the traced estimate reached 1/0.72 = 1.39 on the spike presets
# (elsewhere the estimate is the larger, up to 2.1×): the budget is checked against 1.5× it.
ESTIMATE_MARGIN = 1.5


def _on_cpu(devices) -> bool:
    return all(d.platform == "cpu" for d in devices)


class _Bounded:
    """A small least-recently-used map with a lock: compiled chunk programs by their key (a
    scan rerun in the same process reuses them; the oldest beyond `size` are dropped)."""

    def __init__(self, size: int):
        self.size, self._items, self._lock = size, collections.OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Compiled programs kept across `jf.scan` calls in this process (`PROGRAMS.clear()` frees them;
# like `jax.jit`'s own cache it keys on the function object, so an edited function recompiles).
PROGRAMS = _Bounded(32)


# Output shapes of (experiment function, parameters) already traced (and so validated) in this
# process: a rerun of the same scan skips tracing its grid again.
SHAPES = _Bounded(256)

# Estimated chunk bytes by program key (`Runner._estimate`): a rerun sizes its chunks without
# tracing again.
ESTIMATES = _Bounded(256)


def _traced_shapes(fn, params: dict, key):
    """`jax.eval_shape` of fn(key, **params), remembered in `SHAPES`."""
    cache_key = (fn, _canonical(params), _numerics_config())
    got = SHAPES.get(cache_key)
    if got is None:
        got = SHAPES.put(cache_key, jax.eval_shape(lambda k: fn(k, **params), key))
    return got


def _canonical(x) -> str:
    """A stable text key of parameters (JSON, sorted keys; anything else by repr)."""
    return json.dumps(x, sort_keys=True, default=repr)


def _numerics_config() -> tuple:
    """The JAX settings a traced program depends on beyond its arguments' shapes."""
    c = jax.config
    names = (
        "jax_enable_x64", "jax_numpy_rank_promotion", "jax_numpy_dtype_promotion",
        "jax_default_matmul_precision", "jax_default_prng_impl", "jax_threefry_partitionable",
    )  # fmt: skip
    return tuple(str(getattr(c, n, None)) for n in names)


def default_workers(devices) -> int:
    """Chunks computed at once: `CPU_WORKERS` on one CPU device, else 1."""
    return CPU_WORKERS if _on_cpu(devices) and len(devices) == 1 else 1


def flag_diverged(out: dict, check, skip=frozenset()) -> dict:
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


def parse_bytes(x) -> int:
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
