"""What a program will cost, read from its jaxpr before XLA compiles it: the floating-point work
of one run (`flops`) and the program's size (`equations`), which compile time follows.

The scan engine uses both to choose sample-size buckets (one compile against the padded compute,
`choose_buckets`) and to estimate the time of a scan, compiling included (`Calibration`: seconds
per equation compiled and flops per second computed, measured on this machine by earlier scans
and kept beside the persistent compilation cache).

Counted work: `dot_general` 2·batch·M·N·K; `eigh` 9n³ and `cholesky` n³/3 per matrix,
`triangular_solve` n²·k; a `scan`/`while` body times its trip count (a `while` once: its count is
a value); everything else one flop per output element. Fusion, memory traffic and dispatch are
not modelled: the calibration absorbs them into one rate.
"""

from __future__ import annotations

import json
import math
import os
import threading

import numpy as np
from jax.extend import core


def flops(jaxpr: core.ClosedJaxpr | core.Jaxpr) -> float:
    """Floating-point operations of one run of `jaxpr` (module docstring)."""
    inner = jaxpr.jaxpr if isinstance(jaxpr, core.ClosedJaxpr) else jaxpr
    return sum(_eqn_flops(e) for e in inner.eqns)


def equations(jaxpr: core.ClosedJaxpr | core.Jaxpr) -> int:
    """Equations of `jaxpr`, sub-programs included (each once): the program's size."""
    inner = jaxpr.jaxpr if isinstance(jaxpr, core.ClosedJaxpr) else jaxpr
    return sum(1 + sum(equations(s) for s in _subjaxprs(e)) for e in inner.eqns)


def _eqn_flops(eqn) -> float:
    name = eqn.primitive.name
    if name == "dot_general":
        (lc, _), (lb, _) = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        contracted = math.prod(lhs[i] for i in lc)
        return 2.0 * contracted * _size(eqn.outvars[0])
    if name == "eigh":
        *batch, n, _ = eqn.invars[0].aval.shape
        return 9.0 * math.prod(batch) * n**3
    if name == "cholesky":
        *batch, n, _ = eqn.invars[0].aval.shape
        return math.prod(batch) * n**3 / 3.0
    if name == "triangular_solve":  # n² per right-hand side of every batch member
        return float(eqn.invars[0].aval.shape[-1] * _size(eqn.invars[1]))
    if name == "scan":
        return eqn.params["length"] * flops(eqn.params["jaxpr"])
    subs = _subjaxprs(eqn)
    if subs:  # cond: the costliest branch; while, pjit, custom rules: once
        return max(flops(s) for s in subs)
    return float(sum(_size(v) for v in eqn.outvars))


# Each registered experiment's quick preset on 2 CPU cores (jaxlib 0.9.2, `jaxfeat run NAME
# --cache-dir off` with an empty calibration, 2026-12-05): flops per second computed and
# seconds per equation compiled, used until this machine has measured its own
DEFAULT_RATES: dict[str, float] = {
    "spikes": 5.0e10, "random_features": 8.8e10, "teacher_student": 7.2e10,
    "local_convergence": 5.2e10, "gradient_features": 6.8e10,
}  # fmt: skip
DEFAULT_COMPILE_RATES: dict[str, float] = {
    "spikes": 3.9e-3, "random_features": 3.1e-3, "teacher_student": 6.3e-4,
    "local_convergence": 4.2e-4, "gradient_features": 1.3e-3,
}  # fmt: skip


def default_path() -> str:
    """Where the calibration lives: `$JAXFEAT_CALIBRATION`, else
    `$XDG_CACHE_HOME/jaxfeat/calibration.json` (`~/.cache/jaxfeat/calibration.json`); kept
    whether or not the compilation cache is on (a cold-cache run still knows its rates)."""
    got = os.environ.get("JAXFEAT_CALIBRATION")
    if got:
        return got
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxfeat", "calibration.json")


def _size(v) -> int:
    shape = getattr(getattr(v, "aval", None), "shape", ())
    return int(np.prod(shape)) if shape else 1


def _subjaxprs(eqn):
    out = []
    for p in eqn.params.values():
        for x in p if isinstance(p, (list, tuple)) else (p,):
            if isinstance(x, core.ClosedJaxpr):
                out.append(x.jaxpr)
            elif isinstance(x, core.Jaxpr):
                out.append(x)
    return out


def choose_buckets(values, cost, compile_cost: float, programs: int | None = None):
    """Group the sorted sizes `values` into contiguous buckets, each compiled once at its
    largest value, minimising Σ_buckets [compile_cost + Σ_{v in bucket} cost(max bucket)]
    (every value in a bucket runs at the bucket's capacity), by dynamic programming over the
    prefixes; `programs` fixes the number of buckets instead (at most one per value).
    **Returns:** a list of buckets (lists of values, ascending)."""
    vals = sorted(values)
    k = len(vals)
    most = k if programs is None else max(1, min(programs, k))
    inf = float("inf")
    # best[b][j]: the cheapest split of vals[:j] into b buckets; cut[b][j]: where its last starts
    best = [[inf] * (k + 1) for _ in range(most + 1)]
    cut = [[0] * (k + 1) for _ in range(most + 1)]
    best[0][0] = 0.0
    for b in range(1, most + 1):
        for j in range(1, k + 1):
            for i in range(j):
                c = best[b - 1][i] + compile_cost + (j - i) * cost(vals[j - 1])
                if c < best[b][j]:
                    best[b][j], cut[b][j] = c, i
    b = most if programs is not None else min(range(1, most + 1), key=lambda b: best[b][k])
    buckets, j = [], k
    while b > 0:
        i = cut[b][j]
        buckets.append(vals[i:j])
        j, b = i, b - 1
    return buckets[::-1]


class Calibration:
    """Seconds per compiled equation and computed flops per second on this machine (per
    experiment: a training loop of small matmuls runs at a far lower rate than a Gram matrix),
    averaged over what earlier scans measured (`record_compile`, `record_compute`) and kept in
    `path` (JSON, `default_path()`; None: in memory only). Before any measurement the defaults
    below stand in, measured on 2 CPU cores with jaxlib 0.9 (`DEFAULT_RATES`)."""

    DEFAULT_SECONDS_PER_EQUATION = 2.0e-3
    DEFAULT_FLOPS_PER_SECOND = 6.0e10

    def __init__(self, path: str | None = None, platform: str = "cpu"):
        self.path, self.platform, self._lock = path, platform, threading.Lock()
        self._data = self._load()

    def _load(self) -> dict:
        if self.path is None:
            return {}
        try:
            with open(self.path) as f:
                got = json.load(f)
            return got.get(self.platform, {}) if isinstance(got, dict) else {}
        except (OSError, ValueError):
            return {}

    def _rate(self, name, default) -> float:
        num, den = self._data.get(name, (0.0, 0.0))
        return num / den if den > 0 and num > 0 else default

    def seconds_per_equation(self, experiment: str | None = None) -> float:
        # a program's compile time per equation varies 10× between experiments (a training
        # loop's scan body is a few equations of cheap code; a spectrum program's are LAPACK
        # calls and RNG kernels), so the rates are per experiment
        return self._per_experiment("compile", experiment, DEFAULT_COMPILE_RATES,
                                    self.DEFAULT_SECONDS_PER_EQUATION)  # fmt: skip

    def flops_per_second(self, experiment: str | None = None) -> float:
        return self._per_experiment("compute", experiment, DEFAULT_RATES,
                                    self.DEFAULT_FLOPS_PER_SECOND)  # fmt: skip

    def _per_experiment(self, kind: str, experiment, builtin: dict, default: float) -> float:
        """The experiment's measured rate; before one, its built-in rate (measured on a CPU
        here), else this machine's rate over every experiment, else `default`. On an
        accelerator, before any measurement, a guess of 100× the CPU's compute rate."""
        if self.platform != "cpu":
            builtin, default = {}, default * (100.0 if kind == "compute" else 1.0)
        own = builtin.get(experiment or "")
        base = own if own is not None else self._rate(kind, default)
        return self._rate(f"{kind}:{experiment}", base) if experiment else base

    def has_rate(self, experiment: str) -> bool:
        """Whether this machine has measured `experiment`'s compute rate."""
        return f"compute:{experiment}" in self._data

    def compile_seconds(self, n_equations: int, experiment: str | None = None) -> float:
        return n_equations * self.seconds_per_equation(experiment)

    def compute_seconds(self, n_flops: float, experiment: str | None = None) -> float:
        return n_flops / self.flops_per_second(experiment)

    def record_compile(self, n_equations: int, seconds: float, experiment: str | None = None):
        self._record("compile", experiment, seconds, n_equations)

    def record_compute(self, n_flops: float, seconds: float, experiment: str | None = None):
        self._record("compute", experiment, n_flops, seconds)

    def _record(self, kind: str, experiment, num, den) -> None:
        """Into the machine's rate over every experiment and the experiment's own."""
        self._add(kind, num, den)
        if experiment:
            self._add(f"{kind}:{experiment}", num, den)

    def _add(self, name, num, den, keep: float = 0.8) -> None:
        """Exponentially weighted sums, so the rates follow this machine as it changes."""
        if not (num > 0 and den > 0):
            return
        with self._lock:
            old_num, old_den = self._data.get(name, (0.0, 0.0))
            self._data[name] = (keep * old_num + num, keep * old_den + den)

    def save(self) -> None:
        """Write the rates (atomically; a failure to write is not an error: it is a cache)."""
        if self.path is None:
            return
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            try:
                with open(self.path) as f:
                    whole = json.load(f)
                whole = whole if isinstance(whole, dict) else {}
            except (OSError, ValueError):
                whole = {}
            whole[self.platform] = self._data
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(whole, f)
            os.replace(tmp, self.path)
        except OSError:
            pass
