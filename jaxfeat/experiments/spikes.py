"""The one-step spike phase diagram (Moniri et al. 2023, MATH §4): spike count of F₁ = σ(X̃W₁ᵀ)
over α × n, with the theory ℓ(α) = ⌈1/(1−2α)⌉ − 1 drawn on the figure."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _sized, _vocabulary, plotting, protocol as _protocol
from .._checks import InputError
from .._sized import Capacity
from ..algorithms.one_gradient_step import (
    NO_INIT_READOUT,
    PROJECTION_DEGREE,
    OneStepResult,
    one_step,
    one_step_spikes,
)
from ..data import MultiIndex, SingleIndex
from ._experiment import Experiment

#: the experiment's parameters beyond the protocol's: the sizes and the teacher
SIZES_AND_TEACHER: dict[str, Any] = {
    "n": 800, "n_tilde": None, "dim": None, "width": None, "ratio": 0.25,
    "target": (0.0, 1.0, 0.7071067811865476), "basis": "normalised", "indices": 1,
    "noise": 0.1, "inputs": "gaussian", "n_capacity": None, "N": None,
}  # fmt: skip
#: the protocol a `spikes` run follows unless told otherwise: Moniri et al.'s, 1,000 test points
PROTOCOL = _protocol.MONIRI.replace(n_test=1000)
#: every parameter of `run` with its default (the protocol's as its flat keywords)
DEFAULTS: dict[str, Any] = SIZES_AND_TEACHER | PROTOCOL.keywords()


def run(key, **params) -> dict:
    """One seed: y = (1/k)Σ_{j<k} f*(x_j) + noise·ε over the first k = `indices` coordinates (y =
    f*(β·x) + noise·ε with β = e₁ for k = 1), f* from its Hermite coefficients `target` in
    `basis` (`"normalised"` h_k or `"probabilists"` He_k); `dim` = `width` = ratio·n unless
    given (d and Moniri et al.'s N); ñ = n unless given; `inputs` the law of each input
    coordinate (`jaxfeat.data.INPUT_LAWS`: gaussian, rademacher, uniform, all of unit
    variance). Then `one_step_spikes` with the protocol the other parameters spell
    (`jaxfeat.protocol.OneStepProtocol`'s keywords: `alpha`, `c`, `steps`, `scheme`,
    `init_seed`, `readout`, `ridge_loss`, …; their defaults `PROTOCOL`, Moniri et al.'s with
    1,000 test points; the presets `moniri`, `dandi`, `ba` are `jaxfeat.protocol.MONIRI`,
    `DANDI`, `BA`). Returns `one_step_spikes`' statistics (MATH §4.3). `N` is the deprecated
    0.1 name of `width` (stores written by 0.1 hold `N`; `--set N=…` still works and warns).

    `n_capacity` (a static int ≥ n) makes n a dynamic size (`jaxfeat.Capacity`): the seed
    runs on n_capacity step and readout samples (and the dimension and width that ratio·n
    gives) of which its own are live, with the same numbers as at its exact size. The scan
    engine sets it to group the values of n into one compiled program per bucket."""
    dist, sizes, protocol = setup(params)
    return one_step_spikes(key, dist, **sizes, protocol=protocol)


def step(key, **params) -> OneStepResult:
    """The step alone of `run(key, **params)` (the same draws), with its samples
    (`return_data=True`): what the tests pin against each paper's update rule."""
    dist, sizes, protocol = setup(params)
    k_step = jax.random.split(key, 3)[0]  # one_step_spikes' key for its step
    cap = sizes["capacity"]
    step_cap = None if cap is None else Capacity(n=cap.n, width=cap.width)
    return one_step(
        k_step, dist, n=sizes["n"], width=sizes["width"], capacity=step_cap, protocol=protocol,
        return_data=True,
    )  # fmt: skip


def setup(params) -> tuple[Any, dict, _protocol.OneStepProtocol]:
    """(dist, the sizes `one_step_spikes` takes, the protocol) of `run`'s parameters (those
    not given take `DEFAULTS`); unknown names raise `InputError` naming them."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)} for spikes; known: "
                         f"{', '.join(DEFAULTS)}")  # fmt: skip
    p = DEFAULTS | dict(params)
    protocol = PROTOCOL.replace(**{k: p[k] for k in _protocol.KEYWORDS})
    cap_n = p["n_capacity"]
    n, _ = _sized.check_size("n", p["n"], cap_n)
    if not 0 < _checks.check_nonneg_float("ratio", p["ratio"]):
        raise InputError(f"ratio must be > 0, got {p['ratio']}")
    padded = cap_n is not None
    dim, dim_cap = _size("dim", p["dim"], p["ratio"], n, cap_n)
    name, width = _vocabulary.renamed("spikes", "width", p["width"], "N", p["N"])
    grows = padded and width is None and p["dim"] is None  # the width follows n: padded
    width, width_cap = (dim, dim_cap) if width is None else _size(name, width, 0, n, None)
    live_dim = dim if padded and p["dim"] is None else None
    dist = _teacher(
        dim_cap, p["target"], p["basis"], p["indices"], p["noise"], live_dim, p["inputs"]
    )
    same_tilde = p["n_tilde"] is None
    n_tilde = n if same_tilde else p["n_tilde"]
    reuse = same_tilde or (_sized.is_static(n) and n_tilde == n)
    sizes: dict[str, Any] = dict(n=n, width=width, capacity=None)
    sizes["n_tilde"] = None if protocol.readout.sample == "step" and reuse else n_tilde
    if padded:
        fresh = protocol.readout.sample == "fresh" and same_tilde
        sizes["capacity"] = Capacity(
            n=cap_n, n_tilde=cap_n if fresh else None, width=width_cap if grows else None
        )
    return dist, sizes, protocol


def ratio_size(ratio: float, n: int) -> int:
    """`dim` or `width` when not given: ratio·n rounded (half to even), at least 1."""
    return max(1, round(ratio * n))


def _size(name, value, ratio, n, cap_n) -> tuple:
    """(live size, capacity) of `dim` or `width`: `value` when given (static), else ratio·n
    rounded (at least 1), and with a capacity for n the same at the capacity. The traced
    rounding is checked against Python's at every concrete n, so a bucketed run never sizes a
    seed differently from its exact run."""
    if value is not None:
        v = _checks.check_positive_int(name, value)
        return v, v
    if cap_n is None:
        v = ratio_size(ratio, n)
        return v, v
    cap = ratio_size(ratio, cap_n)
    dtype = jnp.zeros(()).dtype
    if _sized.is_static(n):  # the traced arithmetic, in NumPy: the same rounding or an error
        exact, in_dtype = ratio_size(ratio, n), int(np.round(dtype.type(n) * dtype.type(ratio)))
        if max(1, in_dtype) != exact:
            raise InputError(
                f"{name}: ratio·n = {ratio}·{n} rounds to {exact} but to {in_dtype} in "
                f"{dtype}; give {name}= or n_capacity=None"
            )
        return exact, cap
    traced = jnp.maximum(1, jnp.round(jnp.asarray(n, dtype) * ratio)).astype(jnp.int32)
    return traced, cap


def _teacher(dim, target, basis, indices, noise, live_dim=None, inputs="gaussian"):
    """Single-index f*(x₁) (indices = 1) or the average of f* over the first `indices`
    coordinates (an additive multi-index model with orthonormal directions); `live_dim` pads
    the inputs beyond it (`jaxfeat.data.SingleIndex`)."""
    coef = _check_target(target)
    indices = _checks.check_positive_int("indices", indices)
    if indices == 1:
        return SingleIndex(
            np.eye(1, dim)[0], coef, noise=noise, basis=basis, live_dim=live_dim, inputs=inputs
        )
    if indices > dim or (
        live_dim is not None and _sized.is_static(live_dim) and live_dim < indices
    ):
        raise InputError(f"indices must be <= dim = {live_dim or dim}, got {indices}")
    coef = list(np.asarray(coef, float) / indices)
    return MultiIndex(
        np.eye(indices, dim), coef, noise=noise, basis=basis, live_dim=live_dim, inputs=inputs
    )


def _check_target(target) -> list:
    if not isinstance(target, (list, tuple)) or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) for t in target
    ):
        raise InputError(
            f"target must be a list of Hermite coefficients of f* (numbers), got {target!r}"
        )
    return list(target)


# The published protocols as presets (`jaxfeat run spikes --preset moniri|dandi|ba`): each is
# its `jaxfeat.protocol` value (printable, comparable: `jf.protocol.DANDI.diff(jf.protocol.MONIRI)`)
# plus its sizes and teacher; each is pinned against a NumPy transcription of its update rule in
# tests/test_protocols.py.


def _preset(protocol: _protocol.OneStepProtocol, grid: dict, seeds: int, **sizes) -> dict:
    """A preset: `protocol`'s keywords (but the grid's axes) and the sizes and teacher."""
    fixed = {k: v for k, v in protocol.keywords().items() if k not in grid}
    return {"grid": grid, "seeds": seeds, "set": fixed | sizes}


# Moniri et al. §4.1 [R]: d = N = n/4, f* = He₁ + ½He₂ (the defaults' teacher).
MONIRI = _preset(
    _protocol.MONIRI,
    {"alpha": [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.41], "n": [1000, 2000, 4000]},
    seeds=64,
    ratio=0.25,
)

# Dandi et al.'s single_step notebook: d = 512, p = 1024, y = (f*(x·θ₁) + f*(x·θ₂))/2 with f* =
# He₁ + He₂/2 + He₄/24 and θ orthonormal, no noise. n = d^1.3, d^1.65, d² (the last needs
# ≈ 10 GB per seed in float64: trim it with --set n=3326,29532).
DANDI = _preset(
    _protocol.DANDI, {"n": [3326, 29532, 262144]}, seeds=10, dim=512, width=1024, indices=2,
    basis="probabilists", target=[0.0, 1.0, 0.5, 0.0, 1.0 / 24.0], noise=0.0,
)  # fmt: skip

# Ba et al. [R]: the sizes n = 2d = 2N are this reconstruction's.
BA = _preset(
    _protocol.BA, {"c": [0.5, 1.0, 2.0, 4.0, 8.0], "n": [500, 1000, 2000]}, seeds=32, ratio=0.5
)


spikes_experiment = Experiment(
    name="spikes",
    fn=run,
    defaults=DEFAULTS,
    description="one-step spikes of F = σ(X̃W₁ᵀ): spike count over α × n vs ℓ(α) (Moniri et al.)",
    dynamic=frozenset({"alpha", "c"}),
    capacity={"n": "n_capacity"},
    dims={
        "singular_values": ("k",),
        "mass_in_hermite_span": ("k",),
        "capture": ("hermite",),
        "hermite_projection": ("degree",),
    },
    coords={"degree": lambda p: list(range(PROJECTION_DEGREE + 1))},
    check=("singular_values", "deflated_edge", "test_mse_w1"),
    # the W₀ baseline is skipped with init_readout=False (the dandi preset): NaN there, declared
    not_applicable=dict.fromkeys(NO_INIT_READOUT, float("nan")),
    presets={
        "quick": {
            "grid": {"alpha": [0.0, 0.1, 0.2, 0.3, 0.35, 0.4], "n": [250, 500, 1000]},
            "seeds": 32,
            "set": {"n_test": 500},
        },
        "paper": {
            "grid": {"alpha": [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.41], "n": [1000, 2000, 4000]},
            "seeds": 64,
            "set": {"n_test": 2000},
        },
        "moniri": MONIRI,
        "dandi": DANDI,
        "ba": BA,
    },
    plot=plotting.spike_phase_diagram,
)
