"""Exact population kernels: the population loss (MATH §2.2) and G(w, b) = E[y x 1{w·x > b}] (§3).

Every function works on one problem (one student/teacher pair, one set of neurons) and is
`jit`- and `vmap`-able; batching over neurons is a matrix product inside.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, kernels
from ._checks import InputError, InputTypeError
from ._quadrature import _check_degree, hermite_polynomials
from .activations import polynomial
from .data import Distribution, GaussianMixture, MultiIndex, SingleIndex, SparseParity
from .nets import TwoLayer, check_single

__all__ = [
    "population_loss",
    "population_loss_error_bound",
    "population_gradient",
    "empirical_gradient",
    "monte_carlo_gradient",
    "PARITY_ENUMERATION_MAX_DIM",
]

PARITY_ENUMERATION_MAX_DIM = 20


# ---------------------------------------------------------------------------------------------
# Population loss E_x[(f_s(x) − f_t(x))²], x ~ N(0, I_d)
# ---------------------------------------------------------------------------------------------


def _check_pair(student, teacher) -> None:
    check_single("student", student)
    check_single("teacher", teacher)
    if student.dim != teacher.dim:
        raise InputError(
            f"teacher.dim must equal student.dim: teacher W has shape "
            f"{tuple(teacher.W.shape)}, student W {tuple(student.W.shape)}"
        )
    if student.activation != teacher.activation:
        raise InputError(
            f"teacher.activation ({teacher.activation.name}) must equal "
            f"student.activation ({student.activation.name})"
        )


def _effective_a(net: TwoLayer) -> Array:
    return net.scale * jnp.where(net.mask, net.a, 0.0)


def _biases_for(method, student, teacher):
    """Closed forms need zero biases: checked eagerly; under tracing, non-zero biases give NaN."""
    if method != "closed_form":
        return None
    for name, net in (("student", student), ("teacher", teacher)):
        if _checks.is_concrete(net.b) and np.any(np.asarray(net.b) != 0):
            raise InputError(
                f"{name}.b must be zero for the closed-form kernel of "
                f"{net.activation.name}; use method='hermite' for biased neurons"
            )
    nonzero = jnp.any(student.b != 0) | jnp.any(teacher.b != 0)
    return jnp.where(nonzero, jnp.nan, 0.0)


def population_loss(
    student: TwoLayer,
    teacher: TwoLayer,
    *,
    method: str = "auto",
    degree: int = 50,
    exact_diagonal: bool = True,
) -> Float[Array, ""]:
    """L = E_x[(f_s(x) − f_t(x))²], x ~ N(0, I_d), exactly (MATH §2.2, no ½).

    L = aᵀK(W,W)a − 2aᵀK(W,W*)a* + a*ᵀK(W*,W*)a*, with a the masked, scaled output weights and
    K the dual kernel of the shared activation (`jaxfeat.kernels`):

    - `method="closed_form"`: relu, abs, their centrings (sigma_ge2: the homogeneous neuron) and
      erf; exact; biases must be zero (eagerly checked; NaN if non-zero under `jit`).
    - `method="hermite"`: the Mehler series truncated at `degree`, any activation and biases;
      `population_loss_error_bound` bounds the truncation error. With `exact_diagonal` the
      self-terms K(w_i, w_i) = E[n_i²] (ρ = 1, where the series converges slowest: MATH §1.3) are
      taken exactly from the per-neuron second moments instead of the series.
    - `method="auto"`: closed form when the activation has one, else Hermite.

    Differentiable: `jax.grad` is finite for parallel, antiparallel and duplicated neurons.
    """
    _check_pair(student, teacher)
    degree = _check_degree(degree)
    act = student.activation
    method = kernels.resolve_method(act, method, biased=False)
    guard = _biases_for(method, student, teacher)
    a, at = _effective_a(student), _effective_a(teacher)
    if method == "closed_form":
        K = lambda A, B: kernels.dual_kernel(act, A, B, method="closed_form")  # noqa: E731
        loss = a @ K(student.W, student.W) @ a - 2 * a @ K(student.W, teacher.W) @ at
        return loss + at @ K(teacher.W, teacher.W) @ at + guard
    (C, m2), (Ct, m2t), n, nt = _coefficients(student, teacher, degree)

    def gram(CA, CB, A, B, nA, nB, m2=None):
        K = kernels.mehler_kernel(CA, CB, kernels.cosines(A, B, nA, nB))
        return K if m2 is None or not exact_diagonal else K + jnp.diag(m2 - jnp.diag(K))

    loss = a @ gram(C, C, student.W, student.W, n, n, m2) @ a
    loss = loss - 2 * a @ gram(C, Ct, student.W, teacher.W, n, nt) @ at
    return loss + at @ gram(Ct, Ct, teacher.W, teacher.W, nt, nt, m2t) @ at


def _coefficients(student, teacher, degree):
    n, nt = kernels.smoothed_norms(student.W), kernels.smoothed_norms(teacher.W)
    act = student.activation
    return (
        kernels.neuron_coefficients(act, n, student.b, degree),
        kernels.neuron_coefficients(act, nt, teacher.b, degree),
        n,
        nt,
    )


def population_loss_error_bound(
    student: TwoLayer, teacher: TwoLayer, *, degree: int = 50
) -> Float[Array, ""]:
    """A rigorous bound on |L − L_K| for the Hermite-truncated loss at `degree` K.

    Each kernel entry errs by at most √(T_i T_j), T_i = E[n_i²] − Σ_{k≤K} c_ik² (Cauchy–Schwarz,
    |ρ| ≤ 1), so |L − L_K| ≤ (Σ_i |a_i| √T_i + Σ_j |a*_j| √T*_j)².
    """
    _check_pair(student, teacher)
    (C, m2), (Ct, m2t), _, _ = _coefficients(student, teacher, _check_degree(degree))
    s = jnp.abs(_effective_a(student)) @ kernels.mehler_tail(C, m2)
    return (s + jnp.abs(_effective_a(teacher)) @ kernels.mehler_tail(Ct, m2t)) ** 2


# ---------------------------------------------------------------------------------------------
# Population gradient G(w, b) = E[y x 1{w·x > b}]
# ---------------------------------------------------------------------------------------------


def _check_neurons(dist, W, b):
    if not isinstance(dist, Distribution):
        raise InputTypeError(f"dist must be a jaxfeat.data distribution, got {type(dist).__name__}")
    m, d = _checks.check_ndim("W", W, 2, "(m, dim)")
    if d != dist.dim:
        raise InputError(
            f"W must have shape (m, dim) = (m, {dist.dim}) to match dist.dim, got shape {(m, d)}"
        )
    _checks.check_shape("b", b, (m,), "(m,)")
    _checks.check_finite("W", W)
    _checks.check_finite("b", b)


def population_gradient(dist: Distribution, W: ArrayLike, b: ArrayLike) -> Float[Array, "m dim"]:
    """G(w_i, b_i) = E[y x 1{w_i·x > b_i}] for every neuron, exactly (MATH §3; strict inequality).

    - `GaussianMixture`: closed form with Φ̄ and φ (§3.1).
    - `SingleIndex`/`MultiIndex` with Hermite targets: the Hermite addition formula (§3.2);
      `SingleIndex(target="relu" | "sign")`: closed inner expectation and a 1-D Gauss–Legendre
      integral (≈1e-13).
    - `SparseParity` with dim ≤ 20: exact enumeration of {±1}^d in chunks (memory O(chunk·m)),
      conditioning on the patterns for the structured mixture. Larger d: use
      `monte_carlo_gradient`, which also reports standard errors.
    """
    _check_neurons(dist, W, b)
    kernel = _gradient_kernel(dist)
    return kernel(jnp.asarray(W), jnp.asarray(b))


def _gradient_kernel(dist):
    """Pick the exact kernel for `dist` (in Python, before any array work) or raise."""
    if isinstance(dist, GaussianMixture):
        return lambda W, b: _mixture_gradient(dist, W, b)
    if isinstance(dist, SingleIndex):
        if dist.hermite is not None:
            return lambda W, b: _index_gradient(dist.beta, dist.hermite, W, b)
        if dist.target in ("relu", "sign"):
            return lambda W, b: _quadrature_index_gradient(dist.target, dist.beta, W, b)
        raise InputError(
            "dist: SingleIndex with a callable target has no exact G; give it by "
            "hermite= coefficients, target='relu' or 'sign', or use "
            "monte_carlo_gradient"
        )
    if isinstance(dist, MultiIndex) and dist.hermite is not None:
        return lambda W, b: _multi_index_gradient(dist, W, b)
    if isinstance(dist, SparseParity):
        if dist.dim > PARITY_ENUMERATION_MAX_DIM:
            raise InputError(
                f"dist: exact parity enumeration needs dim <= "
                f"{PARITY_ENUMERATION_MAX_DIM}, got {dist.dim}; use "
                "monte_carlo_gradient"
            )
        return lambda W, b: _parity_gradient(dist, W, b)
    raise InputError(
        f"dist: no exact population gradient for {type(dist).__name__}; supported: "
        "GaussianMixture, SingleIndex, MultiIndex (hermite), SparseParity (dim <= 20)"
        "; use monte_carlo_gradient"
    )


def _phi(t):
    return jnp.exp(-0.5 * t**2) / math.sqrt(2.0 * math.pi)


def _mixture_gradient(dist: GaussianMixture, W, b):
    """G = Σ_j p_j y_j [μ_j Φ̄(t_ij) + s_j ŵ_i φ(t_ij)], t_ij = (b_i/|w_i| − ŵ_i·μ_j)/s_j (§3.1).

    Two matrix products, W Mᵀ (m,d)(d,k) and (m,k)(k,d), and two elementwise passes over W (its
    norms, and the final ŵ term); ŵ is never materialised. w = 0 gives 1{0 > b} Σ_j p_j y_j μ_j.
    """
    norms = jnp.sqrt(jnp.sum(W * W, axis=1))
    zero = norms == 0
    inv = 1.0 / jnp.where(zero, 1.0, norms)
    s = dist.scales[None, :]
    t = ((b * inv)[:, None] - (W @ dist.means.T) * inv[:, None]) / s
    t = jnp.where(zero[:, None], jnp.where(b[:, None] < 0, -jnp.inf, jnp.inf), t)
    py = (dist.weights * dist.labels)[None, :]
    G = (py * jax.scipy.special.ndtr(-t)) @ dist.means
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
    norms = jnp.linalg.norm(W, axis=1)
    safe = jnp.where(norms == 0, 1.0, norms)
    What = W / safe[:, None]
    return norms, safe, What, jnp.clip(What @ beta, -1.0, 1.0)


def _index_gradient(beta, c, W, b):
    """Single-index G for f = Σ c_k h_k(β·x) (§3.2); w = 0 gives 1{0 > b} c_1 β."""
    norms, safe, What, rho = _directions(W, beta)
    zero = norms == 0
    tau = jnp.clip(b / safe, -40.0, 40.0)
    alpha, gamma = _index_terms(c.astype(W.dtype), rho, tau)
    alpha = jnp.where(zero, 0.0, alpha)
    gamma = jnp.where(zero, jnp.where(b < 0, c[1] if c.shape[0] > 1 else 0.0, 0.0), gamma)
    return alpha[:, None] * What + gamma[:, None] * beta[None, :]


def _multi_index_gradient(dist: MultiIndex, W, b):
    """Additive multi-index targets Σ_j f_j(B_j·x): G is linear in y, so sum the single-index
    gradients; each B_j·x = |B_j| β̂_j·x, and f_j(|B_j| z) is re-expanded exactly (a polynomial)."""
    B = np.asarray(dist.B, dtype=np.float64)
    G = jnp.zeros_like(W)
    for j in range(B.shape[0]):
        scale = float(np.linalg.norm(B[j]))
        c = polynomial(np.asarray(dist.hermite[j], np.float64)).hermite_coefficients(
            dist.hermite.shape[1] - 1, scale
        )
        G = G + _index_gradient(jnp.asarray(B[j] / scale, W.dtype), jnp.asarray(c, W.dtype), W, b)
    return G


def _quadrature_index_gradient(target, beta, W, b, n_panels=24, nodes=20):
    """relu/sign single-index targets: closed inner expectation over z_2 and Gauss–Legendre over
    z_1 ∈ (τ, 12), split at 0 where f(ρ z_1) kinks when s → 0 (MATH §3.2).

    With c = ρ z_1 and s = √(1−ρ²): relu: E f = cΦ(c/s) + sφ(c/s), E[f z_2]/s = Φ(c/s);
    sign: E f = 2Φ(c/s) − 1 and E[f z_2 1{z_1>τ}]/s = 2Φ̄(τ/s)/√(2π) in closed form.
    """
    norms, safe, What, rho = _directions(W, beta)
    s = jnp.maximum(jnp.sqrt(1.0 - rho**2), 1e-300)
    tau = jnp.where(norms == 0, jnp.where(b < 0, -40.0, 40.0), jnp.clip(b / safe, -40.0, 40.0))
    t, v = np.polynomial.legendre.leggauss(nodes)
    lo = jnp.clip(tau, -12.0, 12.0)
    pieces = [(lo, jnp.maximum(lo, 0.0)), (jnp.maximum(lo, 0.0), jnp.full_like(lo, 12.0))]
    alpha = jnp.zeros_like(tau)
    gamma_over_s = jnp.zeros_like(tau)
    for a_, b_ in pieces:  # composite Gauss–Legendre on each piece
        edges = a_[:, None] + (b_ - a_)[:, None] * jnp.linspace(0.0, 1.0, n_panels + 1)[None, :]
        half = (edges[:, 1:] - edges[:, :-1]) / 2
        z1 = ((edges[:, 1:] + edges[:, :-1]) / 2)[:, :, None] + half[:, :, None] * t[None, None]
        w1 = (half[:, :, None] * v[None, None]) * _phi(z1)
        c = rho[:, None, None] * z1
        q = c / s[:, None, None]
        if target == "relu":
            f_mean = c * jax.scipy.special.ndtr(q) + s[:, None, None] * _phi(q)
            gamma_over_s = gamma_over_s + jnp.sum(w1 * jax.scipy.special.ndtr(q), axis=(1, 2))
        else:
            f_mean = 2.0 * jax.scipy.special.ndtr(q) - 1.0
        alpha = alpha + jnp.sum(w1 * z1 * f_mean, axis=(1, 2))
    if target == "sign":
        gamma_over_s = 2.0 * jax.scipy.special.ndtr(-tau / s) / math.sqrt(2.0 * math.pi)
    # G = α ŵ + γ u with s u = β − ρ ŵ
    return (alpha - gamma_over_s * rho)[:, None] * What + gamma_over_s[:, None] * beta[None, :]


def _parity_gradient(dist: SparseParity, W, b, chunk_bits: int = 12):
    """Exact E[y x 1{w·x > b}] on {±1}^d by enumeration, 2^chunk_bits points per step.

    The structured mixture conditions on each pattern of x_A: enumerate the other d − |A|
    coordinates with x_A fixed. Label flips with probability q scale G by (1 − 2q).
    """
    d = dist.dim
    A = np.asarray(dist.support)
    G = _enumerate(W, b, d, A, None, chunk_bits)
    if dist.structured_weight > 0:
        Gp = jnp.mean(
            jnp.stack(
                [
                    _enumerate(W, b, d, A, dist.patterns[p], chunk_bits)
                    for p in range(dist.patterns.shape[0])
                ]
            ),
            axis=0,
        )
        G = (1.0 - dist.structured_weight) * G + dist.structured_weight * Gp
    return (1.0 - 2.0 * dist.flip) * G


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
        active = (X @ W.T > b[None, :]).astype(W.dtype)  # strict inequality (MATH §0)
        return acc + active.T @ (y[:, None] * X)

    total = jax.lax.fori_loop(0, n_chunks, chunk, jnp.zeros_like(W))
    return total / 2.0**nf


def empirical_gradient(
    X: ArrayLike, y: ArrayLike, W: ArrayLike, b: ArrayLike
) -> Float[Array, "m dim"]:
    """Ĝ(w_i, b_i) = (1/n) Σ_j y_j x_j 1{w_i·x_j > b_i}: one (m,n)(n,d) product (MATH §6.1)."""
    n, d = _checks.check_ndim("X", X, 2, "(n, dim)")
    _checks.check_shape("y", y, (n,), "(n,)")
    m = _checks.check_ndim("W", W, 2, f"(m, dim) = (m, {d})")[0]
    if np.shape(W)[1] != d:
        raise InputError(f"W must have shape (m, dim) = (m, {d}) to match X, got {np.shape(W)}")
    _checks.check_shape("b", b, (m,), "(m,)")
    X, y, W, b = map(jnp.asarray, (X, y, W, b))
    active = (X @ W.T > b[None, :]).astype(X.dtype)
    return active.T @ (y[:, None] * X) / n


def monte_carlo_gradient(
    key: PRNGKeyArray,
    dist: Distribution,
    W: ArrayLike,
    b: ArrayLike,
    n_samples: int,
    *,
    chunk: int = 8192,
) -> tuple[Float[Array, "m dim"], Float[Array, "m dim"]]:
    """Monte-Carlo G for any distribution: mean of y x 1{w·x > b} over `n_samples` draws, taken
    in chunks (memory O(chunk·(m + d))), with the standard error of every entry.

    Returns `(G_hat, standard_error)`. Chunk i uses `fold_in(key, i)`.
    """
    _checks.check_key(key)
    _check_neurons(dist, W, b)
    n_samples = _checks.check_positive_int("n_samples", n_samples)
    chunk = min(_checks.check_positive_int("chunk", chunk), n_samples)
    n_chunks = -(-n_samples // chunk)
    W, b = jnp.asarray(W), jnp.asarray(b)

    def body(i, acc):
        X, y = dist.sample(jax.random.fold_in(key, i), chunk)
        valid = (i * chunk + jnp.arange(chunk)) < n_samples
        yx = jnp.where(valid, y, 0.0)[:, None] * X.astype(W.dtype)
        active = (X @ W.T > b[None, :]).astype(W.dtype)
        return acc[0] + active.T @ yx, acc[1] + active.T @ yx**2

    s1, s2 = jax.lax.fori_loop(0, n_chunks, body, (jnp.zeros_like(W), jnp.zeros_like(W)))
    mean = s1 / n_samples
    var = jnp.maximum(s2 / n_samples - mean**2, 0.0) * n_samples / max(n_samples - 1, 1)
    return mean, jnp.sqrt(var / n_samples)
