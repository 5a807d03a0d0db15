"""Top singular values of feature matrices and the spikes among them (MATH §4.3).

`feature_spectrum` and `count_spikes` take a `FeatureSource` (an array F (ñ, N), which
`as_features` wraps as `DenseFeatures`, or a `LazyFeatures`
F = σ(X̃Wᵀ) that is never formed) and run one of two paths:

- **dense** (default for arrays): the column-centred Gram matrix F_cᵀF_c (N×N) or F_cF_cᵀ
  (ñ×ñ), whichever is smaller, and one `eigh`;
- **krylov** (default for `LazyFeatures`, matrix-free): block Krylov on V ↦ F_cᵀF_c V
  (Musco & Musco 2015). For `LazyFeatures` each application streams X̃ in row tiles and
  recomputes σ(X̃_t Wᵀ) on the fly, so memory is O(tile·N + N·k·iters), independent of ñ.

`count_spikes` counts singular values above the *deflated* bulk edge: the top singular value of
F_c with the Hermite features He_1..He_J(X̃ζ̂) projected out, times a margin (MATH §4.3 step 3).
On the krylov path the spectrum of F_cᵀF_c and the top of the deflated operator are iterated
in lockstep, so that every streamed pass over X̃ serves both.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, _sized, activations as _act
from ._checks import InputError
from ._quadrature import hermite_polynomials
from .rows import Rows, as_rows, fold_rows, map_rows, materialize

__all__ = [
    "FeatureSource",
    "DenseFeatures",
    "LazyFeatures",
    "as_features",
    "feature_spectrum",
    "hermite_features",
    "count_spikes",
    "centred_gram_eigh",
    "spike_statistics",
    "spike_expansion",
    "EXPANSION_BASES",
]


class FeatureSource(eqx.Module):
    """A feature matrix F (ñ, N), abstract: what the spectrum kernels ask of it.

    Two final implementations: `DenseFeatures` (an array in memory) and `LazyFeatures` (σ(X̃Wᵀ),
    never formed; every method streams row tiles). The public functions accept an array too
    (`as_features` wraps it). Each method is one pass over F.
    """

    default_method: ClassVar[str]  # the `method="auto"` path: "dense" or "krylov"

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """(ñ, N)."""

    @property
    @abc.abstractmethod
    def dtype(self):
        """The dtype of F's entries."""

    @abc.abstractmethod
    def materialize(self) -> Float[Array, "n width"]:
        """F itself (the reference for tests, and the dense path)."""

    @abc.abstractmethod
    def column_mean(self) -> Float[Array, " width"]:
        """μ = Fᵀ1/ñ."""

    @abc.abstractmethod
    def centred_gram(self, mu: Float[Array, " width"]) -> Callable[[Array], Array]:
        """V ↦ F_cᵀF_c V with F_c = F − 1μᵀ."""

    @abc.abstractmethod
    def left_vectors(self, mu, V: Float[Array, "width k"], s: Float[Array, " k"]) -> Array:
        """U = F_c V / s (columns with s = 0 left undivided), shape (ñ, k)."""

    @abc.abstractmethod
    def hermite_input(self, H, direction, degree) -> tuple[Array | None, Array | None, int]:
        """Check and convert what `count_spikes` needs to build the Hermite features: `H`
        (ñ, J) for a dense F, a `direction` (d,) and `degree` for a lazy one."""

    @abc.abstractmethod
    def hermite_stats(self, H, direction, degree) -> tuple[Array, Array, Array]:
        """Column means μ, HᵀF_c and HᵀH."""

    @abc.abstractmethod
    def densify(self, H, direction, degree) -> tuple[DenseFeatures, Array]:
        """F as `DenseFeatures` and the Hermite features H (ñ, degree) for the dense path."""


class DenseFeatures(FeatureSource):
    """A feature matrix held in memory, F (ñ, N). With `n=k` (may be traced) only its first k
    rows are live, the rest padding below a static capacity (`jaxfeat._sized`): column means
    are over the live rows and the padding rows are zero once centred, so spectra and spike
    statistics are those of the k live rows alone."""

    F: Float[Array, "n width"]
    live: Array | None
    default_method: ClassVar[str] = "dense"

    def __init__(self, F: ArrayLike, *, n=None):
        rows, _ = _checks.check_ndim("F", F, 2, "(n, N)")
        self.F = jnp.asarray(F)
        self.live = None if n is None else jnp.asarray(_sized.check_size("n", n, rows)[0])

    def _rows(self, x) -> Array:
        """x (rows, …) with its padding rows zeroed."""
        return _sized.mask_rows(x, self.live)

    def centred(self, mu) -> Array:
        """F − μ on the live rows, zero on the padding rows."""
        return self._rows(self.F - mu[None, :])

    @property
    def shape(self):
        return self.F.shape

    @property
    def dtype(self):
        return self.F.dtype

    def materialize(self):
        return self._rows(self.F)

    def column_mean(self):
        if self.live is None:
            return jnp.mean(self.F, axis=0)
        return jnp.sum(self._rows(self.F), axis=0) / self.live

    def centred_gram(self, mu):
        Fc = self.centred(mu)
        return lambda V: Fc.T @ (Fc @ V)

    def left_vectors(self, mu, V, s):
        return self.centred(mu) @ V / jnp.where(s > 0, s, 1.0)[None, :]

    def hermite_input(self, H, direction, degree):
        if H is None or direction is not None:
            raise InputError(
                "for an array F give H = hermite_features(X̃, ζ̂, degree) (n, J); direction= "
                "needs LazyFeatures"
            )
        _checks.check_ndim("H", H, 2, "(n, J)")
        n = self.shape[0]
        if np.shape(H)[0] != n:
            raise InputError(
                f"H must have shape (n, J) with n = {n} rows like F, got {np.shape(H)}"
            )
        return jnp.asarray(H), None, degree

    def hermite_stats(self, H, direction, degree):
        mu, H = self.column_mean(), self._rows(H)
        return mu, H.T @ self.centred(mu), H.T @ H

    def densify(self, H, direction, degree):
        return self, H


class LazyFeatures(FeatureSource):
    """The feature matrix F = σ(X̃Wᵀ) (ñ, N) of a bias-free layer, held as its ingredients.

    `X` is an array (ñ, d) or a `jaxfeat.rows.Rows` (e.g. `SampledRows`, which draws X̃ tile
    by tile and never stores it); `W` is (N, d). Kernels only visit F a row tile at a time.
    `feature_spectrum` and `count_spikes` take it in place of an array, on the matrix-free
    krylov path by default (module docstring; MATH §4.3).

    **Arguments:**

    - `X`: the inputs X̃, an array (ñ, d) or a `jaxfeat.rows.Rows`.
    - `W`: the first-layer weights (N, d), d matching `X` (else `InputError`).
    - `activation`: σ, an activation name or `jaxfeat.activations.Activation`, applied as
      `activation.layer(X̃, W)`.
    - `tile`: rows per tile when `X` is an array (default 2048); a `Rows` keeps its own tiling.

    **Fields:** `rows` (the `Rows` of X̃), `W` (N, d), `activation` (static); `shape` is (ñ, N).
    """

    rows: Rows
    W: Float[Array, "width dim"]
    activation: _act.Activation = eqx.field(static=True)
    default_method: ClassVar[str] = "krylov"

    def __init__(self, X, W: ArrayLike, activation, *, tile: int = 2048):
        d = X.dim if isinstance(X, Rows) else _checks.check_ndim("X", X, 2, "(n, d)")[1]
        _checks.check_ndim("W", W, 2, "(N, d)")
        if np.shape(W)[1] != d:
            raise InputError(f"W must have shape (N, d) = (N, {d}) to match X, got {np.shape(W)}")
        self.activation = _act.get(activation)
        self.rows, self.W = as_rows(X, tile), jnp.asarray(W)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.n, self.W.shape[0])

    @property
    def dtype(self):
        return self.W.dtype

    def tile_features(self, X, valid):
        """σ(X_t Wᵀ) for one row tile, padding rows set to 0."""
        F = self.activation.layer(X.astype(self.W.dtype), self.W)
        return jnp.where(valid[:, None], F, 0.0)

    def fold(self, fn, init):
        """Σ over row tiles t of fn(F_t, X_t, valid_t)."""
        return fold_rows(self.rows, lambda X, y, v: fn(self.tile_features(X, v), X, v), init)

    def materialize(self) -> Float[Array, "n width"]:
        return map_rows(self.rows, lambda X, y, v: self.tile_features(X, v))

    def column_mean(self):
        total = self.fold(lambda Ft, X, v: jnp.sum(Ft, 0), jnp.zeros(self.shape[1], self.dtype))
        return total / self.shape[0]

    def centred_gram(self, mu):
        """FᵀFV − ñμ(μᵀV): one streamed pass per application."""
        n = self.shape[0]

        def apply(V):
            FtFV = self.fold(lambda Ft, X, v: Ft.T @ (Ft @ V), jnp.zeros_like(V))
            return FtFV - n * mu[:, None] * (mu @ V)[None, :]

        return apply

    def left_vectors(self, mu, V, s):
        safe = jnp.where(s > 0, s, 1.0)[None, :]
        return map_rows(
            self.rows, lambda X, y, v: (self.tile_features(X, v) - mu[None, :]) @ V / safe
        )

    def hermite_input(self, H, direction, degree):
        if H is not None or direction is None:
            raise InputError(
                "for LazyFeatures give direction= (He_1..He_degree(X̃û) are built tile by tile), "
                "not H"
            )
        d = self.rows.dim
        _checks.check_shape("direction", direction, (d,), f"(d,) = ({d},)")
        return (
            None,
            jnp.asarray(direction, self.dtype),
            _checks.check_positive_int("degree", degree),
        )

    def hermite_stats(self, H, direction, degree):
        """One streamed pass, with H = He_1..He_degree(X̃ û) built tile by tile."""
        u = direction / jnp.linalg.norm(direction)
        N, dt = self.shape[1], self.dtype

        def stats(Ft, X, v):
            Ht = jnp.where(v[:, None], hermite_polynomials(X.astype(dt) @ u, degree)[:, 1:], 0.0)
            return Ht.T @ Ft, Ht.T @ Ht, jnp.sum(Ft, 0), jnp.sum(Ht, 0)

        init = (jnp.zeros((degree, N), dt), jnp.zeros((degree, degree), dt))
        HtF, HtH, Fsum, Hsum = self.fold(stats, init + (jnp.zeros(N, dt), jnp.zeros(degree, dt)))
        mu = Fsum / self.shape[0]
        return mu, HtF - Hsum[:, None] * mu[None, :], HtH

    def densify(self, H, direction, degree):
        H = hermite_features(materialize(self.rows)[0].astype(self.dtype), direction, degree)
        return DenseFeatures(self.materialize()), H


def as_features(F: ArrayLike | FeatureSource) -> FeatureSource:
    """`F` itself when it is a `FeatureSource`, else `DenseFeatures(F)` (an array (ñ, N))."""
    return F if isinstance(F, FeatureSource) else DenseFeatures(F)


def _check_k(k, n, N):
    k = _checks.check_positive_int("k", k)
    if k > min(n, N):
        raise InputError(f"k must be <= min(n, N) = {min(n, N)} for F of shape {(n, N)}, got {k}")
    return k


def _check_method(method, F: FeatureSource, key, iters):
    if method not in ("auto", "dense", "krylov"):
        raise InputError(f"method must be 'auto', 'dense' or 'krylov', got {method!r}")
    if method == "auto":
        method = F.default_method
    if method == "krylov":
        if key is None:
            raise InputError("key is required for method='krylov' (the random start block)")
        _checks.check_key(key)
        _checks.check_positive_int("iters", iters)
    return method


def _block_krylov(apply, N, key, dtype, *, problems, block, iters):
    """Top eigenpairs of `problems` PSD N×N operators at once, by block Krylov with full
    reorthogonalisation and a final Rayleigh–Ritz step (Musco & Musco 2015).

    `apply` maps a stack of blocks (P, N, b) to the operators' images, so that one pass over
    the data serves all P operators. Returns eigenvalues (P, m) in decreasing order and Ritz
    vectors (P, N, m), m = block × the number of Krylov blocks."""
    T = lambda A: jnp.swapaxes(A, 1, 2)  # noqa: E731
    Q = jnp.linalg.qr(jax.random.normal(key, (problems, N, block), dtype))[0]
    basis, images = [Q], [apply(Q)]
    for _ in range(min(iters, N // block) - 1):  # the basis may not outgrow the space
        Z = images[-1]
        for _ in range(2):  # two Gram–Schmidt passes against the whole basis
            B = jnp.concatenate(basis, axis=2)
            Z = Z - B @ (T(B) @ Z)
        Q = jnp.linalg.qr(Z)[0]
        basis.append(Q)
        images.append(apply(Q))
    B, AB = jnp.concatenate(basis, axis=2), jnp.concatenate(images, axis=2)
    evals, Y = jnp.linalg.eigh((T(B) @ AB + T(AB) @ B) / 2)
    return evals[:, ::-1], (B @ Y)[:, :, ::-1]


def _top(evals, vecs, k) -> tuple[Array, Array]:
    """The k largest eigenpairs of an ascending `eigh`, as singular values √λ (decreasing)."""
    return jnp.sqrt(jnp.maximum(evals[::-1][:k], 0.0)), vecs[:, ::-1][:, :k]


def _dense_spectrum(F: DenseFeatures, k, center):
    """`eigh` of the smaller Gram matrix; the other side's vectors are F_c V/s or F_cᵀU/s."""
    n, N = F.shape
    Fc = F.centred(F.column_mean()) if center else F.materialize()
    right = N <= n
    evals, vecs = jnp.linalg.eigh(Fc.T @ Fc if right else Fc @ Fc.T)
    s, Y = _top(evals, vecs, k)
    other = (Fc @ Y if right else Fc.T @ Y) / jnp.where(s > 0, s, 1.0)[None, :]
    return (s, other, Y) if right else (s, Y, other)


def _feature_spectrum(
    F: ArrayLike | FeatureSource,
    k: int,
    *,
    center: bool = True,
    method: str = "auto",
    key: PRNGKeyArray | None = None,
    iters: int = 8,
    block: int | None = None,
    left: bool = True,
) -> tuple[Float[Array, " k"], Float[Array, "n k"] | None, Float[Array, "width k"]]:
    """Top-k singular values s (decreasing) and left/right singular vectors U, V of F_c, the
    column-centred F (`center=False`: F itself).

    **Arguments:** `F` an array (ñ, N) or a `LazyFeatures`; `method` `"dense"` (Gram matrix and
    `eigh`; materialises a `LazyFeatures`), `"krylov"` (matrix-free block Krylov, needs `key`;
    `iters` blocks of `block` = k + 10 vectors) or `"auto"` (dense for arrays, krylov for
    `LazyFeatures`); `left=False` skips U (returned as None), which for `LazyFeatures` saves a
    pass and O(ñk) memory. The separated outliers converge in a few Krylov iterations; raise
    `iters` when values inside the bulk must converge too. `vmap` it over a batch.
    """
    F = as_features(F)
    n, N = F.shape
    k = _check_k(k, n, N)
    method = _check_method(method, F, key, iters)
    if method == "dense":
        dense = F if isinstance(F, DenseFeatures) else DenseFeatures(F.materialize())
        s, U, V = _dense_spectrum(dense, k, center)
        return s, (U if left else None), V
    mu = F.column_mean() if center else jnp.zeros(N, F.dtype)
    apply = F.centred_gram(mu)
    block = min(block or k + 10, N)
    evals, vecs = _block_krylov(
        lambda Vs: apply(Vs[0])[None], N, key, F.dtype, problems=1, block=block, iters=iters
    )
    s, V = jnp.sqrt(jnp.maximum(evals[0, :k], 0.0)), vecs[0, :, :k]
    return s, (F.left_vectors(mu, V, s) if left else None), V


def hermite_features(X: ArrayLike, direction: ArrayLike, degree: int = 8) -> Array:
    """He_1..He_degree of X̃ u for the unit direction u = direction/|direction| (normalised h_k),
    shape (n, degree): the candidate left singular vectors of the spikes (MATH §4.2)."""
    u = jnp.asarray(direction)
    # a JAX argument gives JAX polynomials (hermite_polynomials keeps the array type)
    return hermite_polynomials(X @ (u / jnp.linalg.norm(u)), degree)[:, 1:]  # pyright: ignore[reportReturnType]


EXPANSION_BASES = ("hermite", "monomial")


def spike_expansion(
    X: Float[ArrayLike, "rows dim"],
    step,
    activation: str | _act.Activation,
    terms: int,
    *,
    basis: str = "hermite",
) -> Float[Array, "rows width"]:
    """F₀ plus the first `terms` spike terms of one gradient step (MATH §4.2, §4.5 [R]):

    F_ℓ = σ(XW₀ᵀ) + Σ_{k=1}^{ℓ} (μ'_k/k!) He_k(Xζ̂) (δ^{∘k})ᵀ,  δ_i = (w₁,ᵢ − w₀,ᵢ)·ζ̂,

    with μ'_k = E σ^{(k)}(z) = √(k!) c_k (`jaxfeat.hermite_coefficients`), so that the k-th term
    is c_k h_k(Xζ̂)(δ^{∘k})ᵀ. Moniri et al. (arXiv 2310.07891, Theorems 4.1–4.2) state that the
    ridge readout's errors on F₁ = σ(XW₁ᵀ) equal those on F_ℓ(α) in the proportional limit. The
    rows X may be the readout sample or test points: they get the same W₀, ζ̂ and δ, so a
    test tile's features are `spike_expansion(X_tile, ...)` (one tile at a time).

    **Arguments:**

    - `X`: inputs (rows, dim).
    - `step`: a `jaxfeat.one_step` result (its `W0`, `W1` (width, dim), `a`, `zeta` (dim,)).
    - `activation`: the step's activation; its Hermite coefficients at |w| = 1 are used (the
      rows of W₀ are unit vectors under the default `scheme="sphere"`). Activations with their
      first Hermite order removed (σ≥2) have per-neuron coefficients and are refused.
    - `terms`: ℓ ≥ 0 (0 gives F₀).
    - `basis`: `"hermite"` (He_k(Xζ̂), MATH §4.2) or `"monomial"` ((Xζ̂)^k/k!·μ'_k, the
      Taylor terms before their Hermite re-expansion: the paper writes its spikes with
      monomial left vectors).

    **Returns:** the features (rows, width), F₀'s part exactly `activation.layer(X, W₀)` (as
    `TwoLayer.features`); padding neurons (zero rows of W₀ and W₁) get σ(0) there.
    """
    act = _act.get(activation)
    terms = _checks.check_nonneg_int("terms", terms)
    if basis not in EXPANSION_BASES:
        raise InputError(f"basis must be one of {EXPANSION_BASES}, got {basis!r}")
    if 1 in act.removed:
        raise InputError(
            f"spike_expansion: {act.name} has its first Hermite order removed, so its "
            "coefficients depend on each neuron's |w| (MATH §4.5): not supported"
        )
    X = jnp.asarray(X)
    W0, W1, zeta = (jnp.asarray(v, X.dtype) for v in (step.W0, step.W1, step.zeta))
    u = zeta / jnp.linalg.norm(zeta)
    F0 = act.layer(X, W0)
    if terms == 0:
        return F0
    c = np.asarray(act.hermite_coefficients(terms, 1.0, "auto"), np.float64)
    s = X @ u
    k = np.arange(1, terms + 1)
    if basis == "hermite":
        left = hermite_polynomials(s, terms)[:, 1:] * jnp.asarray(c[1:], X.dtype)[None, :]
    else:  # μ'_k s^k / k! = c_k s^k / √(k!)
        scale = c[1:] / np.sqrt(np.cumprod(k.astype(np.float64)))
        left = s[:, None] ** jnp.asarray(k, X.dtype)[None, :] * jnp.asarray(scale, X.dtype)[None, :]
    delta = (W1 - W0) @ u
    return F0 + left @ (delta[None, :] ** jnp.asarray(k, X.dtype)[:, None])


def spike_statistics(s, V, HtFc, HtH, deflated_edge, *, margin: float = 1.02) -> dict:
    """Spike count and alignments from the top singular triplets (MATH §4.3, steps 3–4).

    - `n_outliers`: #{s_i > margin · deflated edge};
    - `n_aligned`: top singular vectors with more than half their mass in span(H);
    - `capture[j]`: ‖P_U ĥ_j‖², how much of the normalised feature h_j lies in the outlier
      subspace U. With U = F_c V/s all of it follows from HᵀF_c: Uᵀh_j = S⁻¹Vᵀ(F_cᵀh_j).
    """
    s = jnp.asarray(s)
    L = jnp.linalg.cholesky(HtH)  # span(H) = span(Q), Q = H L⁻ᵀ orthonormal
    safe = jnp.where(s > 0, s, 1.0)
    UtH = (V.T @ HtFc.T) / safe[:, None]  # (k, J): u_iᵀ h_j
    mass_in_H = jnp.sum(jax.scipy.linalg.solve_triangular(L, UtH.T, lower=True) ** 2, axis=0)
    outlier = s > margin * deflated_edge
    UtH_hat: Array = UtH / jnp.sqrt(jnp.diag(HtH))[None, :]
    capture = jnp.sum(jnp.where(outlier[:, None], UtH_hat**2, 0.0), axis=0)
    return {
        "singular_values": s,
        "deflated_edge": deflated_edge,
        "n_outliers": jnp.sum(outlier),
        "n_aligned": jnp.sum(mass_in_H > 0.5),
        "mass_in_hermite_span": mass_in_H,
        "capture": capture,
    }


def _count_spikes(
    F: ArrayLike | FeatureSource,
    H: ArrayLike | None = None,
    *,
    direction: ArrayLike | None = None,
    degree: int = 8,
    k: int = 10,
    margin: float = 1.02,
    method: str = "auto",
    key: PRNGKeyArray | None = None,
    iters: int = 8,
    gram_eigh=None,
) -> dict:
    """Spikes of the column-centred feature matrix F (ñ, N) above the deflated bulk edge.

    For an array F, `H` (ñ, J) holds the Hermite features to deflate and align with, usually
    `hermite_features(X̃, ζ̂, 8)`; for `LazyFeatures` give the `direction` ζ̂ instead (and
    `degree`). `method` as in `feature_spectrum`; on the krylov path the top-k of F_cᵀF_c and
    the top of the deflated operator F_cᵀF_c − BᵀB (B = L⁻¹HᵀF_c, HᵀH = LLᵀ) share every
    pass. Returns the dict of `spike_statistics` for the top `k` singular values.

    The deflated bulk edge is the top singular value of F_c with span(H) projected out, and a
    spike is a singular value s_i > `margin` × that edge (MATH §4.3, steps 3–4).

    **Arguments:**

    - `F`: an array (ñ, N) or a `FeatureSource` (`LazyFeatures`, `DenseFeatures`).
    - `H`: the Hermite features (ñ, J), required for an array F (or `DenseFeatures`) and
      refused for `LazyFeatures` (`InputError`).
    - `direction`: ζ̂ (d,), required for `LazyFeatures` and refused for an array F (or
      `DenseFeatures`); it is normalised, and He_1..He_degree(X̃ζ̂) are built tile by tile.
    - `degree`: the number J of Hermite features built from `direction` (default 8; unused
      with `H`).
    - `k`: the number of top singular values, 1 ≤ k ≤ min(ñ, N) (default 10).
    - `margin`: the factor on the deflated edge, ≥ 0 (default 1.02).
    - `method`: `"auto"` (default: dense for arrays, krylov for `LazyFeatures`), `"dense"`
      (two `eigh`s of N×N matrices; materialises a `LazyFeatures`) or `"krylov"`.
    - `key`: the PRNG key of the Krylov start block, required for `"krylov"`.
    - `iters`: Krylov blocks (default 8).
    - `gram_eigh`: the eigendecomposition (e, V) of F_cᵀF_c (`centred_gram_eigh(F)`) when the
      caller already has it, e.g. for a ridge path on the same features
      (`jaxfeat.ridge.ridge_path(gram_eigh=…)`): the dense path then does one `eigh` (of the
      deflated Gram matrix), not two. Dense path only.

    **Returns:** a dict of arrays: `singular_values` (k,) in decreasing order,
    `deflated_edge` (scalar), `n_outliers` (the number of s_i above `margin` × the edge),
    `n_aligned` (top-k singular vectors with more than half their mass in span(H)),
    `mass_in_hermite_span` (k,), and `capture` (J,): ‖P_U ĥ_j‖² for the outlier subspace U.
    """
    F = as_features(F)
    n, N = F.shape
    H, direction, degree = F.hermite_input(H, direction, degree)
    k = _check_k(k, n, N)
    margin = _checks.check_nonneg_float("margin", margin)
    method = _check_method(method, F, key, iters)
    if gram_eigh is not None and method != "dense":
        raise InputError("gram_eigh is for the dense path (method='dense' or an array F)")
    if method == "dense":
        F, H = F.densify(H, direction, degree)
    mu, HtFc, HtH = F.hermite_stats(H, direction, degree)
    B = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(HtH), HtFc, lower=True)
    if method == "dense":  # F is dense here (densified above)
        eig = _checks.check_gram_eigh(gram_eigh, N, F.dtype)
        s, V, edge = _dense_spikes(F, mu, B, k=k, eig=eig)  # pyright: ignore[reportArgumentType]
    else:
        s, V, edge = _krylov_spikes(F, mu, B, k=k, key=key, iters=iters)
    return spike_statistics(s, V, HtFc, HtH, edge, margin=margin)


# module level: a second eager call with the same shapes compiles nothing (the Krylov path's
# `lax.scan` would otherwise recompile its fresh body); arrays traced, the rest static
def _module_jit(fn):
    jitted = eqx.filter_jit(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return jitted(*args, **kwargs)

    return call


feature_spectrum = _module_jit(_feature_spectrum)
count_spikes = _module_jit(_count_spikes)


def centred_gram_eigh(F: ArrayLike | DenseFeatures) -> tuple[Array, Array]:
    """The eigendecomposition (e, V), ascending, of F_cᵀF_c, F_c the column-centred live rows
    of F (N×N: `eigh`): what `count_spikes` and `jaxfeat.ridge.ridge_path` (with an intercept
    and unit feature scale) would each compute, shared through their `gram_eigh=`."""
    dense = as_features(F)
    if not isinstance(dense, DenseFeatures):
        raise InputError("centred_gram_eigh needs an array F or DenseFeatures")
    Fc = dense.centred(dense.column_mean())
    return jnp.linalg.eigh(Fc.T @ Fc)


def _dense_spikes(F: DenseFeatures, mu, B, *, k, eig=None):
    """Top-k of F_cᵀF_c and the deflated edge, by two `eigh`s of N×N matrices (one when `eig`,
    F_cᵀF_c's, is given)."""
    Fc = F.centred(mu)
    gram = Fc.T @ Fc
    evals, vecs = jnp.linalg.eigh(gram) if eig is None else eig
    s, V = _top(evals, vecs, k)
    top = jnp.linalg.eigvalsh(gram - B.T @ B)[-1]  # (P^⊥F_c)ᵀ(P^⊥F_c) = F_cᵀF_c − BᵀB
    return s, V, jnp.sqrt(jnp.maximum(top, 0.0))


def _krylov_spikes(F: FeatureSource, mu, B, *, k, key, iters):
    """Top-k of F_cᵀF_c and the top of the deflated operator F_cᵀF_c − BᵀB, iterated in
    lockstep so that every pass over F serves both (problem 0 and problem 1)."""
    N = F.shape[1]
    gram = F.centred_gram(mu)

    def apply(Vs):
        b = Vs.shape[2]
        G = gram(jnp.concatenate([Vs[0], Vs[1]], axis=1))
        return jnp.stack([G[:, :b], G[:, b:] - B.T @ (B @ Vs[1])])

    block = min(k + 10, N)
    evals, vecs = _block_krylov(apply, N, key, B.dtype, problems=2, block=block, iters=iters)
    s = jnp.sqrt(jnp.maximum(evals[0, :k], 0.0))
    return s, vecs[0, :, :k], jnp.sqrt(jnp.maximum(evals[1, 0], 0.0))
