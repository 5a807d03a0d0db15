"""The matrix-free path (MATH §4.3 at scale): row sources in tiles, `LazyFeatures`, the Krylov
spectra and spike statistics against the dense ones, and the streamed one-step gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat.algorithms import one_step_spikes
from jaxfeat.algorithms.one_gradient_step import NOT_ON_THE_STREAMED_PATH
from jaxfeat.rows import ArrayRows, SampledRows, fold_rows, materialize
from jaxfeat.spectrum import hermite_features


def dist_for(d):
    return jf.data.SingleIndex(np.eye(d)[0], [0, 1.0, 0.5 * np.sqrt(2)], noise=0.1)


def spiked_problem(key, n=700, d=30, N=150):
    """relu features with 20 neurons pushed along e₁: a few genuine outliers over a bulk."""
    kx, kw = jax.random.split(key)
    X = jax.random.normal(kx, (n, d))
    W = jax.random.normal(kw, (N, d)) / np.sqrt(d)
    return X, W.at[:20].add(2.0 * jnp.eye(d)[0])


@pytest.mark.slow
def test_sampled_rows_are_the_tiles_of_fold_in_keys_and_repeat_exactly(getkey):
    dist, key = dist_for(5), getkey()
    rows = SampledRows(dist, 23, key=key, tile=10)  # 3 tiles, the last one padded
    X, y = materialize(rows)
    assert X.shape == (23, 5) and y.shape == (23,)
    parts = [dist.sample(jax.random.fold_in(key, t), 10) for t in range(3)]
    np.testing.assert_array_equal(X, np.concatenate([p[0] for p in parts])[:23])
    # y = f*(β·x) + noise: evaluated inside lax.scan it may round differently (1 ulp)
    np.testing.assert_allclose(y, np.concatenate([p[1] for p in parts])[:23], rtol=1e-14)
    # a fold sees exactly the n valid rows, and a second pass draws the same ones
    total = fold_rows(rows, lambda X, y, v: jnp.sum(jnp.where(v[:, None], X, 0.0), 0), jnp.zeros(5))
    np.testing.assert_allclose(total, X.sum(0), rtol=1e-12)
    np.testing.assert_array_equal(materialize(rows)[0], X)


def test_array_rows_pad_and_mask(getkey):
    X, y = jax.random.normal(getkey(), (23, 4)), jax.random.normal(getkey(), (23,))
    rows = ArrayRows(X, y, tile=10)
    assert rows.n_tiles == 3
    Xm, ym = materialize(rows)
    np.testing.assert_array_equal(Xm, X)
    np.testing.assert_array_equal(ym, y)
    s = fold_rows(rows, lambda X, y, v: jnp.sum(jnp.where(v, y, 0.0)), 0.0)
    assert float(s) == pytest.approx(float(y.sum()), rel=1e-12)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigma_ge2"])
def test_lazy_features_materialize_to_the_network_features(getkey, act):
    X, W = spiked_problem(getkey(), n=90, d=7, N=11)
    F = jf.TwoLayer(W, jnp.zeros(11), jnp.ones(11), act).features(X)
    lazy = jf.LazyFeatures(X, W, act, tile=32)
    np.testing.assert_allclose(lazy.materialize(), F, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_dense_and_krylov_spectra_agree(getkey):
    X, W = spiked_problem(getkey())
    F = jf.activations.relu(X @ W.T)
    s_dense, U_dense, V_dense = jf.feature_spectrum(F, 6)
    assert float(s_dense[0]) > 3 * float(s_dense[1])  # a genuine outlier
    lazy = jf.LazyFeatures(X, W, "relu", tile=128)  # 700 rows: the last tile is padded
    # Krylov space of 9 blocks × 16 = 144 ≈ N: every one of the top 6 converges
    for operand in (lazy, F):
        s, U, V = jf.feature_spectrum(operand, 6, method="krylov", key=getkey(), iters=9)
        np.testing.assert_allclose(s, s_dense, rtol=1e-9)  # observed ≤ 1e-15
        # singular vectors agree up to sign where the singular values are separated
        np.testing.assert_allclose(np.abs(np.sum(U * U_dense, 0))[:2], 1.0, atol=1e-9)
        np.testing.assert_allclose(np.abs(np.sum(V * V_dense, 0))[:2], 1.0, atol=1e-9)
    # a few iterations already give the separated outlier (observed 5e-7 at 3 blocks)
    s_fast = jf.feature_spectrum(lazy, 1, key=getkey(), iters=3, left=False)
    assert s_fast[1] is None
    np.testing.assert_allclose(s_fast[0], s_dense[:1], rtol=1e-6)
    # the dense path of a LazyFeatures materialises it
    np.testing.assert_allclose(jf.feature_spectrum(lazy, 6, method="dense")[0], s_dense, 1e-10)


def test_dense_and_krylov_spike_statistics_agree(getkey):
    X, W = spiked_problem(getkey())
    F = jf.activations.relu(X @ W.T)
    u = jnp.eye(30)[0]
    dense = jf.count_spikes(F, hermite_features(X, u, 8), k=6)
    lazy = jf.LazyFeatures(X, W, "relu", tile=128)
    for free in (
        jf.count_spikes(lazy, direction=u, k=6, key=getkey(), iters=9),
        jf.count_spikes(F, hermite_features(X, u, 8), k=6, method="krylov", key=getkey(), iters=9),
    ):
        for name in ("singular_values", "deflated_edge", "capture", "mass_in_hermite_span"):
            np.testing.assert_allclose(free[name], dense[name], rtol=1e-9, atol=1e-11)
        assert int(free["n_outliers"]) == int(dense["n_outliers"]) >= 1
    # the deflated edge really is below the top singular value: deflation did something
    assert float(dense["deflated_edge"]) < 0.5 * float(dense["singular_values"][0])


@pytest.mark.parametrize(
    "act, remove_low_order, tile",
    [("relu", False, 16), ("relu", True, 16), ("sigma_ge2", False, 5)],
)
@pytest.mark.slow
def test_streamed_step_is_the_gradient_step_on_its_rows(getkey, act, remove_low_order, tile):
    """W₁ = W₀ − η√N ∇_W L(W₀) with ∇ from jax.grad of the stated loss on the very rows the
    step drew; sigma_ge2 depends on |w| as well."""
    d, n, N, alpha, c = 12, 50, 9, 0.3, 2.0  # n = 50: the last row tile is padded
    key, dist = getkey(), dist_for(d)
    res = jf.one_step(
        key, dist, n=n, width=N, activation=act, alpha=alpha, c=c, output_scale="1/sqrt(width)",
        remove_low_order=remove_low_order, tile=tile,
    )  # fmt: skip
    X, y = materialize(SampledRows(dist, n, key=jax.random.split(key, 3)[0], tile=tile))
    if remove_low_order:  # Dandi et al.: subtract the least-squares fit of (1, x) from y
        yc = y - y.mean()
        y = yc - X @ (X.T @ yc / n)
    s = 1 / np.sqrt(N)
    net = lambda W: jf.TwoLayer(W, jnp.zeros(N), res.a, act, s)  # noqa: E731
    loss = lambda W: jnp.sum((y - net(W)(X)) ** 2) / (2 * n)  # noqa: E731
    W1 = res.W0 - (c * n**alpha / s) * jax.grad(loss)(res.W0)
    np.testing.assert_allclose(res.W1, W1, atol=1e-12)
    np.testing.assert_allclose(res.zeta, X.T @ (y - net(res.W0)(X)) / n, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(res.W0, axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("block", [5, 12, 40])
def test_gradient_is_added_in_column_blocks_exactly_once(getkey, block):
    """DᵀX in blocks of 5 columns of d = 12: the last block's start is clamped and overlaps."""
    from jaxfeat.algorithms.one_gradient_step import _add_DtX

    G, D, X = (jax.random.normal(getkey(), s) for s in ((9, 12), (30, 9), (30, 12)))
    np.testing.assert_allclose(_add_DtX(G, D, X, block), G + D.T @ X, rtol=1e-13, atol=1e-13)


def test_step_options_gaussian_init_and_direct_eta(getkey):
    key, dist = getkey(), dist_for(400)
    res = jf.one_step(key, dist, n=30, width=300, scheme="gaussian", eta=0.7)
    assert float(res.eta) == pytest.approx(0.7)
    # Ba et al.: rows N(0, I/d), so |w|² ≈ 1 ± √(2/d) and not exactly 1
    norms2 = np.sum(np.asarray(res.W0) ** 2, axis=1)
    assert abs(norms2.mean() - 1) < 4 * np.sqrt(2 / 400) / np.sqrt(300)
    assert norms2.std() == pytest.approx(np.sqrt(2 / 400), rel=0.25)


@pytest.mark.slow
def test_scale_path_equals_dense_statistics_on_the_same_rows(getkey):
    """`one_step_spikes(tile=…)` streams everything; on its own rows, materialised, the dense
    `count_spikes` gives the same statistics (Krylov space: 5 blocks of k + 10 = 14 = all 70)."""
    dist, key = dist_for(80), getkey()
    kw = dict(
        n=600, n_tilde=500, width=70, activation="relu", alpha=0.4, output_scale="1/sqrt(width)"
    )
    out = one_step_spikes(key, dist, tile=128, k=4, iters=5, **kw)
    # the same keys as the dense path; the ridge errors and F0 edge it has no value for are NaN
    dense = jax.eval_shape(lambda k: one_step_spikes(k, dist, k=4, **kw), key)
    assert set(out) == set(dense)
    for name in NOT_ON_THE_STREAMED_PATH:
        assert np.isnan(out[name]).all() and out[name].shape == dense[name].shape
    assert all(np.all(np.isfinite(v)) for k, v in out.items() if k not in NOT_ON_THE_STREAMED_PATH)
    k_step, k_feat, _ = jax.random.split(key, 3)
    step = jf.one_step(
        k_step, dist, n=600, width=70, activation="relu", alpha=0.4, output_scale="1/sqrt(width)",
        tile=128,
    )  # fmt: skip
    Xt, _ = materialize(SampledRows(dist, 500, key=jax.random.split(k_feat)[0], tile=128))
    F1 = jf.TwoLayer(step.W1, jnp.zeros(70), step.a, "relu").features(Xt)
    ref = jf.count_spikes(F1, hermite_features(Xt, step.zeta, 8), k=4)
    for name in ("singular_values", "deflated_edge", "capture", "mass_in_hermite_span"):
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-10, atol=1e-12)  # observed 1e-13
    assert int(out["n_outliers"]) == int(ref["n_outliers"]) >= 1
    assert float(out["cos_zeta_beta"]) > 0.5


@pytest.mark.slow
def test_scale_path_vmaps_and_jits(getkey):
    dist = dist_for(40)
    f = jax.jit(
        jax.vmap(
            lambda k, a: one_step_spikes(
                k, dist, n=300, n_tilde=300, width=40, alpha=a, tile=64, k=3, iters=3
            )["singular_values"]
        )
    )
    out = f(jax.random.split(getkey(), 2), jnp.array([0.1, 0.4]))
    assert out.shape == (2, 3) and np.all(np.isfinite(out))


BAD = [
    (lambda: jf.LazyFeatures(np.ones((5, 3)), np.ones((4, 2)), "relu"), "W must have shape"),
    (lambda: jf.LazyFeatures(np.ones((5, 3)), np.ones((4, 3)), "swish2"), "activation"),
    (lambda: jf.feature_spectrum(np.ones((5, 3)), 2, method="krylov"), "key is required"),
    (lambda: jf.feature_spectrum(np.ones((5, 3)), 2, method="svd"), "method must be"),
    (
        lambda: jf.count_spikes(
            jf.LazyFeatures(np.ones((5, 3)), np.ones((4, 3)), "relu"), np.ones((5, 2))
        ),
        "give direction=",
    ),
    (lambda: jf.count_spikes(np.ones((5, 3)), direction=np.ones(3)), "give H ="),
    (
        lambda: jf.count_spikes(
            jf.LazyFeatures(np.ones((5, 3)), np.ones((4, 3)), "relu"), direction=np.ones(2)
        ),
        "direction must have shape",
    ),
    (lambda: SampledRows(dist_for(3), 0, key=jax.random.key(0)), "n must be positive"),
    (lambda: ArrayRows(np.ones((5, 3)), np.ones(4)), "y must have shape"),
    (lambda: jf.one_step(jax.random.key(0), dist_for(5), n=10, width=4, tile=0), "tile must be"),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_input(call, match, no_compile):
    # the inputs' own arrays compile outside the block: only the call is checked
    dist_for(3), dist_for(5), jf.LazyFeatures(np.ones((5, 3)), np.ones((4, 3)), "relu")
    with no_compile(), pytest.raises(ValueError, match=match):
        call()
