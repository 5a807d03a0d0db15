"""Moniri et al.'s equivalence theorems measured (Theorems 4.1–4.2, MATH §4.5 [R]): over α × n
(ñ = n), the ridge readout's train and test errors on F₁, on F₀ and on F₀ + k spike terms
(k = 1..`terms`), λ chosen by leave-one-out on the training sample, and the Hermite projections
of what each readout learned. The theory: |err(F₁) − err(F₀ + k terms)| → 0 as n grows for
k ≥ ℓ(α), and stays for k < ℓ(α) when the target has a degree-k component."""

from __future__ import annotations

from .. import _checks, plotting
from .._checks import InputError
from ..algorithms.equivalence import FEATURES, one_step_equivalence
from . import spikes as _spikes
from ._experiment import Experiment

#: the `spikes` parameters this experiment shares (sizes, teacher, initialisation and step;
#: ñ = n, and the readout is its own) and its own, with their defaults
_SHARED = ("n", "dim", "width", "ratio", "target", "basis", "noise", "inputs", "n_capacity")
_SHARED += ("activation", "scheme", "a_law", "output_scale", "init_seed", "alpha", "c", "steps")
_OWN = {"terms": 3, "expansion": "hermite", "lambdas": None, "n_test": 1000, "test_tile": None}
DEFAULTS: dict = {k: _spikes.DEFAULTS[k] for k in _SHARED} | {"n": 1000} | _OWN | {"degree": 4}


def run(key, **params) -> dict:
    """One seed of the `spikes` protocol (the same parameters: f* from its Hermite coefficients
    `target`, d = width = ratio·n unless given, ñ = n, η = c·n^α, `steps` giant steps, `inputs`
    the input law), then
    `jaxfeat.algorithms.equivalence.one_step_equivalence` with K = `terms` spike terms in the
    `expansion` basis (`"hermite"` or `"monomial"`), the λ grid `lambdas`, `n_test` test points
    (`test_tile` rows at a time) and Hermite projections up to `degree`. `n_capacity` (a
    static int ≥ n, set by the scan engine's buckets) makes n a dynamic size, as in `spikes`."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)} for equivalence; known: "
                         f"{', '.join(DEFAULTS)}")  # fmt: skip
    p = DEFAULTS | dict(params)
    dist, sizes, protocol = _spikes.setup({k: p[k] for k in _SHARED})
    return one_step_equivalence(
        key, dist, n=sizes["n"], width=sizes["width"], n_tilde=None, capacity=sizes["capacity"],
        protocol=protocol, terms=_terms(p["terms"]), expansion=p["expansion"],
        lambdas=p["lambdas"], n_test=p["n_test"], test_tile=p["test_tile"], degree=p["degree"],
    )  # fmt: skip


def _terms(terms) -> int:
    terms = _checks.check_nonneg_int("terms", terms)
    if terms > 8:
        raise InputError(f"terms must be <= 8 (spikes beyond ℓ = 8 need α > 0.44), got {terms}")
    return terms


equivalence_experiment = Experiment(
    name="equivalence",
    fn=run,
    defaults=DEFAULTS,
    description="ridge errors on F₁ vs F₀ + k spike terms over α × n (Moniri et al. Thms 4.1–4.2)",
    dynamic=frozenset({"alpha", "c"}),
    capacity={"n": "n_capacity"},
    dims={
        "train_mse": ("features",),
        "test_mse": ("features",),
        "test_mse_oracle": ("features",),
        "lambda": ("features",),
        "hermite_projection": ("features", "degree"),
        "hermite_projection_se": ("features", "degree"),
        "target_projection": ("degree",),
        "target_projection_se": ("degree",),
        "spike_strength": ("term",),
    },
    coords={
        "features": lambda p: list(FEATURES(_terms(p["terms"]))),
        "degree": lambda p: list(range(_checks.check_nonneg_int("degree", p["degree"]) + 1)),
        "term": lambda p: list(range(1, _terms(p["terms"]) + 1)),
    },
    check=("train_mse", "test_mse"),
    presets={
        "quick": {
            "grid": {"alpha": [0.0, 0.3], "n": [250, 500, 1000]},
            "seeds": 16,
            "set": {"terms": 3, "n_test": 1000},
        },
        "paper": {
            "grid": {
                "alpha": [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.41],
                "n": [1000, 2000, 4000, 8000],
            },
            "seeds": 64,
            "set": {"terms": 5, "n_test": 2000},
        },
    },
    plot=plotting.equivalence_figure,
)
