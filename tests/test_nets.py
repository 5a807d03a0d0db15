"""TwoLayer: forward pass, init schemes, ensembles over widths (one compile), bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf


def test_forward_matches_explicit_sum(getkey):
    W = jax.random.normal(getkey(), (7, 4))
    b = jax.random.normal(getkey(), (7,))
    a = jax.random.normal(getkey(), (7,))
    X = jax.random.normal(getkey(), (11, 4))
    net = jf.TwoLayer(W, b, a, "tanh", scale=0.5)
    ref = 0.5 * np.array([sum(a[i] * np.tanh(W[i] @ x - b[i]) for i in range(7)) for x in X])
    np.testing.assert_allclose(net(X), ref, rtol=1e-12)
    np.testing.assert_allclose(net(X[3]), ref[3], rtol=1e-12)  # one input, shape (d,)


def test_sigma_ge2_network_is_the_homogeneous_neuron(getkey):
    W = 3.0 * jax.random.normal(getkey(), (5, 6))
    a = jax.random.normal(getkey(), (5,))
    X = jax.random.normal(getkey(), (9, 6))
    net = jf.TwoLayer(W, jnp.zeros(5), a, "sigma_ge2")
    norms = np.linalg.norm(W, axis=1)
    u = (W / norms[:, None]) @ X.T  # ŵ·x
    ref = (a[:, None] * norms[:, None] * (np.abs(u) / 2 - 1 / math.sqrt(2 * math.pi))).sum(0)
    np.testing.assert_allclose(net(X), ref, rtol=1e-12)


@pytest.mark.parametrize("width", [2, 10, 64])
@pytest.mark.slow
def test_symmetric_init_is_identically_zero(getkey, width):
    net = jf.TwoLayer.init(getkey(), width, 8, "relu", "symmetric", b_std=0.5, a_std=1.0)
    X = jax.random.normal(getkey(), (200, 8))
    h = width // 2
    np.testing.assert_array_equal(net.W[:h], net.W[h:])
    np.testing.assert_array_equal(net.a[:h], -net.a[h:])
    np.testing.assert_array_equal(net.b[:h], net.b[h:])
    assert np.max(np.abs(net(X))) < 1e-13  # cancels up to summation round-off


@pytest.mark.slow
def test_symmetric_init_padded_in_an_ensemble_is_zero(getkey):
    nets = jf.init_ensemble(getkey(), [4, 10, 16], 5, "relu", "symmetric", seeds=3, b_std=0.3)
    X = jax.random.normal(getkey(), (50, 5))
    assert np.max(np.abs(jf.apply_ensemble(nets, X))) < 1e-13


def test_init_scheme_statistics(getkey):
    d, m = 50, 4000
    sph = jf.TwoLayer.init(getkey(), m, d, "relu", "sphere")
    np.testing.assert_allclose(np.linalg.norm(sph.W, axis=1), 1.0, rtol=1e-12)
    # a ~ N(0, 1/m): E[m a²] = 1 with standard error √(2/m)
    assert abs(np.mean(m * sph.a**2) - 1) < 5 * math.sqrt(2 / m)
    g = jf.TwoLayer.init(getkey(), m, d, "relu", "gaussian", w_std=2.0, b_std=0.5)
    row_sq = np.sum(np.asarray(g.W) ** 2, axis=1)  # ~ 4 χ²_d / d: mean 4, sd 4√(2/d)
    assert abs(row_sq.mean() - 4) < 5 * 4 * math.sqrt(2 / d) / math.sqrt(m)
    assert abs(np.mean(np.asarray(g.b) ** 2) - 0.25) < 5 * 0.25 * math.sqrt(2 / m)
    small = jf.TwoLayer.init(getkey(), m, d, "sigma_ge2", "small")
    assert abs(np.mean(np.sum(np.asarray(small.W) ** 2, axis=1)) - 1e-4) < 5e-4 * math.sqrt(2 / d)
    np.testing.assert_allclose(np.abs(small.a), 1 / math.sqrt(m), rtol=1e-12)


def test_output_scales(getkey):
    for spec, expected in [("1", 1.0), ("1/sqrt(width)", 1 / 8), ("1/width", 1 / 64), (0.3, 0.3)]:
        assert float(
            jf.TwoLayer.init(getkey(), 64, 3, "relu", output_scale=spec).scale
        ) == pytest.approx(expected)


@pytest.mark.slow
def test_padded_network_equals_unpadded(getkey):
    key = getkey()
    nets = jf.init_ensemble(key, [6, 16], 4, "gelu", seeds=2, b_std=0.2)
    X = jax.random.normal(getkey(), (30, 4))
    small = jax.tree_util.tree_map(lambda x: x[0, 1], nets)  # width 6 padded to 16, seed 1
    assert small.W.shape == (16, 4) and int(small.n_active) == 6
    exact = jf.TwoLayer(small.W[:6], small.b[:6], small.a[:6], "gelu", small.scale)
    np.testing.assert_allclose(small(X), exact(X), rtol=1e-12)
    # seed i uses fold_in(key, i) at every width: the same first rows
    one = jf.TwoLayer.init(jax.random.fold_in(key, 1), 6, 4, "gelu", b_std=0.2, max_width=16)
    np.testing.assert_array_equal(one.W, small.W)


@pytest.mark.slow
def test_width_sweep_compiles_once(getkey):
    d, seeds = 6, 4
    X = jax.random.normal(getkey(), (20, d))

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def build_and_apply(key, widths, X):
        nets = jax.vmap(
            lambda w: jax.vmap(
                lambda k: jf.TwoLayer.init(
                    k, w, d, "relu", "symmetric", max_width=64, output_scale="1/sqrt(width)"
                )
            )(jax.random.split(key, seeds))
        )(widths)
        return jf.apply_ensemble(nets, X)

    out1 = build_and_apply(getkey(), jnp.array([8, 16, 64]), X)
    out2 = build_and_apply(getkey(), jnp.array([2, 32, 48]), X)  # other widths: no retrace
    assert out1.shape == out2.shape == (3, seeds, 20)
    # init_ensemble: two sweeps with the same largest width compile once
    from conftest import compile_log

    # (a largest width no other test uses, so that the first sweep must compile: the control)
    with compile_log() as first:
        jf.init_ensemble(getkey(), [8, 16, 61], d, "relu", seeds=seeds)
    assert [m for m in first if "_ensemble" in m], first
    with compile_log() as msgs:
        jf.init_ensemble(getkey(), [4, 32, 61], d, "relu", seeds=seeds)
    assert not msgs, msgs


def test_fit_readout_is_ridge(getkey):
    net = jf.TwoLayer.init(getkey(), 12, 3, "tanh", b_std=0.5, output_scale=0.7)
    X = jax.random.normal(getkey(), (80, 3))
    y = jnp.sin(X[:, 0])
    fitted = jf.fit_readout(net, X, y, 1e-2)
    F = 0.7 * np.asarray(net.features(X))
    a = np.linalg.solve(F.T @ F / 80 + 1e-2 * np.eye(12), F.T @ np.asarray(y) / 80)
    np.testing.assert_allclose(fitted.a, a, rtol=1e-10)


BAD = [
    (lambda: jf.TwoLayer(np.ones((3, 2, 1)), np.ones(3), np.ones(3), "relu"), ValueError, "W"),
    (
        lambda: jf.TwoLayer(np.ones((3, 2)), np.ones(4), np.ones(3), "relu"),
        ValueError,
        r"b must have shape \(width,\) = \(3,\)",
    ),
    (lambda: jf.TwoLayer(np.ones((3, 2)), np.ones(3), np.ones((3, 1)), "relu"), ValueError, "a"),
    (
        lambda: jf.TwoLayer(np.full((3, 2), np.nan), np.ones(3), np.ones(3), "relu"),
        ValueError,
        "W contains NaN",
    ),
    (
        lambda: jf.TwoLayer(np.ones((3, 2)), np.array([0, np.inf, 0]), np.ones(3), "relu"),
        ValueError,
        "b contains NaN or inf",
    ),
    (
        lambda: jf.TwoLayer(np.ones((3, 2)), np.ones(3), np.ones(3), "swish"),
        ValueError,
        "activation",
    ),
    (lambda: jf.TwoLayer.init(jax.random.key(0), 0, 3, "relu"), ValueError, "width"),
    (lambda: jf.TwoLayer.init(jax.random.key(0), -4, 3, "relu"), ValueError, "width"),
    (lambda: jf.TwoLayer.init(jax.random.key(0), 4, 0, "relu"), ValueError, "dim"),
    (lambda: jf.TwoLayer.init(jax.random.key(0), 5, 3, "relu", "symmetric"), ValueError, "even"),
    (lambda: jf.TwoLayer.init(jax.random.key(0), 4, 3, "relu", "xavier"), ValueError, "scheme"),
    (
        lambda: jf.TwoLayer.init(jax.random.key(0), 8, 3, "relu", max_width=4),
        ValueError,
        "max_width",
    ),
    (lambda: jf.TwoLayer.init(0, 8, 3, "relu"), TypeError, "key"),
    (lambda: jf.TwoLayer.init(jax.random.key(0), 4, 3, "relu", w_std=-1.0), ValueError, "w_std"),
    (lambda: jf.init_ensemble(jax.random.key(0), [], 3, "relu", seeds=2), ValueError, "widths"),
    (
        lambda: jf.init_ensemble(jax.random.key(0), [4, 0], 3, "relu", seeds=2),
        ValueError,
        r"widths\[1\]",
    ),
    (lambda: jf.init_ensemble(jax.random.key(0), [4], 3, "relu", seeds=0), ValueError, "seeds"),
    (
        lambda: jf.fit_readout(_STACKED, np.ones((5, 2)), np.ones(5), 0.1),
        ValueError,
        "net must be a single network",
    ),
    (
        lambda: jf.fit_readout(_NET, np.ones((5, 3)), np.ones(5), 0.1),
        ValueError,
        r"x must have shape \(n, dim\) = \(n, 2\)",
    ),
    (lambda: jf.fit_readout(_NET, np.ones((5, 2)), np.ones(5), "0.1"), TypeError, "ridge"),
    (
        lambda: jf.empirical_gradient(
            np.full((5, 2), np.nan), np.ones(5), np.ones((3, 2)), np.zeros(3)
        ),
        ValueError,
        "X contains NaN",
    ),
]


_NET = jf.TwoLayer(np.ones((3, 2)), np.zeros(3), np.ones(3), "relu")
_STACKED = jax.tree.map(lambda *x: np.stack(x), _NET, _NET)  # two seeds: not one network


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_input_names_the_argument_before_compiling(call, exc, match, no_compile):
    with no_compile(), pytest.raises(exc, match=match):
        call()


def test_input_dimension_mismatch(getkey):
    net = jf.TwoLayer.init(getkey(), 4, 5, "relu")
    X = np.ones((10, 7))
    from conftest import compile_log

    with (
        compile_log() as msgs,
        pytest.raises(
            ValueError,
            match=r"x must have shape \(\.\.\., dim\)"
            r" = \(\.\.\., 5\).*got shape \(10, 7\)",
        ),
    ):
        net(X)
    assert not msgs
    dist = jf.data.GaussianMixture.xor(7)
    X, _ = dist.sample(getkey(), 10)
    with pytest.raises(ValueError, match="dim"):
        net(X)
