"""Top singular values of feature matrices and the spikes among them (MATH §4.3).

`feature_spectrum` and `count_spikes` take either an array F (ñ, N) or a `LazyFeatures`
F = σ(X̃Wᵀ) that is never formed, and run one of two paths:

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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, activations as _act
from ._checks import InputError
from ._quadrature import hermite_polynomials
from .rows import Rows, as_rows, fold_rows, map_rows, materialize

__all__ = [
    "LazyFeatures",
    "feature_spectrum",
    "hermite_features",
    "count_spikes",
    "spike_statistics",
]


class LazyFeatures(eqx.Module):
    """The feature matrix F = σ(X̃Wᵀ) (ñ, N) of a bias-free layer, held as its ingredients.

    `X` is an array (ñ, d) or a `jaxfeat.rows.Rows` (e.g. `SampledRows`, which draws X̃ tile
    by tile and never stores it); `W` is (N, d). Kernels only visit F a row tile at a time.
    """

    rows: Rows
    W: Float[Array, "N d"]
    activation: _act.Activation = eqx.field(static=True)

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

    def tile_features(self, X, valid):
        """σ(X_t Wᵀ) for one row tile, padding rows set to 0."""
        F = self.activation.layer(X.astype(self.W.dtype), self.W)
        return jnp.where(valid[:, None], F, 0.0)

    def fold(self, fn, init):
        """Σ over row tiles t of fn(F_t, X_t, valid_t)."""
        return fold_rows(self.rows, lambda X, y, v: fn(self.tile_features(X, v), X, v), init)

    def materialize(self) -> Float[Array, "n N"]:
        """F itself (the reference for tests, and the dense path)."""
        return map_rows(self.rows, lambda X, y, v: self.tile_features(X, v))


def _shape(F) -> tuple[int, int]:
    if isinstance(F, LazyFeatures):
        return F.shape
    return _checks.check_ndim("F", F, 2, "(n, N)")


def _check_k(k, n, N):
    k = _checks.check_positive_int("k", k)
    if k > min(n, N):
        raise InputError(f"k must be <= min(n, N) = {min(n, N)} for F of shape {(n, N)}, got {k}")
    return k


def _check_method(method, F, key, iters):
    if method not in ("auto", "dense", "krylov"):
        raise InputError(f"method must be 'auto', 'dense' or 'krylov', got {method!r}")
    if method == "auto":
        method = "krylov" if isinstance(F, LazyFeatures) else "dense"
    if method == "krylov":
        if key is None:
            raise InputError("key is required for method='krylov' (the random start block)")
        _checks.check_key(key)
        _checks.check_positive_int("iters", iters)
    return method


def _column_mean(F):
    if isinstance(F, LazyFeatures):
        total = F.fold(lambda Ft, X, v: jnp.sum(Ft, 0), jnp.zeros(F.shape[1], F.W.dtype))
        return total / F.shape[0]
    return jnp.mean(F, axis=0)


def _gram_apply(F, mu):
    """V ↦ F_cᵀF_c V with F_c = F − 1μᵀ; for `LazyFeatures` FᵀFV − ñμ(μᵀV), one streamed pass."""
    if isinstance(F, LazyFeatures):
        n = F.shape[0]

        def apply(V):
            FtFV = F.fold(lambda Ft, X, v: Ft.T @ (Ft @ V), jnp.zeros_like(V))
            return FtFV - n * mu[:, None] * (mu @ V)[None, :]

        return apply
    Fc = F - mu[None, :]
    return lambda V: Fc.T @ (Fc @ V)


def _left_vectors(F, mu, V, s):
    """U = F_c V / s (one streamed pass for `LazyFeatures`; U is (ñ, k))."""
    safe = jnp.where(s > 0, s, 1.0)[None, :]
    if isinstance(F, LazyFeatures):
        return map_rows(F.rows, lambda X, y, v: (F.tile_features(X, v) - mu[None, :]) @ V / safe)
    return (F - mu[None, :]) @ V / safe


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


def _top(evals, vecs, k):
    """The k largest eigenpairs of an ascending `eigh`, as singular values √λ (decreasing)."""
    return jnp.sqrt(jnp.maximum(evals[::-1][:k], 0.0)), vecs[:, ::-1][:, :k]


def _dense_spectrum(F, k, center):
    """`eigh` of the smaller Gram matrix; the other side's vectors are F_c V/s or F_cᵀU/s."""
    n, N = F.shape
    Fc = F - jnp.mean(F, axis=0, keepdims=True) if center else F
    right = N <= n
    s, Y = _top(*jnp.linalg.eigh(Fc.T @ Fc if right else Fc @ Fc.T), k)
    other = (Fc @ Y if right else Fc.T @ Y) / jnp.where(s > 0, s, 1.0)[None, :]
    return (s, other, Y) if right else (s, Y, other)


def feature_spectrum(
    F: ArrayLike | LazyFeatures,
    k: int,
    *,
    center: bool = True,
    method: str = "auto",
    key: PRNGKeyArray | None = None,
    iters: int = 8,
    block: int | None = None,
    left: bool = True,
) -> tuple[Float[Array, " k"], Float[Array, "n k"] | None, Float[Array, "N k"]]:
    """Top-k singular values s (decreasing) and left/right singular vectors U, V of F_c, the
    column-centred F (`center=False`: F itself).

    **Arguments:** `F` an array (ñ, N) or a `LazyFeatures`; `method` `"dense"` (Gram matrix and
    `eigh`; materialises a `LazyFeatures`), `"krylov"` (matrix-free block Krylov, needs `key`;
    `iters` blocks of `block` = k + 10 vectors) or `"auto"` (dense for arrays, krylov for
    `LazyFeatures`); `left=False` skips U (returned as None), which for `LazyFeatures` saves a
    pass and O(ñk) memory. The separated outliers converge in a few Krylov iterations; raise
    `iters` when values inside the bulk must converge too. `vmap` it over a batch.
    """
    n, N = _shape(F)
    k = _check_k(k, n, N)
    method = _check_method(method, F, key, iters)
    if not isinstance(F, LazyFeatures):
        F = jnp.asarray(F)
    if method == "dense":
        s, U, V = _dense_spectrum(F.materialize() if isinstance(F, LazyFeatures) else F, k, center)
        return s, (U if left else None), V
    dtype = F.W.dtype if isinstance(F, LazyFeatures) else F.dtype
    mu = _column_mean(F) if center else jnp.zeros(N, dtype)
    apply = _gram_apply(F, mu)
    block = min(block or k + 10, N)
    evals, vecs = _block_krylov(
        lambda Vs: apply(Vs[0])[None], N, key, dtype, problems=1, block=block, iters=iters
    )
    s, V = jnp.sqrt(jnp.maximum(evals[0, :k], 0.0)), vecs[0, :, :k]
    return s, (_left_vectors(F, mu, V, s) if left else None), V


def hermite_features(X: ArrayLike, direction: ArrayLike, degree: int = 8) -> Array:
    """He_1..He_degree of X̃ u for the unit direction u = direction/|direction| (normalised h_k),
    shape (n, degree): the candidate left singular vectors of the spikes (MATH §4.2)."""
    u = jnp.asarray(direction)
    return hermite_polynomials(X @ (u / jnp.linalg.norm(u)), degree)[:, 1:]


def spike_statistics(s, V, HtFc, HtH, deflated_edge, *, margin: float = 1.02) -> dict:
    """Spike count and alignments from the top singular triplets (MATH §4.3, steps 3–4).

    - `n_outliers`: #{s_i > margin · deflated edge};
    - `n_aligned`: top singular vectors with more than half their mass in span(H);
    - `capture[j]`: ‖P_U ĥ_j‖², how much of the normalised feature h_j lies in the outlier
      subspace U. With U = F_c V/s all of it follows from HᵀF_c: Uᵀh_j = S⁻¹Vᵀ(F_cᵀh_j).
    """
    L = jnp.linalg.cholesky(HtH)  # span(H) = span(Q), Q = H L⁻ᵀ orthonormal
    safe = jnp.where(s > 0, s, 1.0)
    UtH = (V.T @ HtFc.T) / safe[:, None]  # (k, J): u_iᵀ h_j
    mass_in_H = jnp.sum(jax.scipy.linalg.solve_triangular(L, UtH.T, lower=True) ** 2, axis=0)
    outlier = s > margin * deflated_edge
    UtH_hat = UtH / jnp.sqrt(jnp.diag(HtH))[None, :]
    capture = jnp.sum(jnp.where(outlier[:, None], UtH_hat**2, 0.0), axis=0)
    return {
        "singular_values": s,
        "deflated_edge": deflated_edge,
        "n_outliers": jnp.sum(outlier),
        "n_aligned": jnp.sum(mass_in_H > 0.5),
        "mass_in_hermite_span": mass_in_H,
        "capture": capture,
    }


def _hermite_stats(F, H, direction, degree):
    """Column means μ, HᵀF_c and HᵀH; for `LazyFeatures` accumulated in one streamed pass with
    H = He_1..He_degree(X̃ û) built tile by tile."""
    if not isinstance(F, LazyFeatures):
        mu = jnp.mean(F, axis=0)
        return mu, H.T @ (F - mu[None, :]), H.T @ H
    u = direction / jnp.linalg.norm(direction)
    N, dt = F.shape[1], F.W.dtype

    def stats(Ft, X, v):
        Ht = jnp.where(v[:, None], hermite_polynomials(X.astype(dt) @ u, degree)[:, 1:], 0.0)
        return Ht.T @ Ft, Ht.T @ Ht, jnp.sum(Ft, 0), jnp.sum(Ht, 0)

    init = (jnp.zeros((degree, N), dt), jnp.zeros((degree, degree), dt))
    HtF, HtH, Fsum, Hsum = F.fold(stats, init + (jnp.zeros(N, dt), jnp.zeros(degree, dt)))
    mu = Fsum / F.shape[0]
    return mu, HtF - Hsum[:, None] * mu[None, :], HtH


def _check_hermite_input(F, H, direction, degree):
    n = _shape(F)[0]
    if isinstance(F, LazyFeatures):
        if H is not None or direction is None:
            raise InputError(
                "for LazyFeatures give direction= (He_1..He_degree(X̃û) are built tile by tile), "
                "not H"
            )
        _checks.check_shape("direction", direction, (F.rows.dim,), f"(d,) = ({F.rows.dim},)")
        return None, jnp.asarray(direction, F.W.dtype), _checks.check_positive_int("degree", degree)
    if H is None or direction is not None:
        raise InputError(
            "for an array F give H = hermite_features(X̃, ζ̂, degree) (n, J); direction= needs "
            "LazyFeatures"
        )
    _checks.check_ndim("H", H, 2, "(n, J)")
    if np.shape(H)[0] != n:
        raise InputError(f"H must have shape (n, J) with n = {n} rows like F, got {np.shape(H)}")
    return jnp.asarray(H), None, degree


def count_spikes(
    F: ArrayLike | LazyFeatures,
    H: ArrayLike | None = None,
    *,
    direction: ArrayLike | None = None,
    degree: int = 8,
    k: int = 10,
    margin: float = 1.02,
    method: str = "auto",
    key: PRNGKeyArray | None = None,
    iters: int = 8,
) -> dict:
    """Spikes of the column-centred feature matrix F (ñ, N) above the deflated bulk edge.

    For an array F, `H` (ñ, J) holds the Hermite features to deflate and align with, usually
    `hermite_features(X̃, ζ̂, 8)`; for `LazyFeatures` give the `direction` ζ̂ instead (and
    `degree`). `method` as in `feature_spectrum`; on the krylov path the top-k of F_cᵀF_c and
    the top of the deflated operator F_cᵀF_c − BᵀB (B = L⁻¹HᵀF_c, HᵀH = LLᵀ) share every
    pass. Returns the dict of `spike_statistics` for the top `k` singular values.
    """
    n, N = _shape(F)
    H, direction, degree = _check_hermite_input(F, H, direction, degree)
    k = _check_k(k, n, N)
    margin = _checks.check_nonneg_float("margin", margin)
    method = _check_method(method, F, key, iters)
    if isinstance(F, LazyFeatures) and method == "dense":
        H = hermite_features(materialize(F.rows)[0].astype(F.W.dtype), direction, degree)
        F = F.materialize()
    if not isinstance(F, LazyFeatures):
        F = jnp.asarray(F)
    mu, HtFc, HtH = _hermite_stats(F, H, direction, degree)
    B = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(HtH), HtFc, lower=True)
    if method == "dense":
        Fc = F - mu[None, :]
        gram = Fc.T @ Fc
        s, V = _top(*jnp.linalg.eigh(gram), k)
        top = jnp.linalg.eigvalsh(gram - B.T @ B)[-1]  # (P^⊥F_c)ᵀ(P^⊥F_c) = F_cᵀF_c − BᵀB
        return spike_statistics(s, V, HtFc, HtH, jnp.sqrt(jnp.maximum(top, 0.0)), margin=margin)
    gram = _gram_apply(F, mu)

    def apply(Vs):  # problem 0: F_cᵀF_c; problem 1: the deflated operator; one pass for both
        b = Vs.shape[2]
        G = gram(jnp.concatenate([Vs[0], Vs[1]], axis=1))
        return jnp.stack([G[:, :b], G[:, b:] - B.T @ (B @ Vs[1])])

    block = min(k + 10, N)
    evals, vecs = _block_krylov(apply, N, key, B.dtype, problems=2, block=block, iters=iters)
    s = jnp.sqrt(jnp.maximum(evals[0, :k], 0.0))
    edge = jnp.sqrt(jnp.maximum(evals[1, 0], 0.0))
    return spike_statistics(s, vecs[0, :, :k], HtFc, HtH, edge, margin=margin)
