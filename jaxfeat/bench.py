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
    jax.block_until_ready(call())  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    """One case at one size: compile and steady seconds, memory, FLOP/s, baselines."""
    fn, args, baselines = case.build(size)
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    steady = _median_seconds(lambda: compiled(*args), repeats)
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
    for label, call in baselines.items():
        row[f"{label}_s"] = _median_seconds(call, max(1, repeats // 2))
        row[f"speedup_vs_{label}"] = row[f"{label}_s"] / steady
    return row


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


def run_bench(
    names=None,
    *,
    quick: bool = False,
    sizes: dict | None = None,
    repeats: int = 5,
    out: str | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict:
    """Time the cases `names` (default: all of `CASES`) at their `quick` or `full` sizes (or
    `sizes={name: [...]}`), print a table through `progress`, and with `out` (a directory)
    write `bench-PLATFORM.json` and `bench-PLATFORM.png` there.

    **Returns:** `{"machine": …, "rates": …, "cases": {name: {"axis", "rows", "slope", …}}}`.
    """
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    result["peak_rss_bytes"] = peak if sys.platform == "darwin" else peak * 1024
    if out is not None:
        say(f"wrote {_write(result, out)}")
    return result


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
    from .algorithms.one_gradient_step import one_step_spikes
    from .data import SingleIndex

    n, d = 250, 62
    dist = SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.7071067811865476], noise=0.1)

    def one(key):
        out = one_step_spikes(
            key, dist, n=n, n_tilde=n, width=d, n_test=250, activation="relu", alpha=0.3
        )
        return out["n_outliers"]

    keys = jax.random.split(jax.random.key(0), seeds)
    one_jit = jax.jit(one)
    loop = lambda: [one_jit(k) for k in keys]  # noqa: E731
    return jax.vmap(one), (keys,), {"loop": loop}


def _train_seeds(seeds: int):
    import optax

    from .nets import TwoLayer
    from .objectives import Population
    from .training import train

    d, width, steps = 20, 50, 200
    teacher = TwoLayer(jnp.eye(4, d), jnp.zeros(4), jnp.array([1.0, 0.8, 1.2, -0.9]), "sigma_ge2")

    def one(key):
        net = TwoLayer.init(key, width, d, "sigma_ge2", "small")
        net, _ = train(key, net, Population(teacher), optax.sgd(0.05), steps=steps)
        return net.a

    keys = jax.random.split(jax.random.key(0), seeds)
    one_jit = jax.jit(one)
    loop = lambda: [one_jit(k) for k in keys]  # noqa: E731
    return jax.vmap(one), (keys,), {"loop": loop}


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "population_gradient", "width", (64, 512, 4096), tuple(2**k for k in range(6, 17, 2)),
            _population_gradient, 1.0, "exact G(w, b), Hermite single-index target, d = 32",
        ),
        Case(
            "population_loss", "width", (64, 256, 1024), tuple(2**k for k in range(6, 14)),
            _population_loss, 2.0, "closed-form σ≥2 population loss + gradient, 4 teachers, d = 20",
        ),
        Case(
            "one_step_spikes", "seeds", (1, 4, 16), (1, 4, 16, 64, 256),
            _one_step_seeds, 1.0, "the spike experiment per seed, n = ñ = 250, d = N = 62, vmapped",
        ),
        Case(
            "train", "seeds", (1, 8, 64), (1, 8, 64, 512, 4096),
            _train_seeds, 1.0, "jf.train on the population loss, d = 20, width 50, 200 SGD steps",
        ),
    )
}  # fmt: skip
