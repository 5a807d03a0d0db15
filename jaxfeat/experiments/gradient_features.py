"""Shi–Wei–Liang gradient-feature learning (MATH §6): Algorithm 1 against random features, the
NTK and the NNGP on the same samples, seed by seed, on an XOR Gaussian mixture, a structured
sparse parity or linearly separable data with a margin (`data` = "xor" | "parity" | "linear")."""

from __future__ import annotations

import math

import numpy as np

from .. import _checks, plotting
from .._checks import InputError
from ..algorithms.gradient_features import (
    LEARNERS,
    QUANTILES,
    gradient_features,
    parity_directions,
    xor_directions,
)
from ..data import GaussianMixture, LinearSeparable, SparseParity
from ..training import log_steps
from ._experiment import Experiment, keyword_defaults


def make_data(data: str, dim: int, *, mu_norm=3.0, sigma=1.0, k=5, p_A=0.5, margin=0.1):
    """The distribution and its ground-truth directions.

    - `"xor"`: means ±μ_1 (y = +1), ±μ_2 (y = −1), |μ_j| = `mu_norm`, μ_1 ⊥ μ_2, noise
      N(0, σ² I_d) (σ = `sigma`; `None` gives 1/√d, MATH §6.2's runs, where kernels already
      reach the Bayes error); directions ±μ_j.
    - `"parity"`: y = Π_{i<k} x_i on {±1}^d; with probability `p_A` the support's coordinates
      are all +1 or all −1 (the structured component, MATH §6.2). For odd k its labels are
      x_1, a linear signal along 1_A that G picks up; for even k they are constant and G
      leans to 1_A only through the threshold's asymmetry (at d = 30, k = 4, 0.7 % of the Ĝ
      of 1,000 samples lie in the γ = 0.1 cone, against 88 % at k = 5). Directions ±1_A/√k.
    - `"linear"`: Gaussian inputs with |x_1| ≥ `margin`, y = sign(x_1) (linearly separable with
      that margin); directions ±e_1. No exact G: the exact-G statistics are NaN.
    """
    _check_data_numbers(mu_norm, sigma, k, p_A, margin)
    if data == "xor":
        dist = GaussianMixture.xor(dim, sigma=sigma, mu_norm=mu_norm)
        return dist, xor_directions(dim, mu_norm)
    if data == "parity":
        if not k <= dim:
            raise InputError(f"k (the parity's support size) must be an int in [1, dim={dim}]")
        dist = SparseParity(dim, range(k), structured_weight=p_A)
        return dist, parity_directions(dim, range(k))
    if data == "linear":
        w_star = np.eye(1, dim)[0]
        return LinearSeparable(w_star, float(margin)), np.stack([w_star, -w_star])
    raise InputError(f"data must be 'xor', 'parity' or 'linear', got {data!r}")


def _check_data_numbers(mu_norm, sigma, k, p_A, margin) -> None:
    """The data's numbers, whichever `data` uses them (a string is refused by name)."""
    _checks.check_nonneg_float("mu_norm", mu_norm)
    if sigma is not None:
        _checks.check_nonneg_float("sigma", sigma)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k (the parity's support size) must be an int >= 1, got {k!r}")
    if not 0 <= _checks.check_nonneg_float("p_A", p_A) <= 1:
        raise InputError(f"p_A must be a probability in [0, 1], got {p_A!r}")
    _checks.check_nonneg_float("margin", margin)


# the procedure's own parameters and defaults (log points every 50 steps for the figures)
_TRAIN = keyword_defaults(gradient_features, skip=("dist", "directions", "ridges")) | {
    "log_every": 50
}


def run(key, *, data="xor", dim=32, mu_norm=3.0, sigma=1.0, k=5, p_A=0.5, margin=0.1, **train):
    """One seed: the distribution and directions of `make_data`, then
    `gradient_features(key, dist, directions=directions, **train)` (module docstring)."""
    dist, directions = make_data(
        data, dim, mu_norm=mu_norm, sigma=sigma, k=k, p_A=p_A, margin=margin
    )
    return gradient_features(key, dist, directions=directions, **train)


_NAN = math.nan

gradient_features_experiment = Experiment(
    name="gradient_features",
    fn=run,
    defaults=keyword_defaults(run) | _TRAIN,
    description="Shi–Wei–Liang: one gradient-feature step + readout vs random features, NTK, NNGP",
    dynamic=frozenset({"width", "eta1", "lr", "weight_decay"}),
    padded={"width": "max_width"},
    capacity={"n": "n_capacity"},
    dims={
        "test_error": ("learner",),
        "G_norm_quantiles": ("quantile",),
        "network_test_error": ("step",),
        "baseline_ridge": ("baseline",),
    },
    coords={
        "learner": lambda p: np.asarray(LEARNERS),
        "baseline": lambda p: np.asarray(LEARNERS[1:]),
        "quantile": lambda p: np.asarray(QUANTILES),
        "step": lambda p: log_steps(p["steps"], p["log_every"]),
    },
    check=("test_error", "train_error", "network_test_error"),
    # exact G exists for mixtures and parities of dim <= 16 only; the Bayes error for both
    not_applicable={
        "aligned_fraction": _NAN,
        "G_norm_quantiles": _NAN,
        "G_error": _NAN,
        "bayes_error": _NAN,
    },
    presets={
        # XOR, unit noise, |μ| = 3: at d = 8 the four methods are within 1 % of each other,
        # at d = 64 only the network stays near the Bayes error
        "quick": {"grid": {"dim": [8, 16, 32, 64]}, "seeds": 32, "set": {}},
        # test error over d × n for the XOR mixture
        "paper_xor": {
            "grid": {"dim": [8, 16, 32, 64, 128], "n": [250, 500, 1000]},
            "seeds": 64,
            "set": {},
        },
        # structured parity over k × d: k = 1 is linear (every method learns it)
        "paper_parity": {
            "grid": {"k": [1, 3, 5, 7], "dim": [16, 32]},
            "seeds": 64,
            "set": {
                "data": "parity",
                "n": 1000,
                "b_std": 1.0,
                "steps": 1500,
                "log_every": 250,
            },
        },
        # test error over (n, width) for XOR at d = 64
        "paper_width": {
            "grid": {"width": [16, 32, 64, 128, 256], "n": [250, 500, 1000]},
            "seeds": 64,
            "set": {"dim": 64},
        },
    },
    plot=plotting.gradient_features_figure,
)
