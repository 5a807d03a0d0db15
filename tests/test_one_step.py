"""Moniri et al. one-step spikes (MATH §4): theory, the step, ridge, spectra, spike counts."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat import theory
from jaxfeat.algorithms import one_step_spikes


def test_predicted_spike_count_is_exact_at_every_boundary():
    assert [theory.spike_threshold(k) for k in range(1, 7)] == [
        Fraction(0),
        Fraction(1, 4),
        Fraction(1, 3),
        Fraction(3, 8),
        Fraction(2, 5),
        Fraction(5, 12),
    ]
    for k in range(1, 30):
        t = theory.spike_threshold(k)
        assert theory.predicted_spike_count(t) == k - 1 and theory.on_boundary(t)
        assert theory.predicted_spike_count(t + Fraction(1, 10**9)) == k
        assert theory.spike_exponent(t, k) == 0
    assert (
        theory.predicted_spike_count(0.39),
        theory.predicted_spike_count(0.4),
        theory.predicted_spike_count(0.41),
    ) == (
        4,
        4,
        5,
    )
    assert theory.on_boundary(0.4) and not theory.on_boundary(0.39)
    assert [theory.predicted_spike_count(a) for a in (0.0, 0.1, 0.2, 0.3)] == [0, 1, 1, 2]
    with pytest.raises(ValueError, match="alpha"):
        theory.predicted_spike_count(0.5)
    with pytest.raises(ValueError, match="alpha"):
        theory.predicted_spike_count(-0.1)


def test_spike_strength_scaling_exponent():
    """θ_k/bulk ∝ n^{kα − (k−1)/2} when η = c n^α and ñ, N ∝ n (MATH §4.2)."""
    mu = jf.activations.elu.mean_derivatives(4)
    for alpha in (0.25, 0.4):
        r = [
            theory.spike_strengths(mu, eta=n**alpha, zeta_norm=1.0, n_tilde=n, width=n // 4)
            for n in (1000, 16000)
        ]
        for k in range(1, 5):
            slope = np.log(r[1][k - 1] / r[0][k - 1]) / np.log(16)
            assert slope == pytest.approx(float(theory.spike_exponent(alpha, k)), abs=1e-12)


def dist_for(d):
    return jf.data.SingleIndex(np.eye(d)[0], [0, 1.0, 0.5 * np.sqrt(2)], noise=0.1)


@pytest.mark.parametrize("scale", ["1", "1/sqrt(width)", "1/width"])
@pytest.mark.slow
def test_update_is_a_gradient_step_of_the_stated_loss(getkey, scale):
    d, n, N, alpha, c = 12, 50, 9, 0.3, 2.0
    key = getkey()
    res = jf.one_step(
        key, dist_for(d), n=n, width=N, activation="relu", alpha=alpha, c=c, output_scale=scale
    )
    X, y = dist_for(d).sample(jax.random.split(key, 3)[0], n)  # the step's own data
    s = {"1": 1.0, "1/sqrt(width)": 1 / np.sqrt(N), "1/width": 1 / N}[scale]
    loss = lambda W: jnp.sum((y - s * jax.nn.relu(X @ W.T) @ res.a) ** 2) / (2 * n)  # noqa
    eta = c * n**alpha
    np.testing.assert_allclose(res.W1, res.W0 - (eta / s) * jax.grad(loss)(res.W0), atol=1e-12)
    # MATH §4.1's closed form: W₀ + (η/n) diag(a)[σ'(W₀Xᵀ) ⊙ 1rᵀ] X
    r = y - s * jax.nn.relu(X @ res.W0.T) @ res.a
    explicit = res.W0 + (eta / n) * (res.a[:, None] * ((res.W0 @ X.T > 0) * r[None, :])) @ X
    np.testing.assert_allclose(res.W1, explicit, atol=1e-12)
    np.testing.assert_allclose(res.zeta, X.T @ r / n, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(res.W0, axis=1), 1.0, atol=1e-12)


@pytest.mark.slow
def test_one_step_vmaps_over_seeds_alpha_c_without_recompiling(getkey):
    from conftest import compile_log

    dist = dist_for(8)
    f = jax.jit(jax.vmap(lambda k, a, c: jf.one_step(k, dist, n=40, width=6, alpha=a, c=c).W1))
    keys = jax.random.split(getkey(), 3)
    out = f(keys, jnp.array([0.0, 0.2, 0.4]), jnp.array([1.0, 2.0, 4.0]))
    assert out.shape == (3, 6, 8)
    with compile_log() as msgs:
        f(keys, jnp.array([0.1, 0.3, 0.35]), jnp.array([0.5, 1.0, 1.0]))
    assert not msgs
    single = jf.one_step(keys[1], dist, n=40, width=6, alpha=0.2, c=2.0).W1
    np.testing.assert_allclose(out[1], single, atol=1e-12)


@pytest.mark.parametrize("n, N", [(60, 20), (15, 40)])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.slow
def test_ridge_path_equals_per_lambda_solve(getkey, n, N, intercept):
    F = jax.random.normal(getkey(), (n, N))
    y = jax.random.normal(getkey(), (n,))
    Ft, yt = jax.random.normal(getkey(), (30, N)), jax.random.normal(getkey(), (30,))
    lams = jnp.array([1e-4, 1e-2, 1.0])
    out = jf.ridge_path(F, y, lams, Ft, yt, intercept=intercept)
    for i, lam in enumerate(lams):
        fm = F.mean(0) if intercept else jnp.zeros(N)
        ym = y.mean() if intercept else 0.0
        Fc = F - fm[None, :]
        a = jnp.linalg.solve(Fc.T @ Fc / n + lam * jnp.eye(N), Fc.T @ (y - ym) / n)
        np.testing.assert_allclose(out["coef"][i], a, rtol=1e-8, atol=1e-10)
        pred = Ft @ a + (ym - fm @ a)
        assert float(out["test_mse"][i]) == pytest.approx(
            float(jnp.mean((pred - yt) ** 2)), rel=1e-8
        )
    assert int(out["best"]) == int(jnp.argmin(out["test_mse"]))
    Fc = np.asarray(F) - (np.asarray(F).mean(0) if intercept else 0.0)
    top = np.linalg.svd(Fc, compute_uv=False)[0]
    assert float(jnp.sqrt(n * out["gram_eigenvalues"][-1])) == pytest.approx(top, rel=1e-10)


def test_feature_spectrum_matches_numpy_svd(getkey):
    for shape in ((50, 20), (20, 50)):
        F = jax.random.normal(getkey(), shape) + 1.0
        s, U, V = jf.feature_spectrum(F, 5)
        Fc = np.asarray(F) - np.asarray(F).mean(0)
        ref = np.linalg.svd(Fc, compute_uv=False)[:5]
        np.testing.assert_allclose(s, ref, rtol=1e-10)
        np.testing.assert_allclose(U.T @ Fc @ V, np.diag(ref), atol=1e-9)


@pytest.mark.paper  # paper size in float64 (n = 4000, N = 1000): 2.5 min; `pytest -m paper`
@pytest.mark.parametrize(
    "act, alphas, counts",
    [
        ("relu", (0.0, 0.2, 0.4), (0, 1, 2)),  # MATH §4.4: relu c = 1 → 0, 1, 2 (He_1, He_2)
        ("tanh", (0.2, 0.4), (1, 1)),  # tanh has no He_2 spike: μ'_2 = 0
    ],
)
def test_spike_counts_reproduce_math_4_4(act, alphas, counts):
    """n = ñ = 4000, d = N = 1000, f* = He_1 + ½He_2, σ_ε = 0.1, c = 1, MATH §4.1's 1/√N scale;
    two seeds each. The full seed-averaged grid belongs in the notebook."""
    dist = dist_for(1000)
    # one compiled program, called per seed: vmapping this whole pipeline over seeds hangs in
    # jaxlib 0.10.2's CPU runtime (a deadlock between concurrent ops, see the closing note)
    f = jax.jit(
        lambda key, a: one_step_spikes(
            key,
            dist,
            n=4000,
            n_tilde=4000,
            width=1000,
            n_test=500,
            activation=act,
            alpha=a,
            c=1.0,
            output_scale="1/sqrt(width)",
        )
    )
    keys = jax.random.split(jax.random.key(0), 2)
    for alpha, count in zip(alphas, counts):
        r = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[f(k, alpha) for k in keys])
        assert list(np.asarray(r["n_outliers"])) == [count, count], (act, alpha, r["n_outliers"])
        if count:
            assert np.all(np.asarray(r["capture"][:, 0]) > 0.8)  # spike 1 is He_1(X̃ζ̂)
        if act == "relu" and count == 2:
            assert np.all(np.asarray(r["capture"][:, 1]) > 0.8)  # spike 2 is He_2
            assert np.all(np.asarray(r["test_mse_w1"]) < 0.55)  # learns the quadratic part
            assert np.all(np.asarray(r["test_mse_w0"]) > 0.8)  # random features do not


def test_giant_step_alpha_one_half_is_eta_c_sqrt_n():
    """α = ½ (Dandi et al.'s giant step, issue 15) is accepted: η = c·√n, the same step as
    passing that η directly; α just above ½ is refused."""
    n, c = 64, 0.7
    a = jf.one_step(jax.random.key(1), dist_for(5), n=n, width=8, alpha=0.5, c=c)
    b = jf.one_step(jax.random.key(1), dist_for(5), n=n, width=8, eta=c * np.sqrt(n))
    np.testing.assert_allclose(a.W1, b.W1, rtol=1e-13)
    assert not np.allclose(a.W1, a.W0)


BAD = [
    (lambda: jf.one_step(jax.random.key(0), dist_for(5), n=10, width=4, alpha=0.51), "alpha"),
    (lambda: jf.one_step(jax.random.key(0), dist_for(5), n=10, width=4, alpha=-0.1), "alpha"),
    (lambda: jf.one_step(jax.random.key(0), dist_for(5), n=0, width=4), "n must be positive"),
    (lambda: jf.one_step(jax.random.key(0), dist_for(5), n=10, width=-2), "width must be positive"),
    (lambda: jf.feature_spectrum(np.ones((5, 3)), 4), "k must be <= min"),
    (lambda: jf.ridge_path(np.ones((5, 3)), np.ones(5), np.array([0.1, 0.0])), "lambdas"),
    (lambda: jf.ridge_path(np.ones((5, 3)), np.ones(4), np.array([0.1])), "y must have shape"),
    (lambda: jf.count_spikes(np.ones((5, 3)), np.ones((4, 2)), k=2), "H must have shape"),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_input(call, match, no_compile):
    dist_for(5)  # the inputs' own arrays compile outside the block: only the call is checked
    with no_compile(), pytest.raises(ValueError, match=match):
        call()
