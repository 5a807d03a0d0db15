"""Ridge regression of a second layer: a whole grid of λ from one eigendecomposition
(`ridge_path`), or one λ from one linear solve (`ridge_fit`).

The model is ŷ = s·F a + b (s the `feature_scale`, b the unpenalised intercept when
`intercept=True`) and â(λ) = argmin_a ℓ(a) + λ|a|² with ℓ = (1/n)|y − ŷ|² (`loss="mean"`, MATH
§4.1, Moniri et al.) or ℓ = |y − ŷ|² (`loss="sum"`, Dandi et al.'s code, with s = 1/√width and
no intercept). The two conventions differ by λ_sum = n·λ_mean. With the eigendecomposition of
the smaller Gram matrix, GᵀG/n = V diag(e) Vᵀ (n ≥ N) or GGᵀ/n = U diag(e) Uᵀ (n < N), G = sF,
every λ costs one diagonal rescaling, not one solve. The same decomposition gives, for every λ,
the exact leave-one-out error and generalised cross-validation (MATH §4.5): criteria to choose λ
from the training sample alone (`ridge_path`'s `loo_mse`, `gcv`).

`n=` (may be traced) marks only the first n rows of F and y live, the rest padding below a
static capacity (`jaxfeat._sized`): padding rows count in no mean, Gram matrix or error, so the
results are those of the n live rows alone (to rounding), in the primal and the dual form.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _checks, _sized
from ._checks import InputError

__all__ = ["RIDGE_LOSSES", "ridge_fit", "ridge_path"]

RIDGE_LOSSES = ("mean", "sum")


def ridge_path(
    F: ArrayLike,
    y: ArrayLike,
    lambdas: ArrayLike,
    F_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    *,
    intercept: bool = True,
    loss: str = "mean",
    feature_scale=1.0,
    n=None,
    gram_eigh=None,
) -> dict[str, Float[Array, ...]]:
    """Ridge solutions and errors for every λ in `lambdas`.

    **Arguments:** `F` (n, N) training features, `y` (n,), `lambdas` (L,) all > 0, optional test
    set `F_test` (n_test, N), `y_test`; the conventions `intercept` (F and y centred on the
    training means; the intercept is not penalised), `loss` and `feature_scale` (module
    docstring); `n` the live rows of F and y (module docstring; default all); `gram_eigh`
    (optional) the eigendecomposition (e, V), ascending, of GᵀG with G the centred (or, without
    an intercept, uncentred) scaled live training features, *not* divided by n, when the
    caller already has it (`jaxfeat.spectrum.centred_gram_eigh`; `one_step_spikes` shares one
    with the spike count): used in the primal form (F's rows, padding included, ≥ N), which
    then does no eigendecomposition of its own, and ignored in the dual form.

    **Returns:** `coef` (L, N) (of the scaled features sF), `intercept` (L,), `train_mse` (L,),
    `gram_eigenvalues` (the eigenvalues of the (centred) Gram matrix of sF divided by n,
    ascending: the squared singular values of sF/√n), the training-sample criteria `loo_mse`
    (L,), `gcv` (L,), `best_loo`, `best_gcv` (index of the smallest of each) and, with a test
    set, `test_mse` (L,) and `best` (index of the smallest test error).

    The criteria use the hat matrix ŷ = H_λ y of the fit, H_λ = 11ᵀ/n + H_c with an intercept
    (the intercept is unpenalised and 1ᵀG_c = 0, so the two blocks decouple), H_λ = H_c
    without, where H_c = G_c(G_cᵀG_c + nλ)⁻¹G_cᵀ on the (centred) scaled features G_c and λ in
    the `loss="mean"` convention:

    - `loo_mse` = (1/n) Σ_j ((y_j − ŷ_j)/(1 − H_jj))², exactly the mean squared error of
      predicting each y_j from the refit without row j, intercept included, that keeps the full
      problem's penalty nλ|a|² on the sum of squares (the same λ for `loss="sum"`; λ·n/(n−1)
      for `loss="mean"` on the n−1 remaining rows);
    - `gcv` = (1/n) Σ_j (y_j − ŷ_j)² / (1 − tr(H_λ)/n)², tr(H_c) = Σ_m e_m/(e_m + λ).

    With the eigenvectors of the Gram matrix, diag(H_c) = Σ_m (G_c v_m)_j² / (n(e_m + λ))
    (primal) or Σ_m U_jm² e_m/(e_m + λ) (dual, H_c = K(K + nλ)⁻¹, K = G_cG_cᵀ = nU diag(e)Uᵀ).
    """
    _check_ridge_args(F, y, lambdas, F_test, y_test, loss)
    eig = _checks.check_gram_eigh(gram_eigh, np.shape(F)[1], jnp.asarray(F).dtype)
    F, y, lam = jnp.asarray(F), jnp.asarray(y), jnp.asarray(lambdas, dtype=jnp.asarray(F).dtype)
    n, live = _live_rows(F, n)
    G, fm, ym = _centring(F * feature_scale, y, intercept, live)
    Gc, yc = _sized.mask_rows(G - fm[None, :], live), _sized.mask_rows(y - ym, live)
    lam = _mean_lambda(lam, loss, n)
    ones = jnp.full(F.shape[0], float(intercept), F.dtype)  # H_λ = H_c + uuᵀ, u = 1/√n live
    u = _sized.mask_rows(ones, live) / jnp.sqrt(jnp.asarray(n, F.dtype))  # √ of an int32 is f32
    e, coef, resid, slack = _ridge_coefficients(Gc, yc, lam, n, u, eig)
    b0 = ym - coef @ fm
    out = {"coef": coef, "intercept": b0, "gram_eigenvalues": e}
    out |= _loo_gcv(resid, slack, e, lam, n, live, intercept)
    predict = lambda F: (F * feature_scale) @ coef.T + b0[None, :]  # noqa: E731
    return out | _errors(predict, F, y, F_test, y_test, live)


def ridge_fit(
    F: ArrayLike,
    y: ArrayLike,
    lam,
    F_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    *,
    intercept: bool = True,
    loss: str = "mean",
    feature_scale=1.0,
    n=None,
) -> dict[str, Float[Array, ...]]:
    """Ridge for one λ > 0 by one Cholesky solve (of the N×N or the n×n system, whichever is
    smaller), with the conventions of `ridge_path` (module docstring), `n` its live rows.

    **Returns:** `coef` (N,), `intercept` (), `train_mse` () and, with a test set, `test_mse` ().
    """
    _checks.check_ndim("lam", lam, 0, "() (one λ; ridge_path takes a grid)")
    if _checks.is_concrete(lam) and not float(lam) > 0:
        raise InputError(f"lam must be > 0, got {lam}")
    _check_ridge_args(F, y, jnp.reshape(jnp.asarray(lam), (1,)), F_test, y_test, loss)
    F, y = jnp.asarray(F), jnp.asarray(y)
    n, live = _live_rows(F, n)
    G, fm, ym = _centring(F * feature_scale, y, intercept, live)
    Gc, yc = _sized.mask_rows(G - fm[None, :], live), _sized.mask_rows(y - ym, live)
    rows, N = F.shape
    lam = _mean_lambda(jnp.asarray(lam, F.dtype), loss, n)
    if N <= rows:  # (GᵀG/n + λ) a = Gᵀy/n
        coef = jax.scipy.linalg.cho_solve(_cho(Gc.T @ Gc / n, lam), Gc.T @ yc / n)
    else:  # a = Gᵀ (GGᵀ/n + λ)⁻¹ y/n
        coef = Gc.T @ jax.scipy.linalg.cho_solve(_cho(Gc @ Gc.T / n, lam), yc / n)
    b0 = ym - coef @ fm
    out = {"coef": coef, "intercept": b0}
    predict = lambda F: (F * feature_scale) @ coef + b0  # noqa: E731
    return out | _errors(predict, F, y, F_test, y_test, live)


def _cho(A, lam):
    return jax.scipy.linalg.cho_factor(A + lam * jnp.eye(A.shape[0], dtype=A.dtype))


def _mean_lambda(lam, loss: str, n):
    """λ of the mean-loss convention: λ_sum / n for `loss="sum"`."""
    return lam if loss == "mean" else lam / n


def _live_rows(F, n) -> tuple[Any, Any]:
    """(live rows n, the count to mask padding rows with: None when every row is live)."""
    rows = F.shape[0]
    if n is None:
        return rows, None
    n, _ = _sized.check_size("n", n, rows)
    return n, n


def _centring(G, y, intercept: bool, live=None):
    """(G, column means of G, mean of y) over the first `live` rows (all when None), the
    means zero without an intercept."""
    if not intercept:
        return G, jnp.zeros(G.shape[1], G.dtype), jnp.zeros((), G.dtype)
    if live is None:
        return G, jnp.mean(G, axis=0), jnp.mean(y)
    return (
        G,
        jnp.sum(_sized.mask_rows(G, live), axis=0) / live,
        jnp.sum(_sized.mask_rows(y, live)) / live,
    )


def _errors(predict, F, y, F_test, y_test, live=None) -> dict:
    """`train_mse` (over the live rows) and, with a test set, `test_mse` and `best` (the λ
    index of the smallest)."""
    out = {"train_mse": _mse(predict(F), y, live)}
    if F_test is not None:
        out["test_mse"] = _mse(predict(jnp.asarray(F_test)), jnp.asarray(y_test))
        if out["test_mse"].ndim:
            out["best"] = jnp.argmin(out["test_mse"])
    return out


def _mse(pred, y, live=None):
    """Mean squared error over the first `live` rows (all when None): (L,) for predictions
    (n, L), () for (n,)."""
    r = pred - (y[:, None] if pred.ndim == 2 else y)
    return _row_mean(r**2, live)


def _row_mean(x, live=None):
    """Mean over axis 0 of the first `live` rows of x (all when None)."""
    if live is None:
        return jnp.mean(x, axis=0)
    return jnp.sum(_sized.mask_rows(x, live), axis=0) / live


def _loo_gcv(
    r: Float[Array, "rows L"], slack: Float[Array, "L rows"], e, lam, n, live, intercept: bool
) -> dict:
    """`loo_mse`, `gcv` (L,) and the indices of their minima (`ridge_path`'s docstring) from
    the training residuals r = y − ŷ, `slack` = 1 − diag(H_λ) and the Gram eigenvalues e. The
    intercept adds 1 to tr(H); padding rows (r = 0) count in no mean."""
    icpt = 1.0 if intercept else 0.0
    loo = _row_mean((r / slack.T) ** 2, live)
    # n − tr(H_λ) = (n − 1_icpt − rank) + Σ_{e_m>0} λ/(e_m + λ): no cancellation as tr(H) → n
    nonzero = _nonzero(e)
    rest = jnp.sum(_sized.where(nonzero[None, :], lam[:, None] / (e[None, :] + lam[:, None]), 0), 1)
    gcv = _row_mean(r**2, live) / ((n - icpt - jnp.sum(nonzero) + rest) / n) ** 2
    return {"loo_mse": loo, "gcv": gcv, "best_loo": jnp.argmin(loo), "best_gcv": jnp.argmin(gcv)}


#: Gram eigenvalues at most this many ε·max e are rounding: exact zeros (padding, rank) come out
#: of `eigh` at ~0.01–0.1 ε·max e; a cutoff at size·ε·max e (size the rows, 10³) dropped genuine
#: eigenvalues of near-square float32 features (n = 1000, N = 990: smallest ≈ 2.4 ε·max e), so
#: the leverages came out too small and leave-one-out chose λ = 1e-7 with a LOO error 0.17× the
#: true one (float64: λ = 0.1); tests/test_ridge_loo.py::test_near_square_float32_features
ROUNDING_EPS = 4.0


def _nonzero(e):
    """The Gram eigenvalues above rounding (`ROUNDING_EPS`·ε·max e): the others are zero,
    whose computed values (±ε·max e) would otherwise add ε·max e/λ to the leverages and tr(H)."""
    return e > ROUNDING_EPS * jnp.finfo(e.dtype).eps * jnp.max(e)


def _ridge_coefficients(Fc, yc, lam, n, u, eig=None):
    """(eigenvalues of the Gram matrix / n, coefficients (L, N), residuals yc − Fc·a (rows, L),
    1 − diag(H_λ) (L, rows)) of min |Fc·a − yc|²/n + λ|a|² for every λ, from one
    eigendecomposition of the smaller of FcᵀFc/n and FcFcᵀ/n (padding rows of Fc and yc are
    zero: they add zero eigenvalues, whose directions Fcᵀ annihilates). H_λ = H_c + uuᵀ, H_c =
    Fc(FcᵀFc + nλ)⁻¹Fcᵀ, u = 1/√n on the live rows with an intercept (Fcᵀu = 0), else zero.
    `eig`: the eigendecomposition of FcᵀFc (not divided by n) when the caller has it."""
    rows, N = Fc.shape
    if N > rows:
        return _dual_ridge(Fc, yc, lam, n, u)
    if eig is None:
        e, V = jnp.linalg.eigh(Fc.T @ Fc / n)
    else:
        e, V = eig[0] / n, eig[1]
    d = e[None, :] + lam[:, None]  # (L, N)
    proj = V.T @ (Fc.T @ yc) / n  # (N,)
    coef = (V[None, :, :] * (proj[None, :] / d)[:, None, :]).sum(-1)
    FV = Fc @ V  # (rows, N): the rows × rows hat matrix is never formed
    w = _sized.where(_nonzero(e)[None, :], 1.0 / d, 0.0)
    return e, coef, yc[:, None] - Fc @ coef.T, 1.0 - w @ (FV**2).T / n - (u**2)[None, :]


def _dual_ridge(Fc, yc, lam, n, u):
    """`_ridge_coefficients` for n < N, from FcFcᵀ/n = U diag(e) Uᵀ: a = Fcᵀ(FcFcᵀ/n + λ)⁻¹y/n,
    I − H_c = U diag(λ/(e + λ)) Uᵀ. Residuals and 1 − H_jj come from that form, sums of
    nonnegative terms, so they keep their relative precision as H → I (small λ, near
    interpolation; the primal form has n ≥ N): on the null space of FcFcᵀ (λ/(e + λ) = 1),
    which holds u, the diagonal of its projector less uuᵀ is Σ_{e_m=0} (U_jm − u_j c_m)² with
    c = Uᵀu, not Σ_{e_m=0} U_jm² − 1/n."""
    e, U = jnp.linalg.eigh(Fc @ Fc.T / n)
    d = e[None, :] + lam[:, None]  # (L, rows)
    Uy = U.T @ yc
    alpha = (Uy / n)[None, :] / d @ U.T  # (L, rows)
    nz = _nonzero(e)
    w = _sized.where(nz[None, :], lam[:, None] / d, 1.0)  # λ/(e + λ), 1 on the null space
    resid = (w * Uy[None, :] @ U.T).T
    c = _sized.where(nz, 0.0, U.T @ u)
    null = jnp.sum(_sized.where(nz[None, :], 0.0, (U - u[:, None] * c[None, :]) ** 2), axis=1)
    slack = _sized.where(nz[None, :], w, 0.0) @ (U**2).T + null[None, :]
    return e, alpha @ Fc, resid, slack


def _check_ridge_args(F, y, lambdas, F_test, y_test, loss) -> None:
    if loss not in RIDGE_LOSSES:
        raise InputError(f"loss must be one of {RIDGE_LOSSES}, got {loss!r}")
    n, N = _checks.check_ndim("F", F, 2, "(n, N)")
    _checks.check_shape("y", y, (n,), "(n,)")
    L = _checks.check_ndim("lambdas", lambdas, 1, "(L,)")[0]
    if L == 0:
        raise InputError("lambdas must be non-empty")
    if _checks.is_concrete(lambdas) and not np.all(np.asarray(lambdas) > 0):
        raise InputError(f"lambdas must all be > 0, got min {np.min(np.asarray(lambdas))}")
    if (F_test is None) != (y_test is None):
        raise InputError("give both F_test and y_test, or neither")
    if F_test is not None:
        nt = _checks.check_ndim("F_test", F_test, 2, f"(n_test, {N})")[0]
        _checks.check_shape("F_test", F_test, (nt, N), "(n_test, N)")
        _checks.check_shape("y_test", y_test, (nt,), "(n_test,)")
