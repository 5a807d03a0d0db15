"""Top singular values of (batches of) feature matrices and the spikes among them (MATH §4.3).

Two paths behind `feature_spectrum`-style functions:

- **dense**: the column-centred Gram matrix F_cᵀF_c (N×N) or F_cF_cᵀ (ñ×ñ), whichever is
  smaller, and one `eigh`;
- **matrix-free** (`streaming_spectrum`): block Krylov on v ↦ F_cᵀF_c v, streaming X̃ in row
  tiles and recomputing σ(X̃_tile Wᵀ) on the fly: memory O(tile·N + N·k), independent of ñ.

`count_spikes` counts singular values above the *deflated* bulk edge: the top singular value of
F_c with the Hermite features He_1..He_J(X̃ζ̂) projected out, times a margin (MATH §4.3 step 3).
Everything it needs (the Gram operator, HᵀF_c, HᵀH) is available on both paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, activations as _act
from ._checks import InputError
from ._quadrature import hermite_polynomials

__all__ = [
    "feature_spectrum",
    "streaming_spectrum",
    "hermite_features",
    "count_spikes",
    "spike_statistics",
    "streaming_spike_statistics",
]


def _center(F):
    return F - jnp.mean(F, axis=0, keepdims=True)


def _check_k(k, n, N):
    k = _checks.check_positive_int("k", k)
    if k > min(n, N):
        raise InputError(f"k must be <= min(n, N) = {min(n, N)} for F of shape {(n, N)}, got {k}")
    return k


def feature_spectrum(
    F: ArrayLike, k: int, *, center: bool = True
) -> tuple[Float[Array, " k"], Float[Array, "n k"], Float[Array, "N k"]]:
    """Top-k singular values s and left/right singular vectors U, V of F_c (column-centred F).

    Dense path: `eigh` of the smaller Gram matrix; the other side's vectors are F_c V/s or
    F_cᵀU/s. Singular values are returned in decreasing order. `vmap` it over a batch.
    """
    n, N = _checks.check_ndim("F", F, 2, "(n, N)")
    k = _check_k(k, n, N)
    F = jnp.asarray(F)
    Fc = _center(F) if center else F
    if N <= n:
        evals, V = jnp.linalg.eigh(Fc.T @ Fc)
        V = V[:, ::-1][:, :k]
        s = jnp.sqrt(jnp.maximum(evals[::-1][:k], 0.0))
        return s, (Fc @ V) / jnp.where(s > 0, s, 1.0)[None, :], V
    evals, U = jnp.linalg.eigh(Fc @ Fc.T)
    U = U[:, ::-1][:, :k]
    s = jnp.sqrt(jnp.maximum(evals[::-1][:k], 0.0))
    return s, U, (Fc.T @ U) / jnp.where(s > 0, s, 1.0)[None, :]


def hermite_features(X: ArrayLike, direction: ArrayLike, degree: int = 8) -> Array:
    """He_1..He_degree of X̃ u for the unit direction u = direction/|direction| (normalised h_k),
    shape (n, degree): the candidate left singular vectors of the spikes (MATH §4.2)."""
    u = jnp.asarray(direction)
    return hermite_polynomials(X @ (u / jnp.linalg.norm(u)), degree)[:, 1:]


def _gram_stats(Fc, H):
    """Ingredients of the spike statistics: the Gram matrix, HᵀF_c and HᵀH."""
    return Fc.T @ Fc, H.T @ Fc, H.T @ H


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


def _deflated_gram(gram, HtFc, HtH):
    """(P^⊥F_c)ᵀ(P^⊥F_c) = F_cᵀF_c − BᵀB with B = L⁻¹HᵀF_c (HᵀH = LLᵀ)."""
    B = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(HtH), HtFc, lower=True)
    return gram - B.T @ B


def count_spikes(F: ArrayLike, H: ArrayLike, *, k: int = 10, margin: float = 1.02) -> dict:
    """Spikes of the column-centred feature matrix F (ñ, N) above the deflated bulk edge.

    `H` (ñ, J) holds the Hermite features to deflate and align with, usually
    `hermite_features(X̃, ζ̂, 8)`. Dense path (one N×N Gram matrix). Returns the dict of
    `spike_statistics` for the top `k` singular values.
    """
    n, N = _checks.check_ndim("F", F, 2, "(n, N)")
    _checks.check_ndim("H", H, 2, "(n, J)")
    if np.shape(H)[0] != n:
        raise InputError(f"H must have shape (n, J) with n = {n} rows like F, got {np.shape(H)}")
    k = _check_k(k, n, N)
    margin = _checks.check_nonneg_float("margin", margin)
    gram, HtFc, HtH = _gram_stats(_center(jnp.asarray(F)), jnp.asarray(H))
    evals, V = jnp.linalg.eigh(gram)
    s = jnp.sqrt(jnp.maximum(evals[::-1][:k], 0.0))
    edge = jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(_deflated_gram(gram, HtFc, HtH))[-1], 0.0))
    return spike_statistics(s, V[:, ::-1][:, :k], HtFc, HtH, edge, margin=margin)


# ---------------------------------------------------------------------------------------------
# Matrix-free path
# ---------------------------------------------------------------------------------------------


def _tiles(X, tile):
    n, d = X.shape
    n_tiles = -(-n // tile)
    pad = n_tiles * tile - n
    Xp = jnp.concatenate([X, jnp.zeros((pad, d), X.dtype)]) if pad else X
    valid = (jnp.arange(n_tiles * tile) < n).reshape(n_tiles, tile)
    return Xp.reshape(n_tiles, tile, d), valid


def _streamed(X, W, act, tile, fn, init):
    """Σ over row tiles of fn(F_tile, X_tile, valid) with F_tile = σ(X_tile Wᵀ), rows past ñ
    masked to 0; tiles are visited by `lax.scan`, so memory is one tile's features."""
    Xt, valid = _tiles(X, tile)
    norms = jnp.sqrt(jnp.sum(W**2, axis=1))
    norm = norms[None, :] if act.removed and act.homogeneous else 1.0

    def body(acc, xv):
        x, v = xv
        F = jnp.where(v[:, None], act.neuron(x @ W.T, norm), 0.0)
        return jax.tree_util.tree_map(jnp.add, acc, fn(F, x, v)), None

    return jax.lax.scan(body, init, (Xt, valid))[0]


def _centred_gram_matvec(X, W, act, tile, mu):
    """v ↦ F_cᵀF_c v = FᵀF v − ñ μ(μᵀv), streaming X in tiles (μ: the column means of F)."""
    n = X.shape[0]

    def matvec(Vb):
        FtFV = _streamed(X, W, act, tile, lambda F, x, v: F.T @ (F @ Vb), jnp.zeros_like(Vb))
        return FtFV - n * mu[:, None] * (mu @ Vb)[None, :]

    return matvec


def _block_krylov(matvec, N, k, key, dtype, block, iters):
    """Top-k eigenpairs of a PSD operator by block Krylov with full reorthogonalisation and a
    final Rayleigh–Ritz step (Musco & Musco 2015)."""
    Q = jnp.linalg.qr(jax.random.normal(key, (N, block), dtype))[0]
    basis, AQ = [Q], [matvec(Q)]
    for _ in range(min(iters, N // block) - 1):  # the basis may not outgrow the space
        Z = AQ[-1]
        for _ in range(2):  # two Gram–Schmidt passes against the whole basis
            B = jnp.concatenate(basis, axis=1)
            Z = Z - B @ (B.T @ Z)
        Q = jnp.linalg.qr(Z)[0]
        basis.append(Q)
        AQ.append(matvec(Q))
    B, AB = jnp.concatenate(basis, axis=1), jnp.concatenate(AQ, axis=1)
    evals, Y = jnp.linalg.eigh((B.T @ AB + AB.T @ B) / 2)
    return evals[::-1][:k], (B @ Y)[:, ::-1][:, :k]


def streaming_spectrum(
    X: ArrayLike,
    W: ArrayLike,
    activation,
    k: int,
    *,
    key: PRNGKeyArray,
    tile: int = 2048,
    block: int | None = None,
    iters: int = 8,
) -> tuple[Float[Array, " k"], Float[Array, "N k"]]:
    """Top-k singular values and right vectors of F_c = centred σ(X Wᵀ), never forming F.

    Each operator application streams X in row tiles: F_cᵀF_c v = FᵀF v − ñ μ(μᵀv), μ the column
    means (one extra streaming pass). Memory O(tile·N + N·block·iters). Increase `iters` (or
    `block`, default k + 10) when singular values inside the bulk must converge too; the
    outliers converge in a few iterations.
    """
    n, d = _checks.check_ndim("X", X, 2, "(n, d)")
    N = _checks.check_ndim("W", W, 2, "(N, d)")[0]
    if np.shape(W)[1] != d:
        raise InputError(f"W must have shape (N, d) = (N, {d}) to match X, got {np.shape(W)}")
    k = _check_k(k, n, N)
    tile = _checks.check_positive_int("tile", tile)
    iters = _checks.check_positive_int("iters", iters)
    act = _act.get(activation)
    X, W = jnp.asarray(X), jnp.asarray(W)
    block = block or k + 10
    mu = _streamed(X, W, act, min(tile, n), lambda F, x, v: jnp.sum(F, 0), jnp.zeros(N, W.dtype))
    matvec = _centred_gram_matvec(X, W, act, min(tile, n), mu / n)
    evals, V = _block_krylov(matvec, N, k, key, W.dtype, min(block, N), iters)
    return jnp.sqrt(jnp.maximum(evals, 0.0)), V


def streaming_spike_statistics(
    X: ArrayLike,
    W: ArrayLike,
    activation,
    direction: ArrayLike,
    *,
    key: PRNGKeyArray,
    k: int = 10,
    degree: int = 8,
    margin: float = 1.02,
    tile: int = 2048,
    iters: int = 8,
) -> dict:
    """`count_spikes` for F = σ(X Wᵀ) with H = He_1..He_degree(X û), all matrix-free: HᵀF_c and
    HᵀH are accumulated over the same row tiles, the deflated edge is the top eigenvalue of
    the operator F_cᵀF_c − BᵀB (B = L⁻¹HᵀF_c)."""
    n = _checks.check_ndim("X", X, 2, "(n, d)")[0]
    s, V = streaming_spectrum(X, W, activation, k, key=key, tile=tile, iters=iters)
    act = _act.get(activation)
    X, W, u = jnp.asarray(X), jnp.asarray(W), jnp.asarray(direction)
    u = u / jnp.linalg.norm(u)

    def stats(F, x, v):
        H = jnp.where(v[:, None], hermite_polynomials(x @ u, degree)[:, 1:], 0.0)
        return H.T @ F, H.T @ H, jnp.sum(F, 0), jnp.sum(H, 0)

    N, J = W.shape[0], degree
    zeros = (
        jnp.zeros((J, N), W.dtype),
        jnp.zeros((J, J), W.dtype),
        jnp.zeros(N, W.dtype),
        jnp.zeros(J, W.dtype),
    )
    HtF, HtH, Fsum, Hsum = _streamed(X, W, act, min(tile, n), stats, zeros)
    mu = Fsum / n
    HtFc = HtF - Hsum[:, None] * mu[None, :]
    B = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(HtH), HtFc, lower=True)

    gram_matvec = _centred_gram_matvec(X, W, act, min(tile, n), mu)

    def deflated(Vb):
        return gram_matvec(Vb) - B.T @ (B @ Vb)

    evals, _ = _block_krylov(
        deflated, N, 1, jax.random.fold_in(key, 1), W.dtype, min(k + 10, N), iters
    )
    top = evals[0]
    return spike_statistics(s, V, HtFc, HtH, jnp.sqrt(jnp.maximum(top, 0.0)), margin=margin)
