"""The compiled programs of a scan: one `jit` of vmap over the dynamic points of vmap over seeds,
sharded on seeds, per static point, or per bucket of static points that share a program (sizes
below a static capacity, `Experiment.capacity`); output shapes traced (and every grid value
checked) before anything compiles; the buckets from a cost model; the chunk size from a memory
budget; the largest program compiled first (for the memory check), the others as the loop first
needs them; divergence flags.

Measured on 2 CPU cores (the spikes quick preset): compiling the next program in a background
thread beside two busy workers slowed both (compile 2.7 → 5.5 s, a chunk 4 → 7 s) and won
nothing, so a worker compiles when it first needs a program (on an accelerator a host thread
might pay; not measured: no accelerator was lent)."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._checks import InputError
from . import cost as _cost
from .liveness import peak_bytes
from .plan import Plan


class Runner:
    """One jitted program per static point, or per bucket of static points: vmap over points of
    vmap over seeds, sharded on seeds.

    `buckets` (for an experiment that declares `capacity`): `"auto"` groups the values of a
    capacity axis (n, say) into buckets by the cost model (`cost.choose_buckets`: a compile
    against the padded compute, from `calibration`), `"off"` compiles one program per value,
    an int k exactly k programs (the cheapest split; one per value when fewer)."""

    def __init__(
        self,
        plan: Plan,
        chunk_size,
        memory_budget,
        workers=None,
        buckets: str | int = "auto",
        calibration=None,
        measure: bool = True,
    ):
        self.plan = plan
        self.n_dev = len(plan.devices)
        self.mesh = jax.sharding.Mesh(np.asarray(plan.devices), ("seed",))
        self.points = plan.dynamic_points()
        self.P = math.prod(plan.dynamic_shape)
        self.base_key = jax.random.key(plan.key)
        self._programs: dict[tuple[int, int], Future] = {}
        self._traced = {}  # traced for the memory estimate, awaiting their compile
        self._lock = threading.Lock()
        self.calibration = calibration or _cost.Calibration()
        self.trace_seconds = 0.0  # tracing and lowering to StableHLO
        self.compile_seconds = 0.0  # XLA, or loading from the persistent compilation cache
        self.flops_done = 0.0  # their flops, as the cost model counts them
        self._flops: dict[tuple[int, int], float] = {}
        self._loop_mark = 0.0
        self.compiled: list[dict] = []  # one record per program compiled by this runner
        self.workers = default_workers(plan.devices) if workers is None else workers
        self.workers = _checks.check_positive_int("workers", self.workers)
        buckets = _check_buckets(buckets)
        self.outputs = self._output_shapes()
        self._group_programs(buckets)
        self.measure = measure  # False: size chunks from the estimate alone, compiling nothing
        if chunk_size is None:
            chunk_size = self._chunk_from_budget(parse_bytes(memory_budget))
        self.chunk_size = min(_checks.check_positive_int("chunk_size", chunk_size), plan.seeds)

    def batch(self, chunk: int) -> int:
        return -(-chunk // self.n_dev) * self.n_dev

    def _fn(self, static):
        fn, check = self.plan.exp.fn, self.plan.exp.check
        skip = frozenset(self.plan.exp.not_applicable)

        def chunk(base_key, seeds, points, sized):
            keys = jax.vmap(jax.random.fold_in, (None, 0))(base_key, seeds)
            per_seed = jax.vmap(lambda p, k: fn(k, **static, **sized, **p), (None, 0))
            out = jax.vmap(per_seed, (0, None), axis_size=self.P)(points, keys)
            return flag_diverged(dict(out), check, skip)

        return chunk

    def _group_programs(self, buckets) -> None:
        """Which program each static point runs: `self.program_of[s]` (an index into
        `self.fixed`, the static arguments of each program) and `self.sized[s]` (the sizes it
        passes as values). A static point alone in its bucket runs its exact-size program."""
        plan, n_static = self.plan, len(self.plan.static_points)
        axes = [a for a in plan.static if a in plan.exp.capacity]
        axis = axes[0] if axes and buckets != "off" else None
        if axis is not None and not all(_checks_size(v) for v in plan.grid[axis]):
            axis = None
        self.bucket_axis = axis
        self.buckets = self._choose_buckets(axis, buckets) if axis else None
        self.fixed, self.program_of, self.sized, seen = [], [], [], {}
        for s in range(n_static):
            params, sized = plan.static_params(s), {}
            bucket = self._bucket_of(params[axis]) if axis else None
            if bucket is not None and len(bucket) > 1:
                sized = {axis: params.pop(axis)}
                params[plan.exp.capacity[axis]] = max(bucket)
                self._validate_sized(params, sized, s)
            key = _canonical(params)
            if key not in seen:
                seen[key] = len(self.fixed)
                self.fixed.append(params)
            self.program_of.append(seen[key])
            self.sized.append(sized)

    def _bucket_of(self, value):
        assert self.buckets is not None
        return next(b for b in self.buckets if value in b)

    def _choose_buckets(self, axis: str, buckets) -> list[list[int]]:
        """Buckets of the axis's values (module docstring of `cost`): the seconds of a static
        point are its exact program's flops per seed × seeds × dynamic points at this
        machine's calibrated rate, a compile the calibrated seconds per equation of the
        largest program (each value's costliest static point stands for it)."""
        plan = self.plan
        per_value: dict[int, float] = {}
        equations = 0
        for s in range(len(plan.static_points)):
            v = plan.static_params(s)[axis]
            f, eq = self._point_cost(s)
            per_value[v] = max(per_value.get(v, 0.0), f * plan.seeds)
            equations = max(equations, eq)
        name = plan.exp.name
        compile_s = self.calibration.compile_seconds(equations, name)
        seconds = lambda v: self.calibration.compute_seconds(per_value[v], name)  # noqa: E731
        most = None if buckets == "auto" else int(buckets)
        return _cost.choose_buckets(list(per_value), seconds, compile_s, most)

    def _point_cost(self, s: int) -> tuple[float, int]:
        """(flops per seed, equations) of static point s at exact size, from the per-seed trace
        that validated its bucket-axis value (the other axes at their first values; the
        dynamic points assumed to cost alike)."""
        plan = self.plan
        first = {a: v[0] for a, v in plan.grid.items()}
        axis = self.bucket_axis
        params = {**plan.params, **first, axis: plan.static_params(s)[axis]}
        _, flops, equations = _traced(plan.exp.fn, params, self.base_key)
        return flops * self.P, equations

    def _validate_sized(self, params: dict, sized: dict, s: int) -> None:
        """Run the experiment's checks with the size given below its capacity (concrete), and
        check that the outputs keep the exact run's shapes."""
        got = _traced_shapes(self.plan.exp.fn, {**params, **sized}, self.base_key)
        shapes = {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in got.items() if k != "diverged"}
        want = {k: v for k, v in self.outputs.items() if k != "diverged"}
        if shapes != want:
            raise InputError(
                f"experiment {self.plan.exp.name!r} returns other shapes below a capacity at "
                f"{self.plan.static_params(s)}: {shapes} against {want}"
            )

    def program_summary(self) -> list[str]:
        """One line per compiled program: its static point(s), and the capacity a bucket
        runs at."""
        lines = []
        for pid, fixed in enumerate(self.fixed):
            members = [s for s, p in enumerate(self.program_of) if p == pid]
            axis = self.bucket_axis
            point = {a: self.plan.static_params(members[0])[a] for a in self.plan.static}
            if axis and self.sized[members[0]]:
                cap = fixed[self.plan.exp.capacity[axis]]
                values = ", ".join(str(self.sized[s][axis]) for s in members)
                others = [f"{a}={v}" for a, v in point.items() if a != axis]
                lines.append(", ".join([*others, f"{axis} ∈ {{{values}}} at capacity {cap}"]))
            else:
                lines.append(", ".join(f"{a}={v}" for a, v in point.items()) or "one point")
        return lines

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

    def program(self, pid: int, batch: int):
        """Compiled program `pid` for `batch` seeds (compiled once; a worker asking for it
        while another compiles it waits for that compile, while workers running other programs
        go on). A program compiled by an earlier scan of the same experiment function, static
        parameters, dynamic point shapes, batch, devices and JAX numerics config is reused
        (`PROGRAMS`): calling `jf.scan` again from a notebook does not compile again, as a
        `jax.jit`-ed function would not."""
        with self._lock:
            slot = self._programs.get((pid, batch))
            mine = slot is None
            if mine:
                slot = self._programs[(pid, batch)] = Future()
        assert slot is not None
        if mine:
            try:
                key = self._compiled_key(pid, batch)
                got = PROGRAMS.get(key)
                if got is None:
                    got = PROGRAMS.put(key, self._compile(pid, batch))
                self._flops[(pid, batch)] = got[1]
                slot.set_result(got[0])
            except BaseException as e:
                slot.set_exception(e)
                with self._lock:
                    del self._programs[(pid, batch)]
                raise
        return slot.result()

    def is_compiled(self, pid: int, batch: int) -> bool:
        slot = self._programs.get((pid, batch))
        return slot is not None and slot.done() and slot.exception() is None

    def _compiled_key(self, pid: int, batch: int):
        """The key of a compiled program: its program key and its compiler options (a small
        scan's level-1 program is not reused by a large one, nor the reverse)."""
        return self._program_key(pid, batch), _canonical(self._compiler_options(pid, batch))

    def _program_key(self, pid: int, batch: int):
        """What a chunk program depends on besides the values of its arguments."""
        sized = tuple(sorted(self.sized[self.program_of.index(pid)]))
        return self._key_of(self.fixed[pid], sized, batch)

    def _key_of(self, params: dict, sized: tuple, batch: int):
        exp = self.plan.exp
        points = tuple((a, v.shape, str(v.dtype)) for a, v in sorted(self.points.items()))
        return (
            exp.fn, _canonical(exp.check), tuple(sorted(exp.not_applicable)),
            _canonical(params), sized, points, batch,
            tuple((d.platform, d.id) for d in self.plan.devices), _numerics_config(),
        )  # fmt: skip

    def _jitted(self, params: dict):
        seeds_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("seed"))
        out_sh = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(None, "seed"))
        rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        fn = self._fn(params)
        return jax.jit(fn, in_shardings=(rep, seeds_sh, rep, rep), out_shardings=out_sh)

    def _trace(self, pid: int, batch: int):
        s = self.program_of.index(pid)
        return self._jitted(self.fixed[pid]).trace(*self._args(s, 0, batch))

    def _compile(self, pid: int, batch: int):
        flops, equations = self._costs(pid, batch)  # while the trace is still kept
        options = self._compiler_options(pid, batch)
        t0 = time.perf_counter()
        traced = self._traced.pop((pid, batch), None)
        if traced is None:
            traced = self._trace(pid, batch)
        lowered = traced.lower()
        t1 = time.perf_counter()
        compiled = lowered.compile(compiler_options=options) if options else lowered.compile()
        t2 = time.perf_counter()
        with self._lock:
            self.trace_seconds += t1 - t0
            self.compile_seconds += t2 - t1
            self.compiled.append(
                dict(program=self.program_summary()[pid], batch=batch, equations=equations,
                     trace_s=t1 - t0, compile_s=t2 - t1, options=options)
            )  # fmt: skip
        self.calibration.record_compile(equations, t2 - t1, self.plan.exp.name)
        return compiled, flops

    def _compiler_options(self, pid: int, batch: int) -> dict:
        """XLA options for program `pid`: on a CPU, backend optimisation level `QUICK_LEVEL`
        when its chunks compute for less than `QUICK_PROGRAM` × its compile, else XLA's
        defaults. Measured on the spikes program (n = 1000, 16 seeds, 2 cores): level 2 (the
        default) compiles in 2.80 s and runs a chunk in 0.507 s, level 1 in 2.03 s and
        0.540 s, level 0 in 1.31 s and 1.207 s; level 1 saves ~27 % of a compile for ~6 %
        of compute, so it pays below about 4× (a quick preset, a notebook's small scan).
        Decided from the built-in rates (`cost.Calibration()`), not this machine's measured
        ones, so that the choice follows the plan alone."""
        if not _on_cpu(self.plan.devices):
            return {}
        flops, equations = self._costs(pid, batch)
        rates, name = _cost.Calibration(), self.plan.exp.name
        compile_s = rates.compile_seconds(equations, name)
        chunk = getattr(self, "chunk_size", batch)  # not set yet while the chunk is sized
        runs = -(-self.plan.seeds // chunk) * self.program_of.count(pid)
        compute_s = runs * rates.compute_seconds(flops, name)
        if compute_s >= QUICK_PROGRAM * compile_s:
            return {}
        return {"xla_backend_optimization_level": QUICK_LEVEL}

    def _costs(self, pid: int, batch: int) -> tuple[float, int]:
        """(flops, equations) of program `pid` at `batch` seeds, from its trace (kept for the
        compile; remembered in `COSTS`, so a rerun traces nothing)."""
        key = self._program_key(pid, batch)
        got = COSTS.get(key)
        if got is None:
            traced = self._traced.get((pid, batch))
            if traced is None:
                t0 = time.perf_counter()
                traced = self._traced[(pid, batch)] = self._trace(pid, batch)
                self.trace_seconds += time.perf_counter() - t0
            got = COSTS.put(key, (_cost.flops(traced.jaxpr), _cost.equations(traced.jaxpr)))
        return got

    def _args(self, s: int, start: int, batch: int):
        return self._args_for(self.sized[s], start, batch)

    def _args_for(self, sized: dict, start: int, batch: int):
        seeds = jnp.arange(start, start + batch, dtype=jnp.int32)
        points = {a: jnp.asarray(v) for a, v in self.points.items()}
        return self.base_key, seeds, points, {a: jnp.int32(v) for a, v in sized.items()}

    def run(self, s: int, start: int, count: int) -> dict:
        """Outputs for seeds [start, start + count) at static point s: {name: (dyn…, count, …)}.
        Every chunk runs the one program of its static point (or bucket): a short last chunk
        is padded with the seeds after it (computed, then dropped) instead of compiling a
        program of its own."""
        batch = self.batch(max(count, self.chunk_size))
        pid = self.program_of[s]
        out = self.program(pid, batch)(*self._args(s, start, batch))
        with self._lock:
            self.flops_done += self._flops.get((pid, batch), 0.0)
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
        estimates = [self._estimate(pid, probe) for pid in range(len(self.fixed))]
        largest = int(np.argmax(estimates))
        per_seed = estimates[largest] / probe
        chunk = self._fit(per_seed, per_seed * ESTIMATE_MARGIN, limit, cpu)
        batch = self.batch(chunk)
        if not self.measure:
            return chunk
        # the largest program is compiled now and measured; the others as the loop needs them
        measured = _total_bytes(self.program(largest, batch).memory_analysis())
        for key in [k for k in self._traced if k[1] != batch]:
            del self._traced[key]  # the probe's traces, when the chunk differs from it
        if measured is None or measured // self.n_dev <= limit:
            return chunk
        return self._fit(measured / batch, measured / batch, limit, cpu)

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

    def _estimate(self, pid: int, batch: int) -> int:
        """Estimated peak bytes of program `pid` for `batch` seeds, from its trace (kept in
        `self._traced` for the compile when the chunk is `batch`; remembered in `ESTIMATES`,
        so a rerun traces nothing)."""
        key = self._program_key(pid, batch)
        got = ESTIMATES.get(key)
        if got is None:
            t0 = time.perf_counter()
            traced = self._trace(pid, batch)
            got = ESTIMATES.put(key, peak_bytes(traced.jaxpr))
            self.trace_seconds += time.perf_counter() - t0
            self._traced[(pid, batch)] = traced
        return got

    def pending_compile_seconds(self) -> float:
        """Calibrated compile seconds of the programs this scan still has to compile."""
        batch = self.batch(self.chunk_size)
        total = 0.0
        for pid in range(len(self.fixed)):
            slot = self._programs.get((pid, batch))
            if slot is not None and slot.done():
                continue
            if (pid, batch) in self._traced and PROGRAMS.get(
                self._compiled_key(pid, batch)
            ) is None:
                eqs = self._costs(pid, batch)[1]
                total += self.calibration.compile_seconds(eqs, self.plan.exp.name)
        return total

    def compiling_in_loop(self) -> float:
        """Seconds spent compiling since `mark_loop` (the loop's compile time)."""
        return self.trace_seconds + self.compile_seconds - self._loop_mark

    def mark_loop(self) -> None:
        self._loop_mark = self.trace_seconds + self.compile_seconds

    def chunk_seconds_estimate(self) -> float:
        """Calibrated seconds of one chunk of the average static point (before any ran)."""
        batch = self.batch(self.chunk_size)
        n_chunks = -(-self.plan.seeds // self.chunk_size) * len(self.plan.static_points)
        return self.estimate_seconds(batch)[1] / max(n_chunks, 1)

    def estimate_seconds(self, batch: int) -> tuple[float, float]:
        """(compiling, computing) seconds of the whole scan from the programs' traces at
        `batch` seeds a chunk and this machine's calibration (`cost.Calibration`): programs
        not yet compiled (a program already compiled in this process costs nothing), and every
        static point's chunks."""
        compile_s, compute_s = 0.0, 0.0
        n_chunks = -(-self.plan.seeds // self.chunk_size)
        name = self.plan.exp.name
        for pid in range(len(self.fixed)):
            flops = self._flops.get((pid, batch))
            if flops is None:
                flops, eqs = self._costs(pid, batch)
                if PROGRAMS.get(self._compiled_key(pid, batch)) is None:
                    compile_s += self.calibration.compile_seconds(eqs, name)
            runs = n_chunks * self.program_of.count(pid)
            compute_s += runs * self.calibration.compute_seconds(flops, name)
        return compile_s, compute_s


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


#: a program whose chunks compute for less than QUICK_PROGRAM × its compile is compiled at XLA
#: backend optimisation level QUICK_LEVEL on a CPU (`Runner._compiler_options`)
QUICK_LEVEL, QUICK_PROGRAM = 1, 4.0

# Compiled programs (with their flops) kept across `jf.scan` calls in this process, keyed on the
# program and its compiler options (`clear_caches()` frees them; like `jax.jit`'s own cache it
# keys on the function object, so an edited function recompiles).
PROGRAMS = _Bounded(32)


# Output shapes of (experiment function, parameters) already traced (and so validated) in this
# process: a rerun of the same scan skips tracing its grid again.
SHAPES = _Bounded(256)

# Estimated chunk bytes by program key (`Runner._estimate`): a rerun sizes its chunks without
# tracing again.
ESTIMATES = _Bounded(256)

# (flops, equations) by program key (`Runner._costs`): what the compiler options are chosen from.
COSTS = _Bounded(256)


def clear_caches() -> None:
    """Forget every compiled program, traced shape, estimate and cost kept in this process."""
    for cache in (PROGRAMS, SHAPES, ESTIMATES, COSTS):
        cache.clear()


def _check_buckets(buckets):
    """`"auto"`, `"off"` or a positive int (that many programs for the bucketed axis)."""
    if buckets in ("auto", "off"):
        return buckets
    if isinstance(buckets, str) and buckets.isdigit():
        buckets = int(buckets)
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise InputError(f"buckets must be 'auto', 'off' or a positive int, got {buckets!r}")
    return buckets


def _checks_size(v) -> bool:
    """A value a capacity axis can pass as a dynamic size: a positive int."""
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _traced_shapes(fn, params: dict, key):
    """Output shapes of fn(key, **params) (traced, nothing compiles), remembered in `SHAPES`."""
    return _traced(fn, params, key)[0]


def _traced(fn, params: dict, key):
    """(output shapes, flops, equations) of one seed of fn(key, **params), from one trace
    (`jax.make_jaxpr`; nothing compiles), remembered in `SHAPES`."""
    cache_key = (fn, _canonical(params), _numerics_config())
    got = SHAPES.get(cache_key)
    if got is None:
        jaxpr, shapes = jax.make_jaxpr(lambda k: fn(k, **params), return_shape=True)(key)
        got = SHAPES.put(cache_key, (shapes, _cost.flops(jaxpr), _cost.equations(jaxpr)))
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
