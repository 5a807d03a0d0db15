"""The one-step spike phase diagram (Moniri et al. 2023, MATH §4): spike count of F₁ = σ(X̃W₁ᵀ)
over α × n, with the theory ℓ(α) = ⌈1/(1−2α)⌉ − 1 drawn on the figure."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks, _vocabulary, plotting
from .._checks import InputError
from ..algorithms.one_gradient_step import one_step_spikes
from ..data import SingleIndex
from ._experiment import Experiment


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
    noise=0.1,
    output_scale="1/sqrt(width)",
    n_test=1000,
    k=10,
    degree=8,
    margin=1.02,
    N=None,
):
    """One seed: y = Σ_k target[k] h_k(β·x) + noise·ε with β = e₁; `dim` = `width` = ratio·n
    unless given (d and Moniri et al.'s N); ñ = n unless given. Returns `one_step_spikes`'
    statistics (MATH §4.3). `N` is the deprecated 0.1 name of `width` (stores written by 0.1
    hold `N`; `--set N=…` still works and warns)."""
    n = _checks.check_positive_int("n", n)
    if not 0 < _checks.check_nonneg_float("ratio", ratio):
        raise InputError(f"ratio must be > 0, got {ratio}")
    dim = max(1, round(ratio * n)) if dim is None else _checks.check_positive_int("dim", dim)
    name, width = _vocabulary.renamed("spikes", "width", width, "N", N)
    width = dim if width is None else _checks.check_positive_int(name, width)
    dist = SingleIndex(np.eye(1, dim)[0], _check_target(target), noise=noise)
    n_tilde = n if n_tilde is None else n_tilde
    step: dict[str, Any] = dict(n=n, width=width, activation=activation, alpha=alpha, c=c)
    spikes: dict[str, Any] = dict(n_tilde=n_tilde, n_test=n_test, k=k, degree=degree, margin=margin)
    return one_step_spikes(key, dist, **step, **spikes, output_scale=output_scale)


def _check_target(target) -> list:
    if not isinstance(target, (list, tuple)) or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) for t in target
    ):
        raise InputError(
            f"target must be a list of Hermite coefficients of f* (numbers), got {target!r}"
        )
    return list(target)


spikes_experiment = Experiment(
    name="spikes",
    fn=run,
    description="one-step spikes of F = σ(X̃W₁ᵀ): spike count over α × n vs ℓ(α) (Moniri et al.)",
    dynamic=frozenset({"alpha", "c"}),
    dims={
        "singular_values": ("k",),
        "mass_in_hermite_span": ("k",),
        "capture": ("hermite",),
    },
    check=("singular_values", "deflated_edge", "test_mse_w1", "test_mse_w0"),
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
    },
    plot=plotting.spike_phase_diagram,
)
