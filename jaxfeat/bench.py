"""`jaxfeat bench`: what the kernels users call cost on this machine, against problem size and
against the per-seed loops a user would otherwise write (`jaxfeat bench --quick`).

For every case and size: compile seconds (`jit(...).lower(...).compile()`) and steady-state
seconds (the median of `repeats` calls after a warm-up, each `block_until_ready`) measured
separately; XLA's memory analysis of the compiled program (argument + output + temporaries);
achieved FLOP/s (XLA's cost analysis) against this machine's GEMM rate, and bytes/s against its
copy bandwidth, both measured in the same run; the log-log slope of steady time against the
swept size. Cases over seeds also time, in the same process, a Python loop over the jitted
one-seed function (what a JAX user writes without `vmap`, the strongest per-seed baseline:
the whole run is one compiled call) and, where the maths is short, a NumPy per-seed loop.
The process's peak RSS is recorded once (it only grows). Results: JSON (with machine and
versions) and a figure, one panel per case.

XLA's cost analysis counts a loop's body once, not once per trip, so for programs built on
`lax.scan`/`while` (`train`, the streamed paths) `flop_rate_vs_gemm` is a lower bound.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._checks import InputError
from ._scan.seed_batches import map_seeds

__all__ = ["CASES", "Case", "run_bench", "machine_rates"]


@dataclasses.dataclass(frozen=True)
class Case:
    """A kernel to time against one size axis.

    `build(size)` returns `(fn, args, baselines)`: `fn` a function to `jax.jit`, `args` its
    arguments, `baselines` `{label: zero-argument callable}` timed at the same size (each
    returns arrays; it is called once to warm up, then timed)."""

    name: str
    axis: str
    quick: tuple[int, ...]
    full: tuple[int, ...]
    build: Callable
    expected_slope: float | None = None
    description: str = ""


def _median_seconds(call, repeats: int) -> float:
    return _interleaved({"t": call}, repeats)["t"]


def _interleaved(calls: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument call, timed in turn (a, b, a, b, …) after one
    warm-up each: on a shared machine whose speed drifts, the ratios between them stay fair."""
    for call in calls.values():
        jax.block_until_ready(call())
    times: dict = {k: [] for k in calls}
    for _ in range(repeats):
        for k, call in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def machine_rates(size: int = 1024, mib: int = 64) -> dict:
    """This machine's float32 GEMM rate (FLOP/s of an n×n matmul) and copy bandwidth (bytes/s
    of y = 2x on `mib` MiB, read + write), measured now: the roofline the cases are read
    against."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    gemm = 2.0 * size**3 / _median_seconds(lambda: _mm(a), 5)
    x = jnp.ones(mib * 2**20 // 4, jnp.float32)
    bandwidth = 2.0 * x.nbytes / _median_seconds(lambda: _double(x), 5)
    return {"gemm_flops": gemm, "copy_bytes_per_s": bandwidth}


_mm = jax.jit(lambda a: a @ a)
_double = jax.jit(lambda x: 2.0 * x)


def _measure(case: Case, size: int, repeats: int, rates: dict) -> dict:
    """One case at one size: compile and steady seconds, memory, FLOP/s, baselines (timed
    interleaved with the case itself)."""
    fn, args, baselines = case.build(size)[:3]
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    timed = _interleaved({"steady": lambda: compiled(*args), **baselines}, repeats)
    steady = timed.pop("steady")
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    mem = compiled.memory_analysis()
    flops = float(cost.get("flops", 0.0))
    moved = float(cost.get("bytes accessed", 0.0))
    row = {
        "size": size,
        "compile_s": compile_s,
        "steady_s": steady,
        "memory_bytes": _memory_bytes(mem),
        "flops": flops,
        "flop_rate_vs_gemm": flops / steady / rates["gemm_flops"],
        "byte_rate_vs_copy": moved / steady / rates["copy_bytes_per_s"],
    }
    for label, seconds in timed.items():
        factor = getattr(baselines[label], "factor", 1.0)
        row[f"{label}_s"] = seconds * factor
        row[f"speedup_vs_{label}"] = seconds * factor / steady
        if factor != 1.0:
            row[f"{label}_scaled_by"] = factor
    return row


def batch_sweep(one: Callable, seeds: int, repeats: int = 3, batches=None) -> dict:
    """Seeds per second of `seeds` seeds of `one(key)` computed in one jitted call, `batch`
    seeds vmapped at a time (`jf.map_seeds(one, keys, batch_size=batch)`: `lax.map` over batches),
    for batch = 1, 4, 16, … up to all of them, against a Python loop over `jax.jit(one)` (timed
    interleaved). **Returns:** `{"seeds", "rows": [{"batch", "seeds_per_s", "vs_loop"}],
    "best_batch", "loop_seeds_per_s"}`."""
    keys = jax.random.split(jax.random.key(0), seeds)
    batches = batches or sorted({min(4**i, seeds) for i in range(12) if 4 ** (i - 1) < seeds})
    one_jit = jax.jit(one)
    calls = {"loop": lambda: [one_jit(k) for k in keys]}
    for b in batches:
        calls[b] = functools.partial(map_seeds, one, keys, batch_size=b)
    timed = _interleaved(calls, repeats)
    loop = seeds / timed.pop("loop")
    rows = [
        {"batch": b, "seeds_per_s": seeds / t, "vs_loop": seeds / t / loop}
        for b, t in timed.items()
    ]
    best = max(rows, key=lambda r: r["seeds_per_s"])
    return {"seeds": seeds, "rows": rows, "best_batch": best["batch"], "loop_seeds_per_s": loop}


def _memory_bytes(mem) -> int | None:
    if mem is None:
        return None
    parts = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    return int(sum(getattr(mem, p, 0) for p in parts))


def _slope(rows, key="steady_s") -> float | None:
    """Least-squares slope of log(time) against log(size) (None under two sizes)."""
    if len(rows) < 2:
        return None
    x = np.log([r["size"] for r in rows])
    y = np.log([max(r[key], 1e-12) for r in rows])
    return float(np.polyfit(x, y, 1)[0])


# long: one line per option, and the two sections (cases, compile budget) in turn
def run_bench(
    names=None,
    *,
    quick: bool = False,
    sizes: dict | None = None,
    repeats: int = 5,
    out: str | None = None,
    progress: Callable[[str], None] | None = print,
    presets=None,
) -> dict:
    """Time the cases `names` (default: all of `CASES`) at their `quick` or `full` sizes (or
    `sizes={name: [...]}`), print a table through `progress`, and with `out` (a directory)
    write `bench-PLATFORM.json` and `bench-PLATFORM.png` there. Then the compile budget
    (`preset_compiles`) of the experiments `presets` (names, `"all"` or `"none"`; default: all
    for a full run of every case, none otherwise).

    **Returns:** `{"machine": …, "rates": …, "cases": {name: {"axis", "rows", "slope", …}},
    "compile": {experiment: …}}`.
    """
    presets = _check_presets(presets, default_all=names is None and not quick and not sizes)
    names = _check_names(names)
    repeats = _checks.check_positive_int("repeats", repeats)
    sizes = _check_sizes(sizes or {}, names)
    say = progress or (lambda s: None)
    rates = machine_rates()
    gemm, copy = rates["gemm_flops"] / 1e9, rates["copy_bytes_per_s"] / 1e9
    say(f"GEMM {gemm:.1f} GFLOP/s, copy {copy:.1f} GB/s")
    result: dict = {"machine": machine(), "rates": rates, "cases": {}}
    for name in names:
        case = CASES[name]
        rows = []
        for size in sizes.get(name) or (case.quick if quick else case.full):
            rows.append(_measure(case, size, repeats, rates))
            say(_table_line(name, case.axis, rows[-1]))
        result["cases"][name] = {
            "axis": case.axis,
            "description": case.description,
            "rows": rows,
            "slope": _slope(rows),
            "expected_slope": case.expected_slope,
        }
        if case.axis == "seeds":
            result["cases"][name]["batch_sweep"] = _sweep(case, rows, quick, repeats, say)
    if presets:
        result["compile"] = preset_compiles(presets, progress=say)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    result["peak_rss_bytes"] = peak if sys.platform == "darwin" else peak * 1024
    if out is not None:
        say(f"wrote {_write(result, out)}")
    return result


def preset_compiles(experiments, progress: Callable[[str], None] | None = print) -> dict:
    """The compile budget (issue #27): each experiment's `quick` preset run as `jaxfeat run`
    runs it (its grid, parameters and seeds), cold: the persistent compilation cache off and
    the scan engine's program caches emptied first. Per experiment: its wall seconds, trace
    and compile seconds, and one record per compiled program (its static point or sample-size
    bucket, the seed batch, jaxpr equations, trace and compile seconds).

    **Returns:** `{experiment: {"seeds", "wall_s", "trace_s", "compile_s", "programs"}}`."""
    from . import experiments as _experiments
    from ._compile_cache import enable_compile_cache
    from ._scan import api as _scan_api, program as _program

    say = progress or (lambda s: None)
    out = {}
    cache_dir = jax.config.jax_compilation_cache_dir  # pyright: ignore[reportAttributeAccessIssue]
    enable_compile_cache(None)  # compiles, not loads (restored below)
    try:
        for name in experiments:
            _program.clear_caches()
            jax.clear_caches()
            out[name] = _preset_compile(name, _experiments.get(name).presets["quick"], _scan_api)
            r, each = (
                out[name],
                "; ".join(f"{p['program']}: {p['compile_s']:.1f} s" for p in out[name]["programs"]),
            )
            say(f"compile  {name} (quick, {r['seeds']} seeds): {len(r['programs'])} program(s), "
                f"{r['compile_s']:.1f} s ({each}); wall {r['wall_s']:.1f} s")  # fmt: skip
    finally:
        if cache_dir is not None:
            enable_compile_cache(cache_dir)
    return out


def _preset_compile(name: str, preset: dict, scan_api) -> dict:
    """One cold run of `preset`: wall, trace and compile seconds, and the program records."""
    t0 = time.perf_counter()
    ds = scan_api.scan(name, preset["grid"], preset["seeds"], params=preset.get("set", {}),
                       progress=False, cache_dir=None)  # fmt: skip
    return {
        "seeds": preset["seeds"],
        "wall_s": time.perf_counter() - t0,
        "trace_s": float(ds.attrs["trace_seconds"]),
        "compile_s": float(ds.attrs["compile_seconds"]),
        "programs": json.loads(ds.attrs["programs"]),
    }


def _check_presets(presets, default_all: bool) -> list[str]:
    """The experiments whose quick presets `preset_compiles` runs."""
    from . import experiments as _experiments

    known = _experiments.names()
    if presets is None:
        return list(known) if default_all else []
    if presets in ("all", "none"):
        return list(known) if presets == "all" else []
    names = [n for n in presets.split(",") if n] if isinstance(presets, str) else list(presets)
    unknown = [n for n in names if n not in known] or ([] if names else ["(none given)"])
    if unknown:
        raise InputError(
            f"presets: unknown experiment(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return names


def _table_line(name, axis, row) -> str:
    base = "  ".join(
        f"{k[len('speedup_vs_') :]} ×{v:.1f}" for k, v in row.items() if k.startswith("speedup_vs_")
    )
    mem = row["memory_bytes"]
    return (
        f"{name:22s} {axis}={row['size']:<6d} compile {row['compile_s']:6.2f} s  steady "
        f"{row['steady_s'] * 1e3:9.3f} ms  mem {(mem or 0) / 2**20:8.1f} MiB  "
        f"{row['flop_rate_vs_gemm'] * 100:5.1f}% GEMM  {base}"
    )


# Seeds of the batch sweep (`batch_sweep`), at most: its loop baseline runs every seed.
SWEEP_SEEDS = 256


def _sweep(case: Case, rows, quick: bool, repeats: int, say) -> dict:
    """The batch sweep of a case over seeds, at its largest size (at most `SWEEP_SEEDS`)."""
    seeds = min(max(r["size"] for r in rows), SWEEP_SEEDS)
    if quick:  # the two ends only; all seeds at once is the case's own row at this size
        sweep = batch_sweep(case.build(seeds)[3], seeds, max(1, repeats // 2 + 1), (1,))
        row = next(r for r in rows if r["size"] == seeds)
        loop = sweep["loop_seeds_per_s"]
        sweep["rows"].append(
            {"batch": seeds, "seeds_per_s": seeds / row["steady_s"],
             "vs_loop": seeds / row["steady_s"] / loop}
        )  # fmt: skip
        sweep["best_batch"] = max(sweep["rows"], key=lambda r: r["seeds_per_s"])["batch"]
    else:
        sweep = batch_sweep(case.build(seeds)[3], seeds, max(1, repeats // 2 + 1))
    say(_sweep_line(case.name, sweep))
    return sweep


def _sweep_line(name, sweep) -> str:
    cells = "  ".join(f"{r['batch']}: {r['seeds_per_s']:.0f}" for r in sweep["rows"])
    return (
        f"{name:22s} {sweep['seeds']} seeds, seeds/s by batch  {cells}  (loop "
        f"{sweep['loop_seeds_per_s']:.0f}; best batch {sweep['best_batch']})"
    )


def _check_names(names) -> list[str]:
    if names is None or len(names) == 0:
        return list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise InputError(f"names: unknown benchmark(s) {unknown}; known: {sorted(CASES)}")
    return list(names)


def _check_sizes(sizes: dict, names) -> dict:
    for name, values in sizes.items():
        if name not in names:
            raise InputError(f"sizes: {name!r} is not among the benchmarks run ({names})")
        for v in values:
            _checks.check_positive_int(f"sizes[{name!r}]", v)
    return sizes


def machine() -> dict:
    dev = jax.devices()[0]
    from ._version import __version__

    return {
        "jaxfeat": __version__,
        "jax": jax.__version__,
        "device": dev.device_kind,
        "platform": dev.platform,
        "n_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "x64": bool(jax.config.jax_enable_x64),  # pyright: ignore[reportAttributeAccessIssue]
    }


def _write(result: dict, out: str) -> str:
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"bench-{result['machine']['platform']}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    from .plotting import bench_figure

    bench_figure(result, stem + ".png")
    return stem + ".json"


# ---------------------------------------------------------------------------- the cases


def _population_gradient(width: int):
    from .data import SingleIndex
    from .population import population_gradient

    d = 32
    dist = SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.5, 0.3])
    W = jax.random.normal(jax.random.key(0), (width, d)) / np.sqrt(d)
    b = jnp.zeros(width)
    return (lambda W, b: population_gradient(dist, W, b)), (W, b), {}


def _population_gradient_seeds(seeds: int):
    """G(w, b) of a fresh width-64 network per seed (d = 32): microseconds of work a seed, so a
    per-seed loop is dispatch-bound — where `vmap` should gain most."""
    return _over_seeds(_per_seed_gradient(), seeds)


# The per-seed functions are built once (`functools.cache`): jitting the same function object
# again at another seed count reuses its compiled one-seed program (the loop baselines').
@functools.cache
def _per_seed_gradient():
    from .data import SingleIndex
    from .population import population_gradient

    d, width = 32, 64
    dist = SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.5, 0.3])

    def one(key):
        W = jax.random.normal(key, (width, d)) / np.sqrt(d)
        return population_gradient(dist, W, jnp.zeros(width))

    return one


def _population_loss(width: int):
    import equinox as eqx

    from .nets import TwoLayer
    from .population import population_loss

    d = 20
    student = TwoLayer.init(jax.random.key(0), width, d, "sigma_ge2", "small")
    teacher = TwoLayer.init(jax.random.key(1), 4, d, "sigma_ge2", "sphere")
    params, static = eqx.partition(student, eqx.is_inexact_array)

    def loss_and_grad(params):
        return jax.value_and_grad(lambda p: population_loss(eqx.combine(p, static), teacher))(
            params
        )

    W, a = np.asarray(student.W), np.asarray(student.a)
    Wt, at = np.asarray(teacher.W), np.asarray(teacher.a)
    numpy_loss = lambda: _numpy_sigma_ge2_loss(W, a, Wt, at)  # noqa: E731
    return loss_and_grad, (params,), {"numpy_value_only": numpy_loss}


def _numpy_sigma_ge2_loss(W, a, Wt, at):
    """E(f − f*)² for σ≥2 neurons in NumPy: K(u, v) = |u||v| κ≥2(ρ), κ≥2(ρ) = (√(1−ρ²) +
    (π − arccos ρ)ρ)/(2π) − 1/(2π) − ρ/4 (ReLU's arc-cosine kernel less its He₀, He₁ parts)."""

    def K(U, V):
        nu, nv = np.linalg.norm(U, axis=1), np.linalg.norm(V, axis=1)
        rho = np.clip((U @ V.T) / np.outer(nu, nv), -1.0, 1.0)
        k = (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho) / (2 * np.pi)
        return np.outer(nu, nv) * (k - 1 / (2 * np.pi) - rho / 4)

    return a @ K(W, W) @ a - 2 * a @ K(W, Wt) @ at + at @ K(Wt, Wt) @ at


def _one_step_seeds(seeds: int):
    fn, args, baselines, one = _over_seeds(_per_seed_spikes(), seeds)
    n, d = SPIKES_SIZES
    baselines["numpy_loop"] = _numpy_loop(lambda rng: _numpy_spike_count(rng, n, d, 0.3), seeds)
    return fn, args, baselines, one


SPIKES_SIZES = (250, 62)  # n = ñ, d = N of the one-step case


@functools.cache
def _per_seed_spikes():
    from .algorithms.one_gradient_step import one_step_spikes
    from .data import SingleIndex

    n, d = SPIKES_SIZES
    dist = SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.7071067811865476], noise=0.1)

    def one(key):
        out = one_step_spikes(
            key, dist, n=n, n_tilde=n, width=d, n_test=250, activation="relu", alpha=0.3
        )
        return out["n_outliers"]

    return one


def _numpy_loop(one_seed: Callable, seeds: int):
    """A per-seed NumPy loop over `min(seeds, NUMPY_SEEDS)` seeds, as a `Scaled` baseline: its
    time × seeds/timed seeds (a loop's time is linear in its trips; the large seed counts would
    take minutes)."""
    timed = min(seeds, NUMPY_SEEDS)

    def loop():
        rng = np.random.default_rng(0)
        for _ in range(timed):
            one_seed(rng)

    return Scaled(loop, seeds / timed)


@dataclasses.dataclass(frozen=True)
class Scaled:
    """A baseline timed on part of the work: its seconds are multiplied by `factor`."""

    call: Callable
    factor: float

    def __call__(self):
        return self.call()


# Seeds a NumPy baseline loops over at most (then scaled).
NUMPY_SEEDS = 64


def _numpy_spike_count(rng, n: int, d: int, alpha: float, k: int = 10, degree: int = 8) -> int:
    """The spike count of `one_step_spikes` in NumPy (what the jitted case computes: its other
    outputs are dead code there): relu, W₀ rows on the sphere, a ~ N(0, 1/N), output scale
    1/√N, the step W₁ = W₀ − (η/scale)∇L with η = n^α, F₁ = σ(X̃W₁ᵀ) centred, the outliers of
    its singular values above 1.02× the largest after projecting out He_1..He_degree(X̃ζ̂)."""
    N = d

    def sample(m):
        X = rng.standard_normal((m, d))
        z = X[:, 0]
        return X, z + 0.5 * (z**2 - 1) + 0.1 * rng.standard_normal(m)

    X, y = sample(n)
    W0 = rng.standard_normal((N, d))
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a = rng.standard_normal(N) / np.sqrt(N)
    scale = 1 / np.sqrt(N)
    pre = X @ W0.T
    r = y - scale * np.maximum(pre, 0) @ a
    grad = -(scale / n) * ((r[:, None] * (pre > 0)) * a[None, :]).T @ X
    W1 = W0 - (n**alpha / scale) * grad
    zeta = X.T @ r / n
    Xt, _ = sample(n)
    F1 = np.maximum(Xt @ W1.T, 0)
    F1c = F1 - F1.mean(0)
    s = np.linalg.svd(F1c, compute_uv=False)
    u = Xt @ (zeta / np.linalg.norm(zeta))
    H = np.stack([np.polynomial.hermite_e.hermeval(u, np.eye(degree + 1)[j]) for j in
                  range(1, degree + 1)], 1)  # fmt: skip
    Q = np.linalg.qr(H)[0]
    edge = np.linalg.svd(F1c - Q @ (Q.T @ F1c), compute_uv=False)[0]
    return int(np.sum(s[:k] > 1.02 * edge))


def _train_seeds(seeds: int):
    from .nets import TwoLayer

    one, teacher = _per_seed_train()
    fn, args, baselines, one = _over_seeds(one, seeds)
    d, width, steps = TRAIN_SIZES
    start = TwoLayer.init(jax.random.key(0), width, d, "sigma_ge2", "small")
    W, a = np.asarray(start.W, np.float64), np.asarray(start.a, np.float64)
    Ws, a_s = np.asarray(teacher.W, np.float64), np.asarray(teacher.a, np.float64)
    baselines["numpy_loop"] = _numpy_loop(
        lambda rng: _numpy_sigma_ge2_train(W, a, Ws, a_s, 0.05, steps), seeds
    )
    return fn, args, baselines, one


TRAIN_SIZES = (20, 50, 200)  # d, width, SGD steps of the train case


@functools.cache
def _per_seed_train():
    import optax

    from .nets import TwoLayer
    from .objectives import Population
    from .training import train

    d, width, steps = TRAIN_SIZES
    teacher = TwoLayer(jnp.eye(4, d), jnp.zeros(4), jnp.array([1.0, 0.8, 1.2, -0.9]), "sigma_ge2")

    def one(key):
        net = TwoLayer.init(key, width, d, "sigma_ge2", "small")
        net, _ = train(key, net, Population(teacher), optax.sgd(0.05), steps=steps)
        return net.a

    return one, teacher


def _numpy_sigma_ge2_train(W, a, Ws, a_s, lr: float, steps: int):
    """Gradient descent on the closed-form σ≥2 population loss in NumPy (each seed starts from
    the same draw: the cost does not depend on it)."""
    for _ in range(steps):
        gW, ga = _numpy_sigma_ge2_grad(W, a, Ws, a_s)
        W, a = W - lr * gW, a - lr * ga
    return W, a


def _numpy_sigma_ge2_grad(W, a, Ws, a_s):
    """(∂L/∂W, ∂L/∂a) of the σ≥2 population loss (MATH §2.2): K(w, v) = |w||v|h(ρ),
    h = (√(1−ρ²) + ρ arcsin ρ − 1)/2π, ∇₁K = |v|[(h − ρh′)ŵ + h′v̂]."""
    n, ns = np.linalg.norm(W, axis=1), np.linalg.norm(Ws, axis=1)
    Wh, Wsh = W / n[:, None], Ws / ns[:, None]

    def parts(R):
        R = np.clip(R, -1.0, 1.0)
        s = np.sqrt(1.0 - R**2)
        return (
            (s + R * np.arcsin(R) - 1.0) / (2 * np.pi),
            (s - 1.0) / (2 * np.pi),
            np.arcsin(R) / (2 * np.pi),
        )

    H, A, B = parts(Wh @ Wh.T)
    Hs, As, Bs = parts(Wh @ Wsh.T)
    an, asn = a * n, a_s * ns
    ga = 2 * n * (H @ an - Hs @ asn)
    radial = A @ an - As @ asn
    gW = (
        2 * a[:, None] * (radial[:, None] * Wh + (B * an[None, :]) @ Wh - (Bs * asn[None, :]) @ Wsh)
    )
    return gW, ga


def _over_seeds(one, seeds: int):
    """A per-seed case: `jf.map_seeds(one, keys)` over `seeds` keys (a `vmap` over all of them;
    `one` itself for one seed), its loop baseline, and `one` (for the batch sweep)."""
    keys = jax.random.split(jax.random.key(0), seeds)
    one_jit = jax.jit(one)
    loop = lambda: [one_jit(k) for k in keys]  # noqa: E731
    return functools.partial(map_seeds, one), (keys,), {"loop": loop}, one


def _matrix_free_spikes(n: int):
    """One seed of the matrix-free spike path (`tile=`: the n step samples and ñ = n feature
    rows drawn tile by tile, block Krylov statistics) at d = N = n/4, α = 0.4; baseline: the
    dense path (F materialised, Gram + `eigh`) on the same seed, while F fits."""
    from .algorithms.one_gradient_step import one_step_spikes
    from .data import SingleIndex

    d = max(8, n // 4)
    dist = SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.7071067811865476], noise=0.1)

    def spikes(key, tile):
        out = one_step_spikes(
            key, dist, n=n, n_tilde=n, width=d, n_test=256, activation="relu", alpha=0.4, k=10,
            tile=tile,
        )  # fmt: skip
        return out["singular_values"], out["deflated_edge"]

    key = jax.random.key(0)
    baselines = {}
    if n * d * 4 <= DENSE_BYTES:
        dense = jax.jit(lambda k: spikes(k, None))
        baselines["dense"] = lambda: dense(key)
    return (lambda k: spikes(k, min(512, n))), (key,), baselines


# The dense baselines run while F (ñ × N float32) stays under this.
DENSE_BYTES = 2**28


def _feature_spectrum(width: int):
    """Top-10 singular values and vectors of a centred (4·width) × width feature matrix
    (`jf.feature_spectrum`, dense: Gram + `eigh`); baselines: the matrix-free block Krylov
    method on the same matrix, and NumPy's full SVD of the centred matrix."""
    from .spectrum import feature_spectrum

    F = jax.nn.relu(jax.random.normal(jax.random.key(0), (4 * width, width)))
    key = jax.random.key(1)
    krylov = jax.jit(lambda F: feature_spectrum(F, 10, method="krylov", key=key)[0])
    Fn = np.asarray(F, np.float64)

    def numpy_svd():
        Fc = Fn - Fn.mean(axis=0)
        return np.linalg.svd(Fc, compute_uv=True, full_matrices=False)[0][:, :10]

    baselines = {"krylov": lambda: krylov(F), "numpy_svd": numpy_svd}
    return (lambda F: feature_spectrum(F, 10, method="dense")), (F,), baselines


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "population_gradient", "width", (64, 512, 4096), tuple(2**k for k in range(6, 17, 2)),
            _population_gradient, 1.0, "exact G(w, b), Hermite single-index target, d = 32",
        ),
        Case(
            "population_gradient_seeds", "seeds", (1, 64), (1, 16, 256, 4096),
            _population_gradient_seeds, 1.0,
            "exact G(w, b) of a width-64 network per seed, d = 32, vmapped (dispatch-bound loop)",
        ),
        Case(
            "population_loss", "width", (64, 256, 1024), tuple(2**k for k in range(6, 14)),
            _population_loss, 2.0, "closed-form σ≥2 population loss + gradient, 4 teachers, d = 20",
        ),
        Case(
            "one_step_spikes", "seeds", (1, 16), (1, 4, 16, 64, 256, 1024, 4096),
            _one_step_seeds, 1.0, "the spike experiment per seed, n = ñ = 250, d = N = 62, vmapped",
        ),
        Case(
            "one_step_spikes_matrix_free", "n", (512, 1024), (1024, 2048, 4096, 8192),
            _matrix_free_spikes, 3.0,
            "one seed of the matrix-free spike path, d = N = n/4, tiles of 512 rows",
        ),
        Case(
            "feature_spectrum", "width", (64, 256), tuple(2**k for k in range(6, 12)),
            _feature_spectrum, 3.0, "top-10 SVD of a centred (4·width) × width feature matrix",
        ),
        Case(
            "train", "seeds", (1, 16), (1, 8, 64, 512, 4096),
            _train_seeds, 1.0, "jf.train on the population loss, d = 20, width 50, 200 SGD steps",
        ),
    )
}  # fmt: skip
