"""Sample sizes below a static capacity for the training procedures (issue "fast to start",
item 1): `Dataset` and `Online` objectives, the empirical G, kernel ridge, Shi et al.'s
`gradient_features` and Zhou–Ge's `local_convergence`.

The reference is always the same call at the exact size, without a capacity: float64 outputs
agree to 1e-12 of their scale, integer and boolean outputs are identical, and a second size
under `jit` compiles nothing.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same, compile_log

import jaxfeat as jf
from jaxfeat._checks import InputError
from jaxfeat.experiments import gradient_features as shi, local_convergence as zhou_ge
from jaxfeat.kernel_baselines import feature_ridge, kernel_ridge, relu_nngp
from jaxfeat.objectives import LOSSES, Dataset, Online

KEY = jax.random.key(11)
LIVE, CAP = 37, 64


def _padded(X, y, cap=CAP):
    pad = cap - X.shape[0]
    return jnp.pad(X, ((0, pad), (0, 0)), constant_values=3.0), jnp.pad(y, (0, pad))


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.slow
def test_dataset_on_live_rows_is_the_dataset_of_those_rows(loss):
    """Loss, metrics and gradient ignore the padding rows (filled with 3s, not zeros, so a
    missing mask shows)."""
    k1, k2, k3 = jax.random.split(KEY, 3)
    X = jax.random.normal(k1, (LIVE, 5))
    y = jnp.sign(jax.random.normal(k2, (LIVE,)))
    net = jf.TwoLayer.init(k3, 7, 5, "relu")
    exact = Dataset(X, y, loss=loss)
    padded = jax.jit(lambda n: Dataset(*_padded(X, y), loss=loss, n=n))
    for n_live in (LIVE, jnp.int32(LIVE)):
        data = padded(n_live)
        assert_same(data.evaluate(net), exact.evaluate(net))
        grad = eqx.filter_grad(lambda m, d: d.step_loss(m, KEY))
        g, g_ref = grad(net, data), grad(net, exact)
        for leaf in ("W", "b", "a"):
            np.testing.assert_allclose(getattr(g, leaf), getattr(g_ref, leaf), atol=1e-13)


def test_online_batch_below_a_capacity_is_the_exact_batch():
    dist = jf.data.GaussianMixture.xor(6)
    net = jf.TwoLayer.init(KEY, 4, 6, "relu")
    exact = Online(dist, LIVE, "hinge").step_loss(net, KEY)
    loss = jax.jit(lambda n: Online(dist, n, "hinge", capacity=CAP).step_loss(net, KEY))
    with compile_log():
        got = loss(jnp.int32(LIVE))
    with compile_log() as again:
        loss(jnp.int32(LIVE + 5))
    assert not again
    np.testing.assert_allclose(got, exact, rtol=1e-13)


def test_empirical_gradient_of_live_rows():
    k1, k2, k3 = jax.random.split(KEY, 3)
    X, y = jax.random.normal(k1, (LIVE, 4)), jax.random.normal(k2, (LIVE,))
    W, b = jax.random.normal(k3, (9, 4)), jnp.full(9, -0.2)
    exact = jf.empirical_gradient(X, y, W, b)
    Xp, yp = _padded(X, y)
    got = jax.jit(
        lambda n: jf.empirical_gradient(Xp, jnp.where(jnp.arange(CAP) < n, yp, 1.0), W, b, n)
    )(LIVE)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kernel", ["nngp", "low_rank"])
@pytest.mark.slow
def test_kernel_ridge_on_live_rows_is_the_ridge_of_those_rows(kernel):
    """Full-rank (NNGP) and rank-deficient (random features, width 10 < n) kernels: the same
    predictions and the same leave-one-out choice of ρ."""
    k1, k2, k3 = jax.random.split(KEY, 3)
    X, X_test = jax.random.normal(k1, (CAP, 6)), jax.random.normal(k3, (20, 6))
    y = jnp.sign(jax.random.normal(k2, (CAP,)))
    if kernel == "nngp":
        K, K_test = relu_nngp(X, X, 1.0, 0.3), relu_nngp(X_test, X, 1.0, 0.3)
    else:
        V = jax.random.normal(k3, (6, 10))
        phi, phi_test = jax.nn.relu(X @ V), jax.nn.relu(X_test @ V)
        K, K_test = phi @ phi.T, phi_test @ phi.T
    pred, rho = kernel_ridge(K[:LIVE, :LIVE], K_test[:, :LIVE], y[:LIVE])
    got, got_rho = jax.jit(lambda n: kernel_ridge(K, K_test, y, n=n))(LIVE)
    assert got_rho == rho
    np.testing.assert_allclose(got, pred, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(pred))))


@pytest.mark.parametrize("width", [10, 50])  # 50: above the live rows, below the capacity
@pytest.mark.parametrize("padded", [False, True])
def test_feature_ridge_is_the_kernel_ridge_of_its_linear_kernel(width, padded):
    """The random-features baseline from the width×width Gram matrix: the predictions and the
    leave-one-out choice of ρ of `kernel_ridge(φφᵀ, φ_testφᵀ, y)` on the live rows (float64)."""
    k1, k2, k3 = jax.random.split(KEY, 3)
    X, X_test = jax.random.normal(k1, (CAP, 6)), jax.random.normal(k3, (20, 6))
    y = jnp.sign(jax.random.normal(k2, (CAP,)) + 0.5 * X[:, 0])
    V = jax.random.normal(k3, (6, width))
    phi, phi_test = jax.nn.relu(X @ V - 0.3), jax.nn.relu(X_test @ V - 0.3)
    live = phi[:LIVE]
    for ridges in ((1e-3, 1e-1, 10.0), (1e-5, 1e-3)):  # ρ chosen inside the grid and at its edge
        pred, rho = kernel_ridge(live @ live.T, phi_test @ live.T, y[:LIVE], ridges)
        if padded:
            fit = jax.jit(lambda n, r=ridges: feature_ridge(phi, phi_test, y, r, n=n))
            got, got_rho = fit(LIVE)
        else:
            got, got_rho = feature_ridge(live, phi_test, y[:LIVE], ridges)
        assert float(got_rho) == float(rho)
        np.testing.assert_allclose(got, pred, rtol=0, atol=1e-11 * float(jnp.max(jnp.abs(pred))))


def test_feature_ridge_in_float32_chooses_the_ridge_float64_chooses():
    """Uncentred ReLU features, width 256 just above the 250 live rows of a 1,000-row capacity
    (a bucketed n): the leave-one-out choice in float32 is float64's `kernel_ridge` choice (a
    cutoff of the Gram eigenvalues at rows·ε·max λ chose ρ = 1e-5 against 10 here)."""
    rng = np.random.default_rng(1)
    X, X_test = rng.standard_normal((1000, 64)), rng.standard_normal((300, 64))
    W = rng.standard_normal((64, 256)) / 8.0
    phi, phi_test = np.maximum(X @ W, 0.0), np.maximum(X_test @ W, 0.0)
    y = np.sign(X[:, 0] * X[:, 1])
    _, rho = kernel_ridge(phi[:250] @ phi[:250].T, phi_test @ phi[:250].T, y[:250])
    f32 = [jnp.asarray(a, jnp.float32) for a in (phi, phi_test, y)]
    _, got = jax.jit(lambda n: feature_ridge(*f32, n=n))(250)
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(float(rho))


SHI = dict(dim=12, width=16, n_test=200, steps=30, log_every=10)


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.slow
def test_gradient_features_below_a_capacity_is_the_exact_run(online):
    run = jax.jit(lambda n: shi.run(KEY, n=n, n_capacity=90, online=online, **SHI))
    with compile_log():
        got = run(jnp.int32(50))
    with compile_log() as again:
        got2 = run(jnp.int32(83))
    assert not again and set(got2) == set(got)
    assert_same(got, jax.jit(lambda: shi.run(KEY, n=50, online=online, **SHI))())


ZG = dict(dim=6, width=6, phases=2, steps_per_phase=40, log_every=20, lr=0.3)


@pytest.mark.slow
def test_local_convergence_below_a_capacity_is_the_exact_run():
    run = jax.jit(lambda n: zhou_ge.run(KEY, n=n, n_capacity=80, **ZG))
    assert_same(run(jnp.int32(45)), jax.jit(lambda: zhou_ge.run(KEY, n=45, **ZG))())


@pytest.mark.slow
def test_a_scan_over_n_of_gradient_features_compiles_one_program():
    grid, params = {"n": [40, 64]}, dict(SHI, dim=8)
    summary = jf.plan_summary("gradient_features", grid, 2, params=params, buckets=1)
    assert "n ∈ {40, 64} at capacity 64" in summary
    with compile_log() as names:
        ds = jf.scan("gradient_features", grid, 2, params=params, buckets=1, progress=False)
    assert sum("chunk" in name for name in names) == 1, names
    exact = jf.scan("gradient_features", grid, 2, params=params, buckets="off", progress=False)
    for name in ("test_error", "train_error", "aligned_fraction_empirical", "G_error"):
        np.testing.assert_allclose(ds[name].values, exact[name].values, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Dataset(np.ones((5, 2)), np.ones(5), batch=2, n=3), "batch must be None"),
        (lambda: Dataset(np.ones((5, 2)), np.ones(5), n=6), "n=6 exceeds its capacity 5"),
        (lambda: Online(jf.data.GaussianMixture.xor(4), 9, capacity=8), "batch=9 exceeds"),
        (lambda: shi.run(KEY, n=100, n_capacity=50, **SHI), "n=100 exceeds its capacity 50"),
        (lambda: zhou_ge.run(KEY, n_capacity=50, **ZG), "n_capacity needs n"),
    ],
)
def test_sizes_beyond_a_capacity_are_refused_by_name(call, match, no_compile):
    with no_compile(), pytest.raises(InputError, match=match):
        call()
