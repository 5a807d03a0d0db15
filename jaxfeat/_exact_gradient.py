"""Exact population gradients G(w, b) = E[y x 1{w·x > b}] of each family of laws (MATH §3).

Plain functions of arrays, one per family, below `data` in the import graph: each distribution
of `jaxfeat.data` owns its exact G by calling one of them (`Distribution.exact_gradient`), and
`jaxfeat.population` checks the arguments. `active_sum` is the (m, n)(n, d) product behind every
empirical or enumerated G.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._quadrature import gauss_legendre_panels, hermite_polynomials
from .activations import polynomial

PARITY_ENUMERATION_MAX_DIM = 20


def active_sum(
    X: Float[Array, "n dim"], W: Float[Array, "width dim"], b: Float[Array, " width"], V: Array
) -> Float[Array, "width k"]:
    """Σ_j 1{w_i·x_j > b_i} V_j for every neuron i (strict inequality, MATH §0): with V_j = y_j x_j
    the sum behind the empirical G (MATH §6.1), one (m, n)(n, k) product."""
    active = (X @ W.T > b[None, :]).astype(V.dtype)
    return active.T @ V


def _phi(t):
    return jnp.exp(-0.5 * t**2) / math.sqrt(2.0 * math.pi)


def mixture_gradient(means, scales, labels, weights, W, b):
    """G = Σ_j p_j y_j [μ_j Φ̄(t_ij) + s_j ŵ_i φ(t_ij)], t_ij = (b_i/|w_i| − ŵ_i·μ_j)/s_j (§3.1).

    Two matrix products, W Mᵀ (m,d)(d,k) and (m,k)(k,d), and two elementwise passes over W (its
    norms, and the final ŵ term); ŵ is never materialised. w = 0 gives 1{0 > b} Σ_j p_j y_j μ_j.
    """
    norms = jnp.sqrt(jnp.sum(W * W, axis=1))
    zero = norms == 0
    inv = 1.0 / jnp.where(zero, 1.0, norms)
    s = scales[None, :]
    t: Array = ((b * inv)[:, None] - (W @ means.T) * inv[:, None]) / s
    t = jnp.where(zero[:, None], jnp.where(b[:, None] < 0, -jnp.inf, jnp.inf), t)
    py = (weights * labels)[None, :]
    G = (py * jax.scipy.special.ndtr(-t)) @ means
    return G + W * (inv * jnp.sum(py * s * _phi(t), axis=1))[:, None]


def _index_terms(c, rho, tau):
    """Scalars (α, γ) with G = α ŵ + γ β for f = Σ_k c_k h_k (normalised basis), |β| = 1:

    α = φ(τ) Σ_k c_k ρ^k h_k(τ),   γ = c_1 Φ̄(τ) + φ(τ) Σ_{k≥2} c_k √(k/(k−1)) ρ^{k−1} h_{k−2}(τ).
    This is MATH §3.2's Σ_k f̂_k [ρ^k A_k ŵ + k ρ^{k−1} s B_{k−1} u] with s u = β − ρŵ collected,
    so nothing divides by s = √(1 − ρ²).
    """
    K = c.shape[0] - 1
    H = hermite_polynomials(tau, K)  # (m, K+1)
    powers = rho[:, None] ** jnp.arange(K + 1)[None, :]
    alpha = _phi(tau) * jnp.sum(c[None, :] * powers * H, axis=1)
    gamma = c[1] * jax.scipy.special.ndtr(-tau) if K >= 1 else jnp.zeros_like(tau)
    if K >= 2:
        k = np.arange(2, K + 1)
        coef = c[None, 2:] * np.sqrt(k / (k - 1))[None, :]
        gamma = gamma + _phi(tau) * jnp.sum(coef * powers[:, 1:K] * H[:, : K - 1], axis=1)
    return alpha, gamma


def _directions(W, beta):
    """|w| (0 allowed), a safe divisor, ŵ (0 for w = 0) and ρ = ŵ·β clipped to [−1, 1]."""
    norms: Array = jnp.linalg.norm(W, axis=1)
    safe = jnp.where(norms == 0, 1.0, norms)
    What = W / safe[:, None]
    return norms, safe, What, jnp.clip(What @ beta, -1.0, 1.0)


def index_gradient(beta, c, W, b):
    """Single-index G for f = Σ c_k h_k(β·x) (§3.2); w = 0 gives 1{0 > b} c_1 β."""
    norms, safe, What, rho = _directions(W, beta)
    zero = norms == 0
    tau = jnp.clip(b / safe, -40.0, 40.0)
    alpha, gamma = _index_terms(c.astype(W.dtype), rho, tau)
    alpha = jnp.where(zero, 0.0, alpha)
    gamma = jnp.where(zero, jnp.where(b < 0, c[1] if c.shape[0] > 1 else 0.0, 0.0), gamma)
    return alpha[:, None] * What + gamma[:, None] * beta[None, :]


def multi_index_gradient(B, hermite, W, b):
    """Additive multi-index targets Σ_j f_j(B_j·x): G is linear in y, so sum the single-index
    gradients; each B_j·x = |B_j| β̂_j·x, and f_j(|B_j| z) is re-expanded exactly (a polynomial).
    `B` and `hermite` must be concrete (the re-expansion runs on the host)."""
    B = np.asarray(B, dtype=np.float64)
    G = jnp.zeros_like(W)
    for j in range(B.shape[0]):
        scale = float(np.linalg.norm(B[j]))
        c = polynomial(np.asarray(hermite[j], np.float64)).hermite_coefficients(
            hermite.shape[1] - 1, scale
        )
        G = G + index_gradient(jnp.asarray(B[j] / scale, W.dtype), jnp.asarray(c, W.dtype), W, b)
    return G


def _link_expectations(target, rho, s, z1):
    """E_{z_2}[f(ρ z_1 + s z_2)] and, for relu, E[f z_2]/s = Φ(c/s), with c = ρ z_1 (MATH §3.2)."""
    c = rho[:, None, None] * z1
    q = c / s[:, None, None]
    if target == "relu":
        return c * jax.scipy.special.ndtr(q) + s[:, None, None] * _phi(q), jax.scipy.special.ndtr(q)
    return 2.0 * jax.scipy.special.ndtr(q) - 1.0, None


def quadrature_index_gradient(target, beta, W, b, n_panels=24, nodes=20):
    """relu/sign single-index targets: closed inner expectation over z_2 and Gauss–Legendre over
    z_1 ∈ (τ, 12), split at 0 where f(ρ z_1) kinks when s → 0 (MATH §3.2).

    With c = ρ z_1 and s = √(1−ρ²): relu: E f = cΦ(c/s) + sφ(c/s), E[f z_2]/s = Φ(c/s);
    sign: E f = 2Φ(c/s) − 1 and E[f z_2 1{z_1>τ}]/s = 2Φ̄(τ/s)/√(2π) in closed form.
    """
    norms, safe, What, rho = _directions(W, beta)
    s = jnp.maximum(jnp.sqrt(1.0 - rho**2), 1e-300)
    tau = jnp.where(norms == 0, jnp.where(b < 0, -40.0, 40.0), jnp.clip(b / safe, -40.0, 40.0))
    lo = jnp.clip(tau, -12.0, 12.0)
    pieces = [(lo, jnp.maximum(lo, 0.0)), (jnp.maximum(lo, 0.0), jnp.full_like(lo, 12.0))]
    alpha = jnp.zeros_like(tau)
    gamma_over_s = jnp.zeros_like(tau)
    for a_, b_ in pieces:  # composite Gauss–Legendre on each piece
        edges = a_[:, None] + (b_ - a_)[:, None] * jnp.linspace(0.0, 1.0, n_panels + 1)[None, :]
        z1, w1 = gauss_legendre_panels(edges, nodes)
        w1 = w1 * _phi(z1)
        f_mean, f_z2 = _link_expectations(target, rho, s, z1)
        if f_z2 is not None:
            gamma_over_s = gamma_over_s + jnp.sum(w1 * f_z2, axis=(1, 2))
        alpha = alpha + jnp.sum(w1 * z1 * f_mean, axis=(1, 2))
    if target == "sign":
        gamma_over_s = 2.0 * jax.scipy.special.ndtr(-tau / s) / math.sqrt(2.0 * math.pi)
    # G = α ŵ + γ u with s u = β − ρ ŵ
    return (alpha - gamma_over_s * rho)[:, None] * What + gamma_over_s[:, None] * beta[None, :]


def parity_gradient(dim, support, patterns, structured_weight, flip, W, b, chunk_bits: int = 12):
    """Exact E[y x 1{w·x > b}] on {±1}^dim by enumeration, 2^chunk_bits points per step.

    The structured mixture (weight `structured_weight`, a Python float) conditions on each
    pattern of x_A: enumerate the other dim − |A| coordinates with x_A fixed. Label flips with
    probability q scale G by (1 − 2q).
    """
    A = np.asarray(support)
    G = _enumerate(W, b, dim, A, None, chunk_bits)
    if structured_weight > 0:
        Gp = jnp.mean(
            jnp.stack(
                [
                    _enumerate(W, b, dim, A, patterns[p], chunk_bits)
                    for p in range(patterns.shape[0])
                ]
            ),
            axis=0,
        )
        G = (1.0 - structured_weight) * G + structured_weight * Gp
    return jnp.asarray(1.0 - 2.0 * flip).astype(W.dtype) * G


def _enumerate(W, b, d, A, pattern, chunk_bits):
    """Mean of y x 1{Wx > b} over x uniform on {±1}^d (with x_A = pattern if given)."""
    free = np.setdiff1d(np.arange(d), A) if pattern is not None else np.arange(d)
    nf = free.size
    bits = min(chunk_bits, nf)
    n_chunks = 2 ** (nf - bits)
    local = ((np.arange(2**bits)[:, None] >> np.arange(bits)[None, :]) & 1).astype(np.int64)

    def chunk(i, acc):
        high = (i >> jnp.arange(nf - bits)) & 1  # the chunk index supplies the high bits
        B = jnp.concatenate([jnp.asarray(local), jnp.broadcast_to(high, (2**bits, nf - bits))], 1)
        X = jnp.zeros((2**bits, d), W.dtype).at[:, free].set(1.0 - 2.0 * B.astype(W.dtype))
        if pattern is not None:
            X = X.at[:, A].set(jnp.broadcast_to(pattern.astype(W.dtype), (2**bits, A.size)))
        y = jnp.prod(X[:, A], axis=1)
        return acc + active_sum(X, W, b, y[:, None] * X)

    total = jax.lax.fori_loop(0, n_chunks, chunk, jnp.zeros_like(W))
    return total / 2.0**nf
