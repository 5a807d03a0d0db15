"""Moniri, Lee, Hassani, Dobriban (2023), Theorems 4.1–4.2 measured: the ridge readout's errors
on F₁ = σ(X̃W₁ᵀ) against those on F₀ = σ(X̃W₀ᵀ) and on F₀ plus k spike terms
(`jaxfeat.spectrum.spike_expansion`, MATH §4.2, §4.5 [R]), with λ chosen on the training
sample (exact leave-one-out, `jaxfeat.ridge.ridge_path`), and what each readout learned: the
Hermite projections ĉ_k = E[f̂(x) h_k(β·x)] of its predictor on the test set.

Feature maps, in this order (the `features` dimension of the `equivalence` experiment):
`FEATURES(K)` = ("F1", "F0", "spikes_1", …, "spikes_K").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .. import _checks, _sized, activations as _act, protocol as _protocol
from .._checks import InputError
from .._quadrature import hermite_polynomials
from .._sized import Capacity
from ..data import Distribution, SingleIndex
from ..ridge import ridge_path
from ..rows import ArrayRows, fold_rows
from ..spectrum import (
    EXPANSION_BASES,
    DenseFeatures,
    centred_gram_eigh,
    count_spikes,
    hermite_features,
    spike_expansion as _expansion,
)
from .one_gradient_step import _check_lambdas, _jitted_entry, one_step, spike_factors

__all__ = ["FEATURES", "one_step_equivalence"]


def FEATURES(terms: int) -> tuple[str, ...]:
    """The feature maps' names for K = `terms` spike terms: F1, F0, spikes_1..spikes_K."""
    return ("F1", "F0", *(f"spikes_{k}" for k in range(1, terms + 1)))


# long: one signature line per protocol knob
def _one_step_equivalence(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    n,
    n_tilde=None,
    width,
    n_test: int = 1000,
    activation="relu",
    alpha=0.3,
    c=1.0,
    terms: int = 3,
    expansion: str = "hermite",
    lambdas=None,
    degree: int = 4,
    test_tile: int | None = None,
    k: int = 10,
    capacity: Capacity | None = None,
    **step_kwargs,
) -> dict[str, Array]:
    """One seed: a step (`jaxfeat.one_step`, `step_kwargs` such as `steps`, `scheme`,
    `output_scale` go there), a readout sample (X̃, ỹ) of ñ = `n_tilde` (default n) fresh
    points, and for each feature map of `FEATURES(terms)` a ridge path over `lambdas` (default
    10⁻⁷..1, 15 values; mean loss, intercept) with λ chosen by exact leave-one-out on (X̃, ỹ).
    The test errors are on `n_test` fresh points visited `test_tile` rows at a time (one tile
    of one feature map's features at a time).

    **Returns** (the leading dimension the feature maps, in `FEATURES(terms)`'s order):
    `train_mse`, `test_mse` at the LOO-chosen λ, `lambda` that λ, `test_mse_oracle` the
    smallest test error over the grid (λ chosen on the test set: optimistic, for reference),
    `hermite_projection` (features, degree + 1) ĉ_k = mean over the test set of f̂(x)h_k(β·x)
    at the chosen λ and `hermite_projection_se` its standard error, `target_projection`
    (degree + 1,) the same for the test labels, `n_outliers` the spike count of F₁ (MATH
    §4.3, `k` singular values), and `spike_strength` (terms,): θ_k = ‖c_k h_k(X̃ζ̂)‖‖δ^{∘k}‖,
    the singular value of the k-th spike term, against `bulk_edge`, the top singular value of
    the column-centred F₀ (MATH §4.2, §4.3 step 5).

    **Dynamic sizes**: with `capacity=jf.Capacity(n=…, n_tilde=…, width=…)` those sizes may be
    traced values up to the static capacities (`one_step`'s docstring): the step and the
    readout sample run on capacity rows and neurons of which the live ones count, with the
    same numbers as the exact sizes (to rounding; spike counts identical).

    **A protocol value**: `protocol=jf.protocol.OneStepProtocol(…)` passes its activation,
    initialisation and step, and its readout's `lambdas`, `n_test`, `test_tile` and the spike
    count's `k` (this procedure's readout is its own: the rest of `readout` is not used, and a
    `labels` rule pre-processes the step's labels only); keywords given beside it override
    its fields.
    """
    terms = _checks.check_nonneg_int("terms", terms)
    degree = _checks.check_nonneg_int("degree", degree)
    if expansion not in EXPANSION_BASES:
        raise InputError(f"expansion must be one of {EXPANSION_BASES}, got {expansion!r}")
    if not isinstance(dist, SingleIndex):
        raise InputError("one_step_equivalence: dist must be a SingleIndex (the projections use β)")
    n_test = _checks.check_positive_int("n_test", n_test)
    test_tile = n_test if test_tile is None else _checks.check_positive_int("test_tile", test_tile)
    lambdas = jnp.logspace(-7, 0, 15) if lambdas is None else _check_lambdas(lambdas)
    lambdas = jnp.atleast_1d(lambdas)
    act = _act.get(activation)
    cap = Capacity() if capacity is None else capacity
    padded = cap != Capacity()
    n_tilde = n if n_tilde is None else n_tilde
    k_step, k_feat, k_test = jax.random.split(key, 3)
    res = one_step(
        k_step, dist, n=n, width=width, activation=act, alpha=alpha, c=c,
        capacity=Capacity(n=cap.n, width=cap.width) if padded else None, **step_kwargs,
    )  # fmt: skip
    Xt, yt = dist.sample(k_feat, n_tilde, capacity=cap.n_tilde)
    live = n_tilde if cap.n_tilde is not None else None
    neurons = None if cap.width is None else _sized.live_mask(cap.width, width)
    maps = _feature_maps(res, act, terms, expansion, neurons)
    F1 = DenseFeatures(maps[0](Xt), n=live)  # formed once: for its ridge path and spike count
    # and its centred Gram matrix decomposed once for both (the dual form, N > ñ, leaves it to
    # the spike count)
    eig = centred_gram_eigh(F1)
    fits = [ridge_path(F1.F, yt, lambdas, n=live, gram_eigh=eig)]
    fits += [ridge_path(f(Xt), yt, lambdas, n=live) for f in maps[1:]]
    test = ArrayRows(*dist.sample(k_test, n_test), tile=test_tile)
    out = _readout_summary(fits, lambdas, maps, test, jnp.asarray(dist.beta), degree)
    return out | _spike_summary(Xt, res, act, terms, k, fits[1], F1, eig, live)


# the protocol's initialisation, step and the readout fields this procedure has (its readout
# is its own: a ridge path with leave-one-out on every feature set)
_KEYWORDS = _protocol.STEP_KEYWORDS + ("lambdas", "n_test", "test_tile", "k")
one_step_equivalence = _jitted_entry(_one_step_equivalence, _KEYWORDS)


def _feature_maps(res, act, terms, expansion, neurons=None) -> list:
    """X ↦ features, for F₁, F₀ and F₀ + k spike terms (k = 1..terms); padding neurons'
    columns (False in `neurons`) zero, whatever σ(0) is."""
    maps = [lambda X: act.layer(X, res.W1)] + [
        functools.partial(_expansion, step=res, activation=act, terms=k, basis=expansion)
        for k in range(terms + 1)
    ]
    if neurons is None:
        return maps
    live = neurons[None, :]
    return [lambda X, f=f: _sized.where(live, f(X), 0.0) for f in maps]


def _readout_summary(fits, lambdas, maps, test, beta, degree) -> dict[str, Array]:
    """Per feature map: the LOO choice of λ, its train and test errors, the oracle test error,
    and the Hermite projections of the chosen predictor on the test rows."""
    chosen = jnp.stack([jnp.argmin(f["loo_mse"]) for f in fits])

    def tile_sums(X, y, valid):
        h = hermite_polynomials(X @ beta, degree) * valid[:, None]  # (tile, degree + 1)
        sq, proj, proj2 = [], [], []
        for f, fit, j in zip(maps, fits, chosen):
            pred = f(X) @ fit["coef"].T + fit["intercept"][None, :]  # (tile, L)
            sq.append(jnp.sum((pred - y[:, None]) ** 2 * valid[:, None], 0))
            ph = pred[:, j][:, None] * h
            proj.append(ph.sum(0))
            proj2.append((ph * ph).sum(0))
        yh = y[:, None] * h
        return jnp.stack(sq), jnp.stack(proj), jnp.stack(proj2), yh.sum(0), (yh * yh).sum(0)

    zeros = (len(fits), lambdas.shape[0]), (len(fits), degree + 1), (len(fits), degree + 1)
    init = tuple(jnp.zeros(z, beta.dtype) for z in zeros) + (jnp.zeros(degree + 1, beta.dtype),) * 2
    sq, proj, proj2, yh, yh2 = fold_rows(test, tile_sums, init)
    m = test.count
    test_mse = sq / m
    rows = jnp.arange(len(fits))
    train = jnp.stack([f["train_mse"] for f in fits])
    return {
        "train_mse": train[rows, chosen], "test_mse": test_mse[rows, chosen],
        "lambda": lambdas[chosen], "test_mse_oracle": test_mse.min(1),
        "hermite_projection": proj / m, "hermite_projection_se": _se(proj, proj2, m),
        "target_projection": yh / m, "target_projection_se": _se(yh, yh2, m),
    }  # fmt: skip


def _se(s1, s2, m):
    """The standard error of a mean from the sums of x and x² over m points."""
    var = jnp.maximum(s2 / m - (s1 / m) ** 2, 0.0) * m / (m - 1)
    return jnp.sqrt(var / m)


def _spike_summary(Xt, res, act, terms, k, fit0, F1: DenseFeatures, eig, live) -> dict:
    """F₁'s spike count (MATH §4.3; `eig` its centred Gram matrix's eigendecomposition or
    None), the spike terms' strengths θ_k = ‖c_k h_k‖‖δ^{∘k}‖ (the uncentred factors of
    `spike_factors`) and F₀'s bulk edge (from the F₀ ridge path's eigenvalues: the centred
    Gram matrix over the `live` rows)."""
    H = hermite_features(Xt, res.zeta, 8)
    n_outliers = count_spikes(F1, H, k=min(k, min(F1.shape) - 1), gram_eigh=eig)["n_outliers"]
    rows = Xt.shape[0] if live is None else jnp.asarray(live, Xt.dtype)
    edge = jnp.sqrt(rows * jnp.maximum(fit0["gram_eigenvalues"][-1], 0.0))
    C, powers = spike_factors(Xt, res, act, max(terms, 1), live, centre=False)
    theta = jnp.linalg.norm(C, axis=0) * jnp.linalg.norm(powers, axis=1)
    return {"n_outliers": n_outliers, "spike_strength": theta[:terms], "bulk_edge": edge}
