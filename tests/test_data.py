"""Distributions: sample statistics within Monte-Carlo standard errors; bad input.

Each check is |estimate − truth| < 5 standard errors, the error estimated from the same samples
(a false alarm has probability < 1e-6; seeds are fixed, so runs are deterministic).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

import jaxfeat as jf

N = 200_000


def assert_mean(samples, truth, z=5.0):
    samples = np.asarray(samples, dtype=np.float64)
    se = samples.std(ddof=1) / math.sqrt(samples.shape[0])
    assert abs(samples.mean() - truth) < z * max(se, 1e-15), (samples.mean(), truth, se)


def test_single_index_hermite_target(getkey):
    beta = np.array([3.0, 4.0, 0, 0, 0, 0])  # normalised to (0.6, 0.8, 0...)
    c = np.array([0.3, 1.0, 0.5, -0.2])
    dist = jf.data.SingleIndex(beta, c, noise=0.5)
    np.testing.assert_allclose(dist.beta, beta / 5)
    X, y = dist.sample(getkey(), N)
    assert X.shape == (N, 6) and y.shape == (N,)
    z = np.asarray(X @ dist.beta)
    H = jf.hermite_polynomials(z, 4)
    for k in range(5):  # E[y h_k(β·x)] = c_k (orthonormality; noise independent)
        assert_mean(np.asarray(y) * H[:, k], c[k] if k < 4 else 0.0)
    assert_mean(np.asarray(y) ** 2, np.sum(c**2) + 0.25)
    assert_mean(np.asarray(X[:, 2]) ** 2, 1.0)


def test_single_index_callable_target(getkey):
    dist = jf.data.SingleIndex(np.eye(4)[1], target=jax.nn.relu)
    X, y = dist.sample(getkey(), N)
    np.testing.assert_allclose(y, jax.nn.relu(X[:, 1]))
    assert_mean(y, 1 / math.sqrt(2 * math.pi))


def test_multi_index_additive_and_callable(getkey):
    B = np.eye(5)[:2]
    herm = np.array([[0.0, 1.0, 0.5], [0.2, 0.0, -1.0]])
    dist = jf.data.MultiIndex(B, herm, noise=0.1)
    X, y = dist.sample(getkey(), N)
    assert_mean(y, 0.2)
    assert_mean(np.asarray(y) * np.asarray(X[:, 0]), 1.0)
    assert_mean(np.asarray(y) * (np.asarray(X[:, 1]) ** 2 - 1) / math.sqrt(2), -1.0)
    prod = jf.data.MultiIndex(B, target=lambda Z: Z[..., 0] * Z[..., 1])
    X, y = prod.sample(getkey(), 1000)
    np.testing.assert_allclose(y, X[:, 0] * X[:, 1])


def test_teacher_network(getkey):
    net = jf.TwoLayer.init(getkey(), 6, 4, "relu")
    dist = jf.data.Teacher(net, noise=0.2)
    X, y = dist.sample(getkey(), N)
    # E f(x) = Σ a_i |w_i| /√(2π) for a bias-free relu teacher
    assert_mean(y, float(np.sum(net.a * np.linalg.norm(net.W, axis=1))) / math.sqrt(2 * math.pi))
    assert_mean((np.asarray(y) - np.asarray(net(X))) ** 2, 0.04)


def test_gaussian_mixture_moments(getkey):
    means = np.array([[2.0, 0, 0], [0, -1.0, 0], [0, 0, 0.5]])
    dist = jf.data.GaussianMixture(means, [0.5, 1.0, 2.0], [1.0, -1.0, 1.0], [1.0, 2.0, 1.0])
    np.testing.assert_allclose(dist.weights, [0.25, 0.5, 0.25])
    X, y = dist.sample(getkey(), N)
    X, y = np.asarray(X), np.asarray(y)
    assert_mean(y == 1, 0.5)  # label balance
    p = np.array([0.25, 0.5, 0.25])
    mu = p @ means
    second = sum(p[j] * (means[j] ** 2 + np.array([0.25, 1.0, 4.0])[j]) for j in range(3))
    for i in range(3):
        assert_mean(X[:, i], mu[i])
        assert_mean(X[:, i] ** 2, second[i])
    assert_mean(X[:, 1] * (y == -1), -0.5)  # E[x 1{y=-1}] = p_2 μ_2


def test_xor_preset(getkey):
    dist = jf.data.GaussianMixture.xor(10)
    X, y = dist.sample(getkey(), N)
    X, y = np.asarray(X), np.asarray(y)
    assert_mean(y, 0.0)
    assert_mean(X[:, 0] ** 2 * (y == 1), 0.5 * (1.0 + 0.1))  # ±e_1 with σ² = 1/d
    assert_mean(X[:, 1] ** 2 * (y == 1), 0.5 * 0.1)
    assert_mean(X[:, 0] * X[:, 1], 0.0)


def test_uniform_sparse_parity(getkey):
    dist = jf.data.SparseParity(12, [1, 4, 7])
    X, y = dist.sample(getkey(), N)
    X, y = np.asarray(X), np.asarray(y)
    assert set(np.unique(X)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, X[:, 1] * X[:, 4] * X[:, 7])
    assert_mean(y, 0.0)
    assert_mean(X[:, 4], 0.0)
    assert_mean(X[:, 1] * X[:, 4], 0.0)  # pairwise independence of the support


def test_structured_sparse_parity_and_flips(getkey):
    k, w = 4, 0.4
    dist = jf.data.SparseParity(10, [0, 1, 2, 3], structured_weight=w, flip=0.1)
    X, y = dist.sample(getkey(), N)
    X, y = np.asarray(X), np.asarray(y)
    all_plus = np.all(X[:, :4] == 1, axis=1)
    assert_mean(all_plus, w / 2 + (1 - w) / 2**k)  # pattern +1^k has mass w/2 plus uniform
    clean = np.prod(X[:, :4], axis=1)
    assert_mean(y != clean, 0.1)
    assert_mean(X[:, 6], 0.0)


def test_linear_separable_margin(getkey):
    w = np.array([1.0, -2.0, 2.0, 0.0])
    gamma = 0.7
    dist = jf.data.LinearSeparable(w, gamma)
    X, y = dist.sample(getkey(), N)
    z = np.asarray(X @ dist.w_star)
    assert np.min(np.abs(z)) >= gamma
    np.testing.assert_array_equal(np.asarray(y), np.sign(z))
    assert_mean(y, 0.0)
    tail = 1 - ndtr(gamma)  # E|z| for N(0,1) truncated to |z| ≥ γ is φ(γ)/Φ̄(γ)
    assert_mean(np.abs(z), math.exp(-(gamma**2) / 2) / math.sqrt(2 * math.pi) / tail)
    perp = np.asarray(X) - z[:, None] * np.asarray(dist.w_star)[None, :]
    assert_mean(np.sum(perp**2, axis=1), 3.0)  # the orthogonal part is N(0, I − ŵŵᵀ)


def test_sampling_is_jittable_and_vmappable(getkey):
    dist = jf.data.GaussianMixture.xor(5)
    keys = jax.random.split(getkey(), 4)
    X, y = jax.jit(jax.vmap(lambda k: dist.sample(k, 100)))(keys)
    assert X.shape == (4, 100, 5) and y.shape == (4, 100)


SWEPT = {  # a numeric parameter of each law, as a function of its value
    "SingleIndex.noise": lambda v: jf.data.SingleIndex(np.ones(4), target="relu", noise=v),
    "MultiIndex.noise": lambda v: jf.data.MultiIndex(np.ones((2, 4)), np.ones((2, 3)), noise=v),
    "SparseParity.flip": lambda v: jf.data.SparseParity(6, [0, 1], flip=v),
    "LinearSeparable.margin": lambda v: jf.data.LinearSeparable(np.ones(4), v),
    "LinearSeparable.flip": lambda v: jf.data.LinearSeparable(np.ones(4), 0.1, flip=v),
}


@pytest.mark.parametrize("name", sorted(SWEPT))
@pytest.mark.slow
def test_numeric_parameters_are_leaves_not_recompiled(name, getkey):
    """noise/flip/margin are array fields: a jitted function of the law traces once for two
    values (it would trace twice, and fail here, were the field static), and a sweep over
    the value vmaps through the constructor."""
    make = SWEPT[name]
    key = getkey()

    def sample(dist):  # X and y, flattened together
        X, y = dist.sample(key, 64)
        return jnp.concatenate([X.ravel(), y])

    draw = jax.jit(eqx.debug.assert_max_traces(sample, max_traces=1))
    y1, y2 = draw(make(0.1)), draw(make(0.3))
    assert not np.array_equal(y1, y2)  # the value reached the compiled program
    ys = jax.vmap(lambda v: sample(make(v)))(jnp.array([0.1, 0.3]))
    np.testing.assert_allclose(ys, np.stack([y1, y2]), rtol=1e-14, atol=1e-14)


def test_exact_gradient_predicate():
    """`has_exact_gradient` asks the law (the same reasons `population_gradient` raises)."""
    has = jf.population.has_exact_gradient
    assert has(jf.data.GaussianMixture.xor(3)) and has(jf.data.SparseParity(20, [0]))
    assert not has(jf.data.SparseParity(21, [0]))
    assert has(jf.data.SingleIndex(np.ones(3), target="sign"))
    assert not has(jf.data.SingleIndex(np.ones(3), target=jnp.tanh))
    assert not has(jf.data.LinearSeparable(np.ones(3), 0.1))
    assert not has(jf.data.MultiIndex(np.ones((2, 3)), target=lambda Z: Z[..., 0]))


BAD = [
    (lambda: jf.data.SingleIndex(np.ones((2, 3)), [0, 1]), ValueError, "beta"),
    (lambda: jf.data.SingleIndex(np.zeros(3), [0, 1]), ValueError, "beta"),
    (lambda: jf.data.SingleIndex(np.array([1.0, np.nan]), [0, 1]), ValueError, "beta"),
    (lambda: jf.data.SingleIndex(np.ones(3)), ValueError, "hermite"),
    (lambda: jf.data.SingleIndex(np.ones(3), [0, np.nan]), ValueError, "hermite"),
    (lambda: jf.data.SingleIndex(np.ones(3), [0, 1], noise=-1.0), ValueError, "noise"),
    (lambda: jf.data.MultiIndex(np.ones((2, 3)), np.ones((3, 2))), ValueError, "hermite"),
    (lambda: jf.data.GaussianMixture(np.ones((2, 3)), [1, 1, 1], [1, -1]), ValueError, "scales"),
    (lambda: jf.data.GaussianMixture(np.ones((2, 3)), [1, 0], [1, -1]), ValueError, "scales"),
    (
        lambda: jf.data.GaussianMixture(np.full((2, 3), np.nan), [1, 1], [1, -1]),
        ValueError,
        "means",
    ),
    (
        lambda: jf.data.GaussianMixture(np.ones((2, 3)), [1, 1], [1, -1], [-1, 2]),
        ValueError,
        "weights",
    ),
    (lambda: jf.data.SparseParity(5, [0, 5]), ValueError, "support"),
    (lambda: jf.data.SparseParity(5, [1, 1]), ValueError, "support"),
    (lambda: jf.data.SparseParity(0, [0]), ValueError, "dim"),
    (lambda: jf.data.SparseParity(5, [0, 1], flip=0.7), ValueError, "flip"),
    (lambda: jf.data.SparseParity(5, [0, 1], patterns=np.ones((2, 3))), ValueError, "patterns"),
    (lambda: jf.data.LinearSeparable(np.ones(3), -0.1), ValueError, "margin"),
    (lambda: jf.data.GaussianMixture.xor(10).sample(jax.random.key(0), 0), ValueError, "n"),
    (lambda: jf.data.GaussianMixture.xor(10).sample(jax.random.key(0), -3), ValueError, "n"),
    (lambda: jf.data.GaussianMixture.xor(10).sample(jax.random.key(0), 2.5), TypeError, "n"),
    (lambda: jf.data.GaussianMixture.xor(10).sample(7, 10), TypeError, "key"),
    (lambda: jf.data.Teacher("net"), TypeError, "net"),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_input(call, exc, match, no_compile):
    with no_compile(), pytest.raises(exc, match=match):
        call()
