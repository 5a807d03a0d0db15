"""G(w, b) = E[y x 1{w·x > b}] (MATH §3) against Monte Carlo, brute force and special cases."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf


def assert_mc_agrees(key, dist, W, b, n=1_000_000, z=5.0):
    exact = jf.population_gradient(dist, W, b)
    mc, se = jf.monte_carlo_gradient(key, dist, W, b, n, chunk=50_000)
    zmax = float(jnp.max(jnp.abs(exact - mc) / jnp.maximum(se, 1e-12)))
    assert zmax < z, zmax
    return exact


def random_neurons(key, m, d, bias=0.5):
    kw, kb = jax.random.split(key)
    return jax.random.normal(kw, (m, d)) / math.sqrt(d), bias * jax.random.normal(kb, (m,))


@pytest.mark.slow
def test_mixture_matches_monte_carlo(getkey):
    d = 6
    means = np.asarray(jax.random.normal(getkey(), (4, d)))
    dist = jf.data.GaussianMixture(means, [0.5, 1.0, 0.8, 1.5], [1, -1, -1, 1], [1, 2, 3, 4])
    W, b = random_neurons(getkey(), 8, d)
    assert_mc_agrees(getkey(), dist, W, b)


def test_mixture_zero_neuron_and_xor_orthogonality():
    dist = jf.data.GaussianMixture.xor(5, sigma=0.3)
    # w ⊥ every mean and b = 0: the two label classes cancel exactly (MATH §3.1)
    G = jf.population_gradient(dist, jnp.eye(5)[2:4], jnp.zeros(2))
    np.testing.assert_allclose(G, 0.0, atol=1e-15)
    means = np.asarray(dist.means)
    G0 = jf.population_gradient(dist, jnp.zeros((2, 5)), jnp.array([-0.1, 0.1]))
    np.testing.assert_allclose(G0[0], (0.25 * np.asarray(dist.labels)) @ means, atol=1e-15)
    np.testing.assert_allclose(G0[1], 0.0, atol=1e-15)


@pytest.mark.slow
def test_single_index_hermite_matches_monte_carlo(getkey):
    d = 5
    dist = jf.data.SingleIndex(np.arange(1.0, d + 1), [0.3, 1.0, -0.6, 0.5, 0.25], noise=0.2)
    W, b = random_neurons(getkey(), 6, d, bias=0.7)
    assert_mc_agrees(getkey(), dist, W, b)


@pytest.mark.slow
def test_single_index_special_cases(getkey):
    """He_1: G = Φ̄(τ)β + ρτφ(τ)ŵ; He_2: G = φ(τ)[ρ²(τ²−1)ŵ + 2ρβ]; odd k ≥ 3 at b = 0: G = 0."""
    from scipy.special import ndtr

    d = 4
    beta = np.array([0.6, 0.8, 0, 0])
    W, b = map(np.asarray, random_neurons(getkey(), 5, d, bias=0.8))
    norms = np.linalg.norm(W, axis=1)
    what, tau = W / norms[:, None], b / norms
    rho = what @ beta
    phi = np.exp(-(tau**2) / 2) / math.sqrt(2 * math.pi)
    g1 = jf.population_gradient(jf.data.SingleIndex(beta, [0, 1.0]), W, b)
    np.testing.assert_allclose(
        g1, ndtr(-tau)[:, None] * beta + (rho * tau * phi)[:, None] * what, atol=1e-14
    )
    g2 = jf.population_gradient(jf.data.SingleIndex(beta, [0, 0, math.sqrt(2)]), W, b)
    ref = phi[:, None] * ((rho**2 * (tau**2 - 1))[:, None] * what + 2 * rho[:, None] * beta)
    np.testing.assert_allclose(g2, ref, atol=1e-14)
    for k in (3, 5, 7):
        c = np.zeros(k + 1)
        c[k] = 1.0
        g = jf.population_gradient(jf.data.SingleIndex(beta, c), W, np.zeros(5))
        np.testing.assert_allclose(g, 0.0, atol=1e-14)


@pytest.mark.parametrize("target", ["relu", "sign"])
@pytest.mark.slow
def test_single_index_relu_sign_match_monte_carlo(getkey, target):
    dist = jf.data.SingleIndex(np.array([1.0, 2.0, -1.0, 0.5]), target=target)
    W, b = random_neurons(getkey(), 6, 4, bias=0.6)
    W = W.at[0].set(dist.beta * 0.7).at[1].set(-dist.beta)  # parallel and antiparallel (s = 0)
    assert_mc_agrees(getkey(), dist, W, b)


@pytest.mark.slow
def test_relu_target_quadrature_equals_hermite_series(getkey):
    """The relu target's Hermite series converges to the quadrature value (MATH §3.2: K = 40
    errs by ~2e-10); slowly only for nearly (anti)parallel neurons, |ρ| → 1, which are left to the
    Monte-Carlo test above."""
    beta = np.array([0.0, 1.0, 0.0])
    W, b = random_neurons(getkey(), 12, 3, bias=0.5)
    rho = np.asarray(W[:, 1] / jnp.linalg.norm(W, axis=1))
    keep = np.abs(rho) < 0.95
    assert keep.sum() >= 6
    quad = jf.population_gradient(jf.data.SingleIndex(beta, target="relu"), W, b)
    herm = jf.population_gradient(
        jf.data.SingleIndex(beta, jf.hermite_coefficients("relu", 160)), W, b
    )
    np.testing.assert_allclose(quad[keep], herm[keep], rtol=0, atol=1e-12)  # observed 1.0e-14


def test_multi_index_additive_matches_monte_carlo(getkey):
    B = np.array([[1.0, 0, 0, 0, 0], [0, 0.6, 0.8, 0, 0], [0, 0, 0, 1.5, 0]])  # a non-unit row
    herm = np.array([[0.0, 1.0, 0.3], [0.1, 0.0, -0.8], [0.0, 0.5, 0.2]])
    dist = jf.data.MultiIndex(B, herm)
    W, b = random_neurons(getkey(), 6, 5, bias=0.5)
    assert_mc_agrees(getkey(), dist, W, b)


def brute_force_parity(d, A, W, b, pattern=None):
    """Independent reference: loop over all 2^d points in NumPy (strict inequality)."""
    W, b = np.asarray(W), np.asarray(b)
    pts = np.array(list(itertools.product([1.0, -1.0], repeat=d)))
    if pattern is not None:
        pts = pts[np.all(pts[:, A] == pattern, axis=1)]
    y = np.prod(pts[:, A], axis=1)
    active = pts @ W.T > b
    return (active.T * y) @ pts / len(pts)


def test_parity_enumeration_equals_brute_force(getkey):
    d, A = 10, [0, 3, 5, 6]
    dist = jf.data.SparseParity(d, A)
    W = jnp.round(3 * jax.random.normal(getkey(), (6, d)))  # integer weights: many exact ties
    b = jnp.array([0.0, 1.0, -2.0, 3.0, 0.0, 2.0])
    G = jf.population_gradient(dist, W, b)
    np.testing.assert_allclose(G, brute_force_parity(d, A, W, b), atol=1e-15)
    # the strict inequality matters: the ties Σx = 2 are excluded (b = 2 − 1e-9 includes them)
    Wt = jnp.ones((1, d))
    strict = jf.population_gradient(dist, Wt, jnp.full(1, 2.0))
    np.testing.assert_allclose(strict, brute_force_parity(d, A, Wt, np.full(1, 2.0)), atol=1e-15)
    ge = jf.population_gradient(dist, Wt, jnp.full(1, 2.0 - 1e-9))
    assert np.max(np.abs(ge - strict)) > 1e-3


def test_structured_parity_with_flips(getkey):
    d, A = 9, [1, 2, 4]
    pats = np.array([[1.0, 1, 1], [-1, -1, 1]])
    dist = jf.data.SparseParity(d, A, structured_weight=0.3, patterns=pats, flip=0.1)
    W, b = random_neurons(getkey(), 5, d, bias=0.3)
    G = jf.population_gradient(dist, W, b)
    ref = 0.7 * brute_force_parity(d, A, W, b) + 0.3 * np.mean(
        [brute_force_parity(d, A, W, b, p) for p in pats], axis=0
    )
    np.testing.assert_allclose(G, 0.8 * ref, atol=1e-14)
    assert_mc_agrees(getkey(), dist, W, b, n=400_000)


def test_parity_golden_d14(getkey):
    d, A = 14, [0, 1, 2, 3]
    dist = jf.data.SparseParity(d, A)
    W, b = random_neurons(getkey(), 3, d, bias=0.2)
    np.testing.assert_allclose(
        jf.population_gradient(dist, W, b), brute_force_parity(d, A, W, b), atol=1e-15
    )


def test_empirical_gradient_is_the_finite_sample_mean(getkey):
    X = jax.random.normal(getkey(), (50, 4))
    y = jnp.sign(jax.random.normal(getkey(), (50,)))
    W, b = random_neurons(getkey(), 3, 4)
    ref = np.array(
        [np.mean([y[j] * X[j] * (W[i] @ X[j] > b[i]) for j in range(50)], axis=0) for i in range(3)]
    )
    np.testing.assert_allclose(jf.empirical_gradient(X, y, W, b), ref, atol=1e-14)


def test_gradient_is_jittable_and_vmappable_over_neuron_sets(getkey):
    dist = jf.data.GaussianMixture.xor(8)
    Ws = jax.random.normal(getkey(), (3, 10, 8))
    bs = jax.random.normal(getkey(), (3, 10))
    G = jax.jit(jax.vmap(lambda W, b: jf.population_gradient(dist, W, b)))(Ws, bs)
    np.testing.assert_allclose(G[1], jf.population_gradient(dist, Ws[1], bs[1]), atol=1e-14)


def test_gradient_feature_fractions_xor(getkey):
    """MATH §6.2's XOR set-up: most neurons' G points near one of ±μ_1, ±μ_2."""
    d, m = 50, 4000
    dist = jf.data.GaussianMixture.xor(d)
    W, b = random_neurons(getkey(), m, d, bias=0.1)
    D = jnp.concatenate([jnp.eye(d)[:2], -jnp.eye(d)[:2]])
    frac, member = jf.gradient_feature_set(dist, W, b, D, gamma=0.1, B_G=0.0, p=0.05)
    G = jf.population_gradient(dist, W, b)
    cos = np.asarray((G @ D.T) / jnp.linalg.norm(G, axis=1)[:, None])
    pos = np.asarray(b) >= 0
    np.testing.assert_allclose(frac[:, 0], np.mean((cos >= 0.9) & pos[:, None], axis=0))
    np.testing.assert_allclose(frac[:, 1], np.mean((cos >= 0.9) & ~pos[:, None], axis=0))
    assert 0.4 < float(frac.sum()) < 0.65  # MATH §6.2: 54.5% of neurons have best cosine > 0.9
    assert np.array_equal(member, frac >= 0.05)
    big = jf.gradient_feature_fractions(G, b, D, gamma=0.1, B_G=1e9)
    assert float(big.sum()) == 0.0


BAD = [
    (
        lambda: jf.population_gradient(jf.data.GaussianMixture.xor(5), np.ones((3, 4)), np.ones(3)),
        ValueError,
        r"W must have shape \(m, dim\) = \(m, 5\)",
    ),
    (
        lambda: jf.population_gradient(jf.data.GaussianMixture.xor(5), np.ones((3, 5)), np.ones(4)),
        ValueError,
        r"b must have shape \(m,\)",
    ),
    (
        lambda: jf.population_gradient(
            jf.data.GaussianMixture.xor(5), np.ones((3, 5)), np.ones((3, 1))
        ),
        ValueError,
        "b must have shape",
    ),
    (
        lambda: jf.population_gradient(
            jf.data.LinearSeparable(np.ones(3), 0.1), np.ones((2, 3)), np.ones(2)
        ),
        ValueError,
        "LinearSeparable",
    ),
    (
        lambda: jf.population_gradient(
            jf.data.SingleIndex(np.ones(3), target=jnp.tanh), np.ones((2, 3)), np.ones(2)
        ),
        ValueError,
        "callable target",
    ),
    (
        lambda: jf.population_gradient(jf.data.SparseParity(21, [0]), np.ones((2, 21)), np.ones(2)),
        ValueError,
        "dim <= 20",
    ),
    (lambda: jf.population_gradient("xor", np.ones((2, 3)), np.ones(2)), TypeError, "dist"),
    (
        lambda: jf.population_gradient(
            jf.data.GaussianMixture.xor(3), np.full((2, 3), np.nan), np.ones(2)
        ),
        ValueError,
        "W contains NaN",
    ),
    (lambda: jf.data.SingleIndex(np.ones(3), target="tanh"), ValueError, "target"),
    (
        lambda: jf.monte_carlo_gradient(
            jax.random.key(0), jf.data.GaussianMixture.xor(3), np.ones((2, 3)), np.ones(2), 0
        ),
        ValueError,
        "n_samples",
    ),
    (
        lambda: jf.empirical_gradient(np.ones((4, 3)), np.ones(4), np.ones((2, 5)), np.ones(2)),
        ValueError,
        "W must have shape",
    ),
    (
        lambda: jf.gradient_feature_fractions(
            np.ones((4, 3)), np.ones(4), np.ones((2, 5)), gamma=0.1, B_G=0.0
        ),
        ValueError,
        "directions",
    ),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_input(call, exc, match, no_compile):
    with no_compile(), pytest.raises(exc, match=match):
        call()


def test_a_fraction_threshold_above_one_is_refused(no_compile):
    dist = jf.data.GaussianMixture.xor(4)
    W, b, D = np.ones((2, 4)), np.zeros(2), np.eye(4)[:1]
    with no_compile(), pytest.raises(ValueError, match="p must be a fraction in"):
        jf.gradient_feature_set(dist, W, b, D, gamma=0.1, B_G=0.0, p=1.5)
