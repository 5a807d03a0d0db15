"""Fixed-feature baselines for two-layer ReLU networks with biases: the NNGP and NTK kernels of
the network at its initialisation, in closed form, and kernel ridge regression with the ridge
chosen by exact leave-one-out (Shi, Wei, Liang, arXiv 2310.12408, §4: what fixed features can do).

For f(x) = Σ_i a_i relu(w_i·x − b_i) with w_i ~ N(0, σ_w² I/d), b_i ~ N(0, σ_b²), a_i ~ N(0, σ_a²),
the pre-activation u = w·x − b is Gaussian with Cov(u, u') = x̃·x̃', x̃ = (σ_w x/√d, σ_b). With θ
the angle between x̃ and x̃' (the arc-cosine kernels of Cho & Saul, orders 1 and 0):

- E[relu(u) relu(u')] = |x̃||x̃'| (sin θ + (π − θ) cos θ) / (2π),
- E[1{u > 0} 1{u' > 0}] = (π − θ) / (2π).

Per neuron (divide out the width), the NNGP is E[relu(u)relu(u')] and the NTK of the parameters
(W, b, a) as the network stores them is Σ_θ E[∂_θ f(x) ∂_θ f(x')] =
E[relu(u)relu(u')] + σ_a² (x·x' + 1) E[1{u>0}1{u'>0}] (the a-, the w- and the b-gradients).
No neural-tangents dependency: these are its `stax.Dense`+`Relu` kernels for one hidden layer.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from . import _sized
from ._arcsine import acos

__all__ = ["relu_nngp", "relu_ntk", "kernel_ridge", "feature_ridge", "RIDGES"]

# ridges relative to the mean eigenvalue tr(K)/n, chosen per fit by leave-one-out
RIDGES = tuple(10.0**e for e in range(-5, 2))


def _augment(X, w_std, b_std):
    X = jnp.asarray(X)
    scale = jnp.asarray(w_std, X.dtype) / math.sqrt(X.shape[-1])
    bias = jnp.broadcast_to(jnp.asarray(b_std, X.dtype), X.shape[:-1] + (1,))
    return jnp.concatenate([scale * X, bias], axis=-1)


def _arccos_parts(A, B):
    """|Ã_i||B̃_j|, and θ_ij between the augmented inputs, for the two kernels."""
    nA = jnp.sqrt(jnp.sum(A * A, axis=-1))
    nB = jnp.sqrt(jnp.sum(B * B, axis=-1))
    nn = nA[:, None] * nB[None, :]
    cos = (A @ B.T) / jnp.where(nn == 0, 1.0, nn)
    return nn, acos(jnp.clip(cos, -1.0, 1.0))


def relu_nngp(
    X1: Float[ArrayLike, "n1 dim"], X2: Float[ArrayLike, "n2 dim"], w_std=1.0, b_std=0.0
) -> Float[Array, "n1 n2"]:
    """E_{w,b}[relu(w·x − b) relu(w·x' − b)] for w ~ N(0, w_std² I/d), b ~ N(0, b_std²)."""
    A, B = _augment(X1, w_std, b_std), _augment(X2, w_std, b_std)
    nn, theta = _arccos_parts(A, B)
    return nn * (jnp.sin(theta) + (jnp.pi - theta) * jnp.cos(theta)) / (2 * jnp.pi)


def relu_ntk(
    X1: Float[ArrayLike, "n1 dim"],
    X2: Float[ArrayLike, "n2 dim"],
    w_std=1.0,
    b_std=0.0,
    a_std=1.0,
) -> Float[Array, "n1 n2"]:
    """The NTK of one neuron a·relu(w·x − b) in the parameters (w, b, a), averaged over the
    initialisation: NNGP + a_std² (x·x' + 1) (π − θ)/(2π) (module docstring)."""
    A, B = _augment(X1, w_std, b_std), _augment(X2, w_std, b_std)
    nn, theta = _arccos_parts(A, B)
    nngp = nn * (jnp.sin(theta) + (jnp.pi - theta) * jnp.cos(theta)) / (2 * jnp.pi)
    dot = jnp.asarray(X1) @ jnp.asarray(X2).T + 1.0
    return nngp + jnp.asarray(a_std, A.dtype) ** 2 * dot * (jnp.pi - theta) / (2 * jnp.pi)


def kernel_ridge(
    K: Float[ArrayLike, "n n"],
    K_test: Float[ArrayLike, "t n"],
    y: Float[ArrayLike, " n"],
    ridges=RIDGES,
    n=None,
) -> tuple[Float[Array, " t"], Float[Array, ""]]:
    """Kernel ridge regression ŷ(x) = k(x)ᵀ(K + rI)⁻¹y with r = ρ·tr(K)/n, ρ chosen from
    `ridges` by exact leave-one-out squared error, e_i = (y_i − ŷ_i)/(1 − H_ii) with
    H = K(K + rI)⁻¹ (one eigendecomposition serves every ρ).

    `n` (optional, possibly traced): only the first n training points are live, the rest
    padding below a static capacity (`jaxfeat._sized`): their rows and columns of K and
    K_test and their labels are zeroed, which makes K block diagonal, so the live block's
    (K + rI)⁻¹y, H_ii and traces are those of the n points alone.

    **Returns:** `(predictions on the test inputs, the chosen ρ)`.
    """
    K, K_test, y = map(jnp.asarray, (K, K_test, y))
    size = K.shape[0]
    if n is None:
        n = size
    else:
        live = _sized.live_mask(size, n)
        K = _sized.where(live[:, None] & live[None, :], K, 0.0)
        K_test = _sized.where(live[None, :], K_test, 0.0)
        y = _sized.where(live, y, 0.0)
    lam, U = jnp.linalg.eigh(0.5 * (K + K.T))
    lam = jnp.maximum(lam, 0.0)
    rho = jnp.asarray(ridges, K.dtype)
    r = rho[:, None] * (jnp.sum(lam) / n)  # (R, 1)
    Uy = U.T @ y
    shrink = lam[None, :] / (lam[None, :] + r)  # (R, n)
    fit = (shrink * Uy[None, :]) @ U.T  # (R, n) in-sample predictions
    h = shrink @ (U.T**2)  # (R, n): diagonal of H
    best = _loo_choice(y, fit, h, n)
    alpha = U @ (Uy / (lam + r[best]))
    return K_test @ alpha, rho[best]


def feature_ridge(
    phi: Float[ArrayLike, "n p"],
    phi_test: Float[ArrayLike, "t p"],
    y: Float[ArrayLike, " n"],
    ridges=RIDGES,
    n=None,
) -> tuple[Float[Array, " t"], Float[Array, ""]]:
    """`kernel_ridge(φφᵀ, φ_testφᵀ, y, ridges, n)` for the linear kernel of features φ (n, p),
    from the p×p Gram matrix when p < n: with φᵀφ = V diag(λ) Vᵀ and P = φV, K = PPᵀ has the
    nonzero eigenvalues λ and vectors P_m/√λ_m, so the in-sample fit Σ_m P_m P_mᵀy/(λ_m + r),
    the leverages H_ii = Σ_m P_im²/(λ_m + r) and the test predictions
    φ_test(φᵀφ + rI)⁻¹φᵀy need no n×n matrix, and no division by a small λ_m; r = ρ·tr(K)/n
    with tr(K) = |φ|²_F, ρ chosen by the same exact leave-one-out. The random-features
    baseline at width p ≪ n costs p³ instead of n³ (p ≥ n: `kernel_ridge` itself).

    `n` (optional, possibly traced): only the first n rows of φ and y are live.

    **Returns:** `(predictions on the test inputs, the chosen ρ)`.
    """
    phi, phi_test, y = map(jnp.asarray, (phi, phi_test, y))
    rows, p = phi.shape
    if p >= rows:
        return kernel_ridge(phi @ phi.T, phi_test @ phi.T, y, ridges, n)
    phi, y = _sized.mask_rows(phi, n), _sized.mask_rows(y, n)
    count = rows if n is None else n
    lam, V = jnp.linalg.eigh(phi.T @ phi)
    lam = jnp.maximum(lam, 0.0)
    rho = jnp.asarray(ridges, phi.dtype)
    r = rho[:, None] * (jnp.sum(lam) / count)  # (R, 1)
    P = phi @ V  # (rows, p)
    inv = 1.0 / (lam[None, :] + r)  # (R, p)
    Py = P.T @ y
    fit = (inv * Py[None, :]) @ P.T  # (R, rows)
    h = inv @ (P**2).T  # (R, rows): diagonal of H
    best = _loo_choice(y, fit, h, count)
    return phi_test @ (V @ (inv[best] * Py)), rho[best]


def _loo_choice(y, fit, h, n):
    """The index of the ridge with the smallest exact leave-one-out squared error
    Σ_i ((y_i − ŷ_i)/(1 − H_ii))²/n (non-finite values never chosen)."""
    loo: Array = jnp.sum(((y[None, :] - fit) / jnp.maximum(1.0 - h, 1e-12)) ** 2, axis=1) / n
    return jnp.argmin(jnp.where(jnp.isfinite(loo), loo, jnp.inf))
