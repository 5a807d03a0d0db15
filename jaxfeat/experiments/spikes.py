"""The one-step spike phase diagram (Moniri et al. 2023, MATH §4): spike count of F₁ = σ(X̃W₁ᵀ)
over α × n, with the theory ℓ(α) = ⌈1/(1−2α)⌉ − 1 drawn on the figure."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _sized, _vocabulary, plotting
from .._checks import InputError
from .._sized import Capacity
from ..algorithms.one_gradient_step import (
    NO_INIT_READOUT,
    PROJECTION_DEGREE,
    OneStepResult,
    _draw_init,
    init_weights,
    one_step,
    one_step_spikes,
)
from ..data import MultiIndex, SingleIndex
from ._experiment import Experiment, keyword_defaults


# long: one signature line and one forwarded argument per protocol knob
def run(
    key,
    *,
    alpha=0.3,
    c=1.0,
    n=800,
    n_tilde=None,
    dim=None,
    width=None,
    ratio=0.25,
    activation="relu",
    target=(0.0, 1.0, 0.7071067811865476),
    basis="normalised",
    indices=1,
    noise=0.1,
    output_scale="1/sqrt(width)",
    scheme="sphere",
    a_law="gaussian",
    init_seed=None,
    labels=None,
    readout="fresh",
    lambdas=None,
    ridge_loss="mean",
    intercept=True,
    ridge_scale="1",
    n_test=1000,
    test_tile=None,
    init_readout=True,
    k=10,
    degree=8,
    margin=1.02,
    steps=1,
    inputs="gaussian",
    n_capacity=None,
    N=None,
):
    """One seed: y = (1/k)Σ_{j<k} f*(x_j) + noise·ε over the first k = `indices` coordinates (y =
    f*(β·x) + noise·ε with β = e₁ for k = 1), f* from its Hermite coefficients `target` in
    `basis` (`"normalised"` h_k or `"probabilists"` He_k); `dim` = `width` = ratio·n unless
    given (d and Moniri et al.'s N); ñ = n unless given; `steps` giant steps (`one_step`'s
    `steps`: fresh samples at each, the same η; the features and the readout use the last
    weights); `inputs` the law of each input coordinate (`jaxfeat.data.INPUT_LAWS`: gaussian,
    rademacher, uniform, all of unit variance). `init_seed` (an int) draws W₀ and a once from
    `jax.random.key(init_seed)`, the same for every seed (Dandi et al.'s code: fixed
    initialisation, re-sampled data); None draws them per seed. The other knobs are
    `one_step_spikes`' (`scheme`, `a_law`, `output_scale`, `labels`, `readout`, `lambdas`,
    `ridge_loss`, `intercept`, `ridge_scale`, `test_tile`, `init_readout`). Returns
    `one_step_spikes`' statistics (MATH §4.3). `N` is the deprecated 0.1 name of `width` (stores
    written by 0.1 hold `N`; `--set N=…` still works and warns).

    `n_capacity` (a static int ≥ n) makes n a dynamic size (`jaxfeat.Capacity`): the seed
    runs on n_capacity step and readout samples (and the dimension and width that ratio·n
    gives) of which its own are live, with the same numbers as at its exact size. The scan
    engine sets it to group the values of n into one compiled program per bucket."""
    dist, step, spikes = _protocol(
        alpha=alpha, c=c, n=n, n_tilde=n_tilde, dim=dim, width=width, ratio=ratio,
        activation=activation, target=target, basis=basis, indices=indices, noise=noise,
        output_scale=output_scale, scheme=scheme, a_law=a_law, init_seed=init_seed,
        labels=labels, readout=readout, lambdas=lambdas, ridge_loss=ridge_loss,
        intercept=intercept, ridge_scale=ridge_scale, n_test=n_test, test_tile=test_tile,
        init_readout=init_readout, k=k, degree=degree, margin=margin, N=N,
        n_capacity=n_capacity, steps=steps, inputs=inputs,
    )  # fmt: skip
    return one_step_spikes(key, dist, **step, **spikes)


def step(key, **params) -> OneStepResult:
    """The step alone of `run(key, **params)` (the same draws), with its samples
    (`return_data=True`): what the tests pin against each paper's update rule."""
    dist, step, spikes = _protocol(**(keyword_defaults(run) | params))
    k_step = jax.random.split(key, 3)[0]  # one_step_spikes' key for its step
    return one_step(k_step, dist, **step, labels=spikes["labels"], return_data=True)


def _protocol(**p) -> tuple[Any, dict, dict]:
    """(dist, one_step's arguments, the readout's arguments) of `run`'s parameters."""
    cap_n = p.get("n_capacity")
    n, _ = _sized.check_size("n", p["n"], cap_n)
    if not 0 < _checks.check_nonneg_float("ratio", p["ratio"]):
        raise InputError(f"ratio must be > 0, got {p['ratio']}")
    padded = cap_n is not None
    dim, dim_cap = _size("dim", p["dim"], p["ratio"], n, cap_n)
    name, width = _vocabulary.renamed("spikes", "width", p["width"], "N", p["N"])
    grows = padded and width is None and p["dim"] is None  # the width follows n: padded
    width, width_cap = (dim, dim_cap) if width is None else _size(name, width, 0, n, None)
    live_dim = dim if padded and p["dim"] is None else None
    law = p.get("inputs", "gaussian")
    dist = _teacher(dim_cap, p["target"], p["basis"], p["indices"], p["noise"], live_dim, law)
    step: dict[str, Any] = dict(n=n, width=width, activation=p["activation"])
    step["steps"] = _checks.check_positive_int("steps", p.get("steps", 1))
    step |= dict(alpha=p["alpha"], c=p["c"], output_scale=p["output_scale"])
    if p["init_seed"] is None:
        step |= dict(scheme=p["scheme"], a_law=p["a_law"])
    else:
        init_key = jax.random.key(_checks.check_nonneg_int("init_seed", p["init_seed"]))
        scheme, a_law = p["scheme"], p["a_law"]
        if grows:  # the fixed initialisation at this seed's live width and dimension
            W0, a = _draw_init(init_key, width_cap, dim_cap, scheme, a_law, None, live=(width, dim))
        else:
            W0, a = init_weights(init_key, width=width, dim=dim_cap, scheme=scheme, a_law=a_law)
        step |= dict(W0=W0, a=a)
    readout = ("n_test", "test_tile", "init_readout", "k", "degree", "margin", "labels", "readout")
    readout += ("lambdas", "ridge_loss", "intercept", "ridge_scale")
    spikes: dict[str, Any] = {r: p[r] for r in readout}
    same_tilde = p["n_tilde"] is None
    n_tilde = n if same_tilde else p["n_tilde"]
    reuse = same_tilde or (_sized.is_static(n) and n_tilde == n)
    spikes["n_tilde"] = None if p["readout"] == "step" and reuse else n_tilde
    if padded:
        fresh = p["readout"] == "fresh" and same_tilde
        spikes["capacity"] = Capacity(
            n=cap_n, n_tilde=cap_n if fresh else None, width=width_cap if grows else None
        )
    return dist, step, spikes


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


# The published protocols as presets (`jaxfeat run spikes --preset moniri|dandi|ba`); each is
# pinned against a NumPy transcription of its update rule in tests/test_protocols.py.

# Moniri, Lee, Hassani, Dobriban 2023 (arXiv 2310.07891), §4.1 as MATH reconstructs it [R]:
# W₀ rows on the sphere, a ~ N(0, I/N), f = aᵀσ(Wx)/√N, η = c·n^α, a fresh (X̃, ỹ) of size ñ = n
# for the features and a ridge path (mean loss, intercept), d = N = n/4, f* = He₁ + ½He₂.
MONIRI = {
    "grid": {"alpha": [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.41], "n": [1000, 2000, 4000]},
    "seeds": 64,
    "set": {
        "n_test": 2000, "ratio": 0.25, "activation": "relu", "scheme": "sphere",
        "a_law": "gaussian", "output_scale": "1/sqrt(width)", "readout": "fresh",
    },
}  # fmt: skip

# Dandi, Krzakala, Loureiro, Pesce, Stephan 2023 (arXiv 2305.18270), the "one giant step" of
# their single_step notebook: d = 512, p = 1024, W₀ ~ N(0, I/d) and a ~ N(0, I/p) fixed across
# seeds, f = aᵀσ(Wx)/√p with ReLU, y = (f*(x·θ₁) + f*(x·θ₂))/2 with f* = He₁ + He₂/2 + He₄/24
# and θ orthonormal, no noise; labels y − ȳ − X(Xᵀy/n) (each set its own estimate); one step
# W₁ = W₀ + η·(1/n)Xᵀ[(r aᵀ/√p) ⊙ σ′(XW₀ᵀ)]ᵀ with η = 10√(n p), which is η = c·n^α with c = 10,
# α = ½ in jaxfeat's normalisation; ridge on the step's own samples with features σ(XW₁ᵀ)/√p,
# loss |y − ŷ|² + λ|a|², λ = 1, no intercept; 10⁵ test points; no W₀ baseline readout (their
# loop fits none; it would double the test set's cost). n = d^1.3, d^1.65, d² (the last
# needs ≈ 10 GB per seed in float64: trim it with --set n=3326,29532).
DANDI = {
    "grid": {"n": [3326, 29532, 262144]},
    "seeds": 10,
    "set": {
        "dim": 512, "width": 1024, "activation": "relu", "scheme": "gaussian",
        "a_law": "gaussian", "init_seed": 0, "output_scale": "1/sqrt(width)", "alpha": 0.5,
        "c": 10.0, "labels": "moments", "readout": "step", "lambdas": 1.0, "ridge_loss": "sum",
        "intercept": False, "ridge_scale": "1/sqrt(width)", "n_test": 100000,
        "test_tile": 8192, "init_readout": False, "indices": 2, "basis": "probabilists",
        "target": [0.0, 1.0, 0.5, 0.0, 1.0 / 24.0], "noise": 0.0,
    },
}  # fmt: skip

# Ba, Erdogdu, Suzuki, Wang, Wu, Yang 2022 (arXiv 2205.01445) [R]: f = aᵀσ(Wx)/√N, W₀ ~ N(0, I/d),
# a ~ N(0, I/N), one step W₁ = W₀ + η√N·G₀ (G₀ = −∇ of the halved mean squared loss) with
# η = Θ(1) (α = 0, η = c), ridge on a fresh sample with features σ(X̃W₁ᵀ)/√N and no intercept;
# the activation (tanh, centred: μ₀ = 0) and the sizes n = 2d = 2N are this reconstruction's.
BA = {
    "grid": {"c": [0.5, 1.0, 2.0, 4.0, 8.0], "n": [500, 1000, 2000]},
    "seeds": 32,
    "set": {
        "n_test": 2000, "ratio": 0.5, "activation": "tanh", "scheme": "gaussian",
        "a_law": "gaussian", "output_scale": "1/sqrt(width)", "alpha": 0.0, "readout": "fresh",
        "intercept": False, "ridge_scale": "1/sqrt(width)",
    },
}  # fmt: skip


spikes_experiment = Experiment(
    name="spikes",
    fn=run,
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
