"""Choosing λ without the test set (issue #24 item 4, MATH §4.5): `ridge_path`'s exact
leave-one-out error and GCV, from its one eigendecomposition, against independent references in
float64 — refits without each row, an explicitly formed hat matrix — on live rows only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat.ridge import ridge_fit

FORMS = {"primal": (14, 5), "dual": (6, 11)}  # (n, N): n ≥ N eigendecomposes GᵀG, else GGᵀ
LAMS = jnp.array([0.03, 0.2, 1.0, 4.0])
SCALE = 0.7


def problem(key, n, N):
    """Features and labels far from centred, so that the intercept matters."""
    k = jax.random.split(key, 3)
    F = jax.random.normal(k[0], (n, N)) + jnp.linspace(-1.0, 2.0, N)[None, :]
    y = F @ jax.random.normal(k[1], (N,)) + 0.3 * jax.random.normal(k[2], (n,)) + 1.5
    return F, y


def rel_err(got, ref) -> float:
    return float(np.max(np.abs(np.asarray(got) - np.asarray(ref)) / np.abs(np.asarray(ref))))


def brute_loo(F, y, lam, loss, intercept):
    """Refit without row j, predict row j: the penalty nλ|a|² of the full sum of squares is kept
    (`loss="mean"` on n − 1 rows takes λ·n/(n − 1))."""
    n = F.shape[0]
    lam_j = lam * n / (n - 1) if loss == "mean" else lam
    sq = []
    for j in range(n):
        keep = np.arange(n) != j
        fit = ridge_fit(
            F[keep], y[keep], lam_j, intercept=intercept, loss=loss, feature_scale=SCALE
        )
        sq.append((y[j] - (SCALE * F[j] @ fit["coef"] + fit["intercept"])) ** 2)
    return np.mean(sq)


def explicit_hat(F, lam, n, intercept):
    """H_λ = 11ᵀ/n + G_c(G_cᵀG_c + nλ)⁻¹G_cᵀ (intercept) or G(GᵀG + nλ)⁻¹Gᵀ, λ of loss="mean"."""
    G = np.asarray(SCALE * F)
    if intercept:
        G = G - G.mean(0)
    H = G @ np.linalg.solve(G.T @ G + n * lam * np.eye(G.shape[1]), G.T)
    return H + (np.ones((n, n)) / n if intercept else 0.0)


@pytest.mark.parametrize("loss", ["mean", "sum"])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.slow
def test_loo_equals_refits_without_each_row(getkey, form, intercept, loss):
    F, y = problem(getkey(), *FORMS[form])
    lams = LAMS * (F.shape[0] if loss == "sum" else 1.0)
    out = jf.ridge_path(F, y, lams, intercept=intercept, loss=loss, feature_scale=SCALE)
    ref = [brute_loo(F, y, lam, loss, intercept) for lam in lams]
    assert rel_err(out["loo_mse"], ref) < 1e-10
    assert int(out["best_loo"]) == int(np.argmin(ref))


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("form", FORMS)
def test_gcv_and_leverages_against_an_explicit_hat_matrix(getkey, form, intercept):
    F, y = problem(getkey(), *FORMS[form])
    n = F.shape[0]
    out = jf.ridge_path(F, y, LAMS, intercept=intercept, feature_scale=SCALE)
    gcv, loo = [], []
    for lam in np.asarray(LAMS):
        H = explicit_hat(F, lam, n, intercept)
        r = np.asarray(y) - H @ np.asarray(y)
        gcv.append(np.mean(r**2) / (1.0 - np.trace(H) / n) ** 2)
        loo.append(np.mean((r / (1.0 - np.diag(H))) ** 2))
    assert rel_err(out["gcv"], gcv) < 1e-10
    assert rel_err(out["loo_mse"], loo) < 1e-10
    assert int(out["best_gcv"]) == int(np.argmin(gcv))


# (n live, N, rows): the last one pads a dual problem (n < N) into a primal one (rows ≥ N)
PADDED = {"primal": (40, 9, 64), "dual": (9, 40, 30), "dual padded to primal": (9, 20, 30)}


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("shape", PADDED)
@pytest.mark.slow
def test_padding_rows_count_in_nothing(getkey, shape, intercept):
    n, N, rows = PADDED[shape]
    F, y = problem(getkey(), n, N)
    junk = 1e3 * jax.random.normal(getkey(), (rows - n, N + 1))
    Fp, yp = jnp.concatenate([F, junk[:, :N]]), jnp.concatenate([y, junk[:, N]])
    keys = ("loo_mse", "gcv", "best_loo", "best_gcv", "train_mse")
    for loss in ("mean", "sum"):
        conv = dict(intercept=intercept, loss=loss, feature_scale=SCALE)
        lams = LAMS * (n if loss == "sum" else 1.0)
        ref = jf.ridge_path(F, y, lams, **conv)
        got = jax.jit(lambda n: jf.ridge_path(Fp, yp, lams, n=n, **conv))(jnp.int32(n))
        for k in keys:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=0, err_msg=k)


# (N, noise) with n = 300: the primal and the dual form, both with a clear interior optimum
@pytest.mark.parametrize(("N", "noise"), [(120, 1.0), (400, 0.5)])
@pytest.mark.slow
def test_loo_and_gcv_choose_a_sane_lambda(getkey, N, noise):
    n = 300
    beta = jax.random.normal(getkey(), (N,)) / jnp.sqrt(N)
    X, Xt = jax.random.normal(getkey(), (n, N)), jax.random.normal(getkey(), (4000, N))
    y = X @ beta + noise * jax.random.normal(getkey(), (n,))
    lams = jnp.logspace(-4, 2, 31)  # the Bayes-optimal λ = noise²·N/n lies well inside
    out = jf.ridge_path(X, y, lams, Xt, Xt @ beta)
    test = np.asarray(out["test_mse"])
    for best in ("best_loo", "best_gcv"):
        assert 0 < int(out[best]) < len(lams) - 1, best
        assert test[int(out[best])] <= 1.25 * test.min(), best
    assert test[0] > 1.5 * test.min() and test[-1] > 1.5 * test.min()  # the grid discriminates


def test_near_square_float32_features():
    """n = 1000 rows, N = 990 ReLU features in float32: their smallest Gram eigenvalues are a few
    ε·max e, genuine; leave-one-out must count them (a cutoff at rows·ε·max e dropped them and
    chose λ = 1e-7 with a LOO error 0.17× float64's) and choose float64's λ."""
    rng = np.random.default_rng(0)
    X, W = rng.standard_normal((1000, 50)), rng.standard_normal((50, 990)) / np.sqrt(50)
    F = np.maximum(X @ W, 0.0)
    y = X[:, 0] + 0.5 * (X[:, 1] ** 2 - 1) + 0.3 * rng.standard_normal(1000)
    lams = np.logspace(-7, 0, 15)
    ref = jf.ridge.ridge_path(F, y, lams)
    got = jf.ridge.ridge_path(*(jnp.asarray(a, jnp.float32) for a in (F, y, lams)))
    assert got["loo_mse"].dtype == jnp.float32
    assert int(got["best_loo"]) == int(ref["best_loo"])
    best = int(ref["best_loo"])
    assert float(got["loo_mse"][best]) == pytest.approx(float(ref["loo_mse"][best]), rel=1e-3)
