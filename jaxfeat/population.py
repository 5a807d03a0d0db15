"""Exact population kernels: the population loss (MATH §2.2) and G(w, b) = E[y x 1{w·x > b}] (§3).

Every function works on one problem (one student/teacher pair, one set of neurons) and is
`jit`- and `vmap`-able; batching over neurons is a matrix product inside.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, _sized, kernels
from ._checks import InputError, InputTypeError
from ._exact_gradient import PARITY_ENUMERATION_MAX_DIM, active_sum
from ._quadrature import check_degree
from .data import Distribution
from .nets import TwoLayer, check_single

__all__ = [
    "population_loss",
    "population_loss_error_bound",
    "population_gradient",
    "has_exact_gradient",
    "empirical_gradient",
    "monte_carlo_gradient",
    "PARITY_ENUMERATION_MAX_DIM",
]


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


def _concretely_biased(*nets: TwoLayer) -> bool:
    """True when some net's biases are concrete and not all zero (False under tracing)."""
    return any(_checks.is_concrete(n.b) and bool(np.any(np.asarray(n.b) != 0)) for n in nets)


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
    - `method="auto"`: closed form when the activation has one and the biases are zero, else
      Hermite. Biases are looked at when they are concrete (an eager call); under `jit` they
      are not known, the closed form is chosen and non-zero biases give NaN as under
      `"closed_form"`: pass `method="hermite"` for biased neurons inside `jit`.

    Differentiable: `jax.grad` is finite for parallel, antiparallel and duplicated neurons.

    **Arguments:**

    - `student`, `teacher`: one `TwoLayer` each (not stacked ensembles: `jax.vmap` over those),
      with the same `dim` and the same activation (else `InputError`); their widths may differ.
      Masked neurons contribute nothing; a = scale·mask·a is used for each.
    - `method`: `"auto"` (default), `"closed_form"` or `"hermite"`, as above; a closed form
      the activation lacks raises `InputError`.
    - `degree`: the truncation K of the Mehler series, a non-negative Python int (default 50;
      checked for every method, used only by `"hermite"`).
    - `exact_diagonal`: `"hermite"` only: take the self-terms K(w_i, w_i) exactly (default
      True) instead of from the truncated series.

    **Returns:** the scalar L (a 0-d array).
    """
    _check_pair(student, teacher)
    degree = check_degree(degree)
    act = student.activation
    method = kernels.resolve_method(act, method, biased=_concretely_biased(student, teacher))
    guard = _biases_for(method, student, teacher)
    a, at = _effective_a(student), _effective_a(teacher)
    if method == "closed_form":
        assert guard is not None  # _biases_for returns an array for the closed form
        form = functools.partial(kernels.kernel_form, act)  # pᵀK(A, B)q, hand-derived grad
        loss = form(student.W, a) - 2 * form(student.W, a, teacher.W, at)
        return loss + form(teacher.W, at) + guard
    return _hermite_loss(student, teacher, a, at, degree, exact_diagonal)


@eqx.filter_jit
def _hermite_loss(student, teacher, a, at, degree: int, exact_diagonal: bool):
    """The Mehler-series loss (jitted: an eager call with new values of the same shapes reuses
    the compiled program instead of tracing fresh `lax` loops)."""
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

    **Arguments:**

    - `student`, `teacher`: one `TwoLayer` each, with the same `dim` and activation (else
      `InputError`), as for `population_loss`; a_i and a*_j are their masked, scaled output
      weights, and biases are allowed.
    - `degree`: K, a non-negative Python int (default 50, `population_loss`'s default).

    **Returns:** the scalar bound (a 0-d array).
    """
    _check_pair(student, teacher)
    (C, m2), (Ct, m2t), _, _ = _coefficients(student, teacher, check_degree(degree))
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


def population_gradient(
    dist: Distribution, W: ArrayLike, b: ArrayLike
) -> Float[Array, "width dim"]:
    """G(w_i, b_i) = E[y x 1{w_i·x > b_i}] for every neuron, exactly (MATH §3; strict inequality).

    Each law owns its exact G (`Distribution.exact_gradient`):

    - `GaussianMixture`: closed form with Φ̄ and φ (§3.1).
    - `SingleIndex`/`MultiIndex` with Hermite targets and Gaussian inputs (`inputs="gaussian"`;
      Rademacher and uniform inputs are refused): the Hermite addition formula (§3.2);
      `SingleIndex(target="relu" | "sign")`: closed inner expectation and a 1-D Gauss–Legendre
      integral (≈1e-13).
    - `SparseParity` with dim ≤ 20: exact enumeration of {±1}^d in chunks (memory O(chunk·m)),
      conditioning on the patterns for the structured mixture. Larger d: use
      `monte_carlo_gradient`, which also reports standard errors.

    `has_exact_gradient(dist)` says in advance whether this raises for want of an exact G.

    **Arguments:**

    - `dist`: a `jaxfeat.data` distribution (else `InputTypeError`); a law without an exact G
      raises `InputError` with the reason (`dist.why_no_exact_gradient()`).
    - `W`: the neurons' weights (m, dim), dim = `dist.dim`, finite.
    - `b`: their biases (m,), finite.

    **Returns:** G (m, dim), row i = G(w_i, b_i).
    """
    _check_neurons(dist, W, b)
    reason = dist.why_no_exact_gradient()
    if reason is not None:
        raise InputError(reason)
    return dist.exact_gradient(jnp.asarray(W), jnp.asarray(b))


def has_exact_gradient(dist: Distribution) -> bool:
    """Whether `population_gradient` has an exact G for `dist` (the single source of truth:
    it asks the law, `dist.why_no_exact_gradient() is None`). Python only, no array work."""
    return isinstance(dist, Distribution) and dist.why_no_exact_gradient() is None


def empirical_gradient(
    X: ArrayLike, y: ArrayLike, W: ArrayLike, b: ArrayLike, n=None
) -> Float[Array, "width dim"]:
    """Ĝ(w_i, b_i) = (1/n) Σ_j y_j x_j 1{w_i·x_j > b_i}: one (m,n)(n,d) product (MATH §6.1).

    `n` (optional, possibly traced): only the first n rows of X and y are samples, the rest
    padding below a static capacity (`jaxfeat._sized`).

    **Arguments:**

    - `X`: the samples (n, dim) (with `n` given: (capacity, dim)).
    - `y`: their labels (n,).
    - `W`: the neurons' weights (m, dim).
    - `b`: their biases (m,).
    - `n`: the live sample count, an int in 1..capacity or a traced integer scalar; default:
      every row of `X` is a sample.

    **Returns:** Ĝ (m, dim), row i = Ĝ(w_i, b_i).
    """
    rows, d = _checks.check_ndim("X", X, 2, "(n, dim)")
    _checks.check_shape("y", y, (rows,), "(n,)")
    m = _checks.check_ndim("W", W, 2, f"(m, dim) = (m, {d})")[0]
    if np.shape(W)[1] != d:
        raise InputError(f"W must have shape (m, dim) = (m, {d}) to match X, got {np.shape(W)}")
    _checks.check_shape("b", b, (m,), "(m,)")
    for name, v in (("X", X), ("y", y), ("W", W), ("b", b)):
        _checks.check_finite(name, v)
    X, y, W, b = map(jnp.asarray, (X, y, W, b))
    if n is None:
        n = rows
    else:
        n = _sized.check_size("n", n, rows)[0]
        y = _sized.mask_rows(y, n)
    return active_sum(X, W, b, y[:, None] * X) / n


def monte_carlo_gradient(
    key: PRNGKeyArray,
    dist: Distribution,
    W: ArrayLike,
    b: ArrayLike,
    n_samples: int,
    *,
    chunk: int = 8192,
) -> tuple[Float[Array, "width dim"], Float[Array, "width dim"]]:
    """Monte-Carlo G for any distribution: mean of y x 1{w·x > b} over `n_samples` draws, taken
    in chunks (memory O(chunk·(m + d))), with the standard error of every entry.

    Returns `(G_hat, standard_error)`. Chunk i uses `fold_in(key, i)`.

    **Arguments:**

    - `key`: the PRNG key; chunk i draws `chunk` samples from `fold_in(key, i)`, and the
      last chunk's draws past `n_samples` are discarded (so the estimate depends on `chunk`).
    - `dist`: any `jaxfeat.data` distribution (else `InputTypeError`).
    - `W`: the neurons' weights (m, dim), dim = `dist.dim`, finite.
    - `b`: their biases (m,), finite.
    - `n_samples`: the number of samples, a positive int.
    - `chunk`: samples drawn at a time (default 8192; at most `n_samples` is used).

    **Returns:** `(G_hat, standard_error)`, both (m, dim): the sample mean of y x 1{w_i·x > b_i}
    and its standard error √(s²/n_samples), s² the unbiased sample variance of each entry.
    """
    _checks.check_key(key)
    _check_neurons(dist, W, b)
    n_samples = _checks.check_positive_int("n_samples", n_samples)
    chunk = min(_checks.check_positive_int("chunk", chunk), n_samples)
    return _monte_carlo(key, dist, jnp.asarray(W), jnp.asarray(b), n_samples, chunk)


@eqx.filter_jit  # module level: a second eager call with the same shapes compiles nothing
def _monte_carlo(key, dist, W, b, n_samples: int, chunk: int):
    n_chunks = -(-n_samples // chunk)

    def body(i, acc):
        X, y = dist.sample(jax.random.fold_in(key, i), chunk)
        valid = (i * chunk + jnp.arange(chunk)) < n_samples
        y_live: Array = jnp.where(valid, y, 0.0)  # pyright: ignore[reportAssignmentType]
        yx = y_live[:, None] * X.astype(W.dtype)
        return acc[0] + active_sum(X, W, b, yx), acc[1] + active_sum(X, W, b, yx**2)

    s1, s2 = jax.lax.fori_loop(0, n_chunks, body, (jnp.zeros_like(W), jnp.zeros_like(W)))
    mean = s1 / n_samples
    var = jnp.maximum(s2 / n_samples - mean**2, 0.0) * n_samples / max(n_samples - 1, 1)
    return mean, jnp.sqrt(var / n_samples)
