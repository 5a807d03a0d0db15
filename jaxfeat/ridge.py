"""Ridge regression of a second layer over a whole grid of λ from one eigendecomposition.

â(λ) = argmin_a (1/n)|y − F a|² + λ|a|² (MATH §4.1). With the eigendecomposition of the smaller
Gram matrix, FᵀF/n = V diag(e) Vᵀ (n ≥ N) or FFᵀ/n = U diag(e) Uᵀ (n < N), every λ costs one
diagonal rescaling, not one solve.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _checks
from ._checks import InputError

__all__ = ["ridge_path"]


def ridge_path(
    F: ArrayLike,
    y: ArrayLike,
    lambdas: ArrayLike,
    F_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    *,
    intercept: bool = True,
) -> dict[str, Float[Array, ...]]:
    """Ridge solutions and errors for every λ in `lambdas`.

    **Arguments:** `F` (n, N) training features, `y` (n,), `lambdas` (L,) all > 0, optional test
    set `F_test` (n_test, N), `y_test`. With `intercept`, F and y are centred on the training
    means (the intercept is not penalised).

    **Returns:** `coef` (L, N), `intercept` (L,), `train_mse` (L,), `gram_eigenvalues` (the
    eigenvalues of the (centred) Gram matrix divided by n, ascending: the squared singular values
    of F/√n) and, with a test set, `test_mse` (L,) and `best` (index of the smallest test error).
    """
    _check_ridge_args(F, y, lambdas, F_test, y_test)
    F, y, lam = jnp.asarray(F), jnp.asarray(y), jnp.asarray(lambdas, dtype=jnp.asarray(F).dtype)
    N = F.shape[1]
    fm = jnp.mean(F, axis=0) if intercept else jnp.zeros(N, F.dtype)
    ym = jnp.mean(y) if intercept else jnp.zeros((), F.dtype)
    Fc, yc = F - fm[None, :], y - ym
    e, coef = _ridge_coefficients(Fc, yc, lam)
    b0 = ym - coef @ fm
    out = {
        "coef": coef,
        "intercept": b0,
        "gram_eigenvalues": e,
        "train_mse": jnp.mean((F @ coef.T + b0[None, :] - y[:, None]) ** 2, axis=0),
    }
    if F_test is not None:
        pred = jnp.asarray(F_test) @ coef.T + b0[None, :]
        out["test_mse"] = jnp.mean((pred - jnp.asarray(y_test)[:, None]) ** 2, axis=0)
        out["best"] = jnp.argmin(out["test_mse"])
    return out


def _ridge_coefficients(Fc, yc, lam):
    """(eigenvalues of the Gram matrix / n, coefficients (L, N)) of min |Fc·a − yc|²/n + λ|a|²
    for every λ, from one eigendecomposition of the smaller of FcᵀFc/n and FcFcᵀ/n."""
    n, N = Fc.shape
    if N <= n:
        e, V = jnp.linalg.eigh(Fc.T @ Fc / n)
        proj = V.T @ (Fc.T @ yc) / n  # (N,)
        return e, (V[None, :, :] * (proj[None, :] / (e[None, :] + lam[:, None]))[:, None, :]).sum(
            -1
        )
    e, U = jnp.linalg.eigh(Fc @ Fc.T / n)  # a = Fcᵀ (FcFcᵀ/n + λ)⁻¹ y/n
    proj = U.T @ yc / n
    alpha = (proj[None, :] / (e[None, :] + lam[:, None])) @ U.T  # (L, n)
    return e, alpha @ Fc


def _check_ridge_args(F, y, lambdas, F_test, y_test) -> None:
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
