"""The published one-step protocols as presets (issue #15): each preset's update rule pinned
against a NumPy transcription of its paper's (or code's) formula on the same draws; the knobs
they stand on (given data, fixed init, label rules, ridge conventions, Hermite bases)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import factorial

import jaxfeat as jf
from jaxfeat import labels as jl
from jaxfeat.algorithms import one_step_spikes
from jaxfeat.algorithms.one_gradient_step import init_weights
from jaxfeat.experiments import spikes
from jaxfeat.ridge import ridge_fit
from jaxfeat.rows import SampledRows, materialize

SMALL = {"n": 96, "dim": 12, "width": 24, "n_test": 300}


def _preset_point(name, **extra):
    """The preset's fixed parameters at the first value of each grid axis, shrunk to SMALL."""
    preset = spikes.spikes_experiment.presets[name]
    params = spikes.DEFAULTS | preset["set"]
    return params | {k: v[0] for k, v in preset["grid"].items()} | SMALL | extra


def _relu_step_numpy_dandi(X, y, W0, a0, n, p):
    """Dandi et al.'s single_step notebook, transcribed: labels pre-processed by their own
    moments, G = (1/n) Zᵀ((1/√p)(Y − fnn0) a0ᵀ ⊙ σ′(ZW0ᵀ)), W = W0 + η Gᵀ, η = 10√(n p)."""
    Z, Y = np.asarray(X), np.asarray(y)
    Y_touse = Y - Y.mean() - Z @ np.mean(Y[:, None] * Z, axis=0)
    fnn0 = np.maximum(Z @ W0.T, 0) @ a0 / np.sqrt(p)
    G = Z.T @ (np.outer(Y_touse - fnn0, a0) / np.sqrt(p) * (Z @ W0.T > 0)) / n
    return W0 + 10 * np.sqrt(n) * np.sqrt(p) * G.T


def _step_numpy_moniri_ba(X, y, W0, a, eta, act, dact):
    """MATH §4.1 (Moniri et al.; Ba et al.'s W₀ + η√N G₀ is the same update):
    f = aᵀσ(Wx)/√N, r = y − f(X), W₁ = W₀ + (η/n) diag(a)[σ′(W₀Xᵀ) ⊙ 1rᵀ] X."""
    X, y = np.asarray(X), np.asarray(y)
    n, N = X.shape[0], W0.shape[0]
    r = y - act(X @ W0.T) @ a / np.sqrt(N)
    return W0 + eta / n * (a[:, None] * (dact(W0 @ X.T) * r[None, :])) @ X


def test_dandi_preset_is_the_giant_step_of_their_code(getkey):
    key = getkey()
    params = _preset_point("dandi")
    res = spikes.step(key, **params)
    W0, a0 = np.asarray(res.W0), np.asarray(res.a)
    want = _relu_step_numpy_dandi(res.X, res.y, W0, a0, SMALL["n"], SMALL["width"])
    np.testing.assert_allclose(res.W1, want, rtol=1e-12, atol=1e-12)
    assert float(res.eta) == pytest.approx(10 * np.sqrt(SMALL["n"]))  # η_jaxfeat = η_Dandi/√p
    # fixed initialisation, re-sampled data: another seed has the same (W₀, a), other samples
    other = spikes.step(getkey(), **params)
    np.testing.assert_array_equal(other.W0, res.W0)
    np.testing.assert_array_equal(other.a, res.a)
    assert not np.allclose(other.X, res.X)
    # init_weights' draw (eager; the step draws it inside its compiled program: to rounding)
    W_ref, a_ref = init_weights(jax.random.key(0), width=24, dim=12, scheme="gaussian")
    np.testing.assert_allclose(res.W0, W_ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(res.a, a_ref, rtol=1e-14, atol=1e-15)


def test_dandi_preset_test_error_is_their_ridge_on_the_step_samples(getkey):
    """The whole seed: ridge (X/√p, λ = 1, sum loss, no intercept) on the step's own samples
    and labels, test labels pre-processed by the test set's own moments (their code)."""
    key = getkey()
    params = _preset_point("dandi", test_tile=128)
    out = spikes.run(key, **params)
    res = spikes.step(key, **params)
    p = SMALL["width"]
    Z, Y = np.asarray(res.X), np.asarray(res.y)
    Y_touse = Y - Y.mean() - Z @ np.mean(Y[:, None] * Z, axis=0)
    dist = spikes.setup(params)[0]
    Zt, Yt = (np.asarray(v) for v in dist.sample(jax.random.split(key, 3)[2], SMALL["n_test"]))
    Yt_touse = Yt - Yt.mean() - Zt @ np.mean(Yt[:, None] * Zt, axis=0)
    X = np.maximum(Z @ np.asarray(res.W1).T, 0) / np.sqrt(p)
    w = X.T @ np.linalg.inv(X @ X.T + np.eye(len(X))) @ Y_touse if len(X) < p else None
    if w is None:
        w = np.linalg.inv(X.T @ X + np.eye(p)) @ X.T @ Y_touse
    Xt = np.maximum(Zt @ np.asarray(res.W1).T, 0) / np.sqrt(p)
    want = np.mean((Xt @ w - Yt_touse) ** 2)
    assert float(out["test_mse_w1"]) == pytest.approx(want, rel=1e-9)
    # the index-space alignment of ζ: |P_span(θ₁, θ₂) ζ| / |ζ|
    zeta = np.asarray(res.zeta)
    cos = np.linalg.norm(zeta[:2]) / np.linalg.norm(zeta)
    assert float(out["cos_zeta_beta"]) == pytest.approx(cos, rel=1e-12)


@pytest.mark.parametrize("name", ["moniri", "ba", "paper"])
def test_moniri_and_ba_presets_are_the_same_normalised_step(getkey, name):
    params = _preset_point(name)
    res = spikes.step(getkey(), **params)
    act, dact = {
        "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
        "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    }[params["activation"]]
    eta = params["c"] * SMALL["n"] ** params["alpha"]
    W0, a = np.asarray(res.W0), np.asarray(res.a)
    want = _step_numpy_moniri_ba(res.X, res.y, W0, a, eta, act, dact)
    np.testing.assert_allclose(res.W1, want, rtol=1e-12, atol=1e-12)
    norms = np.linalg.norm(np.asarray(res.W0), axis=1)
    if params["scheme"] == "sphere":
        np.testing.assert_allclose(norms, 1.0, rtol=1e-12)
    else:  # N(0, I/d) rows: |w|² ~ χ²_d/d, mean 1, sd √(2/d) per row
        assert abs(np.mean(norms**2) - 1) < 4 * np.sqrt(2 / SMALL["dim"] / SMALL["width"])


@pytest.mark.slow
def test_the_dandi_preset_runs_from_the_cli_and_every_preset_resolves(tmp_path):
    """`jaxfeat run spikes --preset dandi` (the preset with the most knobs) with no glue, shrunk
    with --set to two seeds; every preset's parameters are names `run` takes."""
    from jaxfeat import cli

    exp = spikes.spikes_experiment
    for name in ("moniri", "dandi", "ba"):
        exp.resolve(exp.presets[name]["set"] | exp.presets[name]["grid"])
    sets = [f"--set={k}={v}" for k, v in SMALL.items()]
    out = tmp_path / "dandi.zarr"
    args = ["run", "spikes", "--preset", "dandi", *sets, "--seeds", "2", "--out", str(out)]
    assert cli.main([*args, "--quiet", "--no-plot"]) == 0
    ds = jf.open_scan(str(out))
    assert np.isfinite(ds["test_mse_w1"].values).all() and ds["test_mse_w1"].shape[-1] == 2
    assert json.loads(ds.attrs["jaxfeat_config"])["params"]["labels"] == "moments"


@pytest.mark.slow
def test_label_rules_and_their_streamed_fit(getkey):
    X = jax.random.normal(getkey(), (4000, 3))
    y = 2.0 + 3.0 * X[:, 0] + (X[:, 1] ** 2 - 1) + 0.5 * jax.random.normal(getkey(), (4000,))
    m = jl.fit_low_order(X, y, "moments")
    np.testing.assert_allclose(m.mean, np.mean(y), rtol=1e-13)
    np.testing.assert_allclose(m.linear, np.asarray(X).T @ np.asarray(y) / 4000, rtol=1e-12)
    c = jl.fit_low_order(X, y, "centred")
    np.testing.assert_allclose(c.linear, np.asarray(X).T @ (np.asarray(y) - np.mean(y)) / 4000)
    # both estimate He₀ = 2 and He₁ = 3e₁ (se of a mean of 4000 terms of sd ≈ 3.3: 0.05)
    for fit in (m, c):
        assert abs(float(fit.mean) - 2) < 0.25
        np.testing.assert_allclose(fit.linear, [3, 0, 0], atol=0.3)
    np.testing.assert_allclose(
        jl.preprocess_labels(X, y, "moments"), y - m.mean - X @ m.linear, rtol=1e-13
    )
    np.testing.assert_array_equal(jl.preprocess_labels(X, y, None), y)
    np.testing.assert_allclose(jl.preprocess_labels(X, y, lambda X, y: 2 * y), 2 * y)
    # a fit over tiles of sampled rows equals the fit on the same rows held in memory
    dist = jf.data.SingleIndex(np.eye(1, 5)[0], [1.0, 2.0, 0.5])
    rows = SampledRows(dist, 1000, key=getkey(), tile=96)
    Xr, yr = materialize(rows)
    for rule in jl.LABEL_RULES:
        a, b = jl.fit_low_order(rows, rule=rule), jl.fit_low_order(Xr, yr, rule)
        np.testing.assert_allclose(a.linear, b.linear, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)


@pytest.mark.slow
def test_given_data_and_init_reproduce_the_drawn_step(getkey):
    dist = jf.data.SingleIndex(np.eye(1, 8)[0], [0.0, 1.0, 0.5], noise=0.1)
    key = getkey()
    kw = dict(n=50, width=16, alpha=0.3, activation="relu", scheme="gaussian", labels="moments")
    drawn = jf.one_step(key, dist, **kw, return_data=True)
    given = jf.one_step(
        getkey(), dist, **(kw | {"scheme": None}), data=(drawn.X, drawn.y), W0=drawn.W0, a=drawn.a
    )
    np.testing.assert_allclose(given.W1, drawn.W1, rtol=1e-14)
    assert given.X is None and drawn.X is not None  # samples only when asked for
    assert drawn.X.shape == (50, 8) and drawn.y is not None and drawn.y.shape == (50,)
    # the labels' rule acts on the step: "moments" differs from no pre-processing
    plain = jf.one_step(key, dist, **(kw | {"labels": None}))
    assert not np.allclose(plain.W1, drawn.W1)
    signs = jf.one_step(key, dist, n=50, width=16, a_law="sign").a
    np.testing.assert_allclose(np.abs(signs), 1 / 4.0)
    assert 0 < np.sum(np.asarray(signs) > 0) < 16


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d, k: jf.one_step(k, d, n=10, width=4, labels="bogus"), "labels"),
        (lambda d, k: jf.one_step(k, d, n=10, width=4, a_law="uniform"), "a_law"),
        (lambda d, k: jf.one_step(k, d, width=4, data=(np.ones((5, 3)), np.ones(5))), "data"),
        (lambda d, k: jf.one_step(k, d, n=9, width=4, data=(np.ones((5, 6)), np.ones(5))), "n=9"),
        (lambda d, k: jf.one_step(k, d, n=10, width=4, W0=np.ones((3, 6))), "W0"),
        (lambda d, k: jf.one_step(k, d, n=10, width=4, a=np.ones(5)), "a must"),
        (lambda d, k: jf.one_step(k, d, n=10, width=4, return_data=True, tile=4), "tile"),
        (lambda d, k: jf.one_step(k, d, n=10, width=4, tile=4, labels=lambda X, y: y), "callable"),
        (lambda d, k: jf.one_step(k, d, width=4), "n="),
        (lambda d, k: one_step_spikes(k, d, n=10, width=4, readout="same"), "readout"),
        (lambda d, k: one_step_spikes(k, d, n=10, width=4), "n_tilde"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, readout="step"), "n_tilde"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, lambdas=[[1.0]]), "lambdas"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, lambdas=0.0), "lambdas"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, ridge_loss="l1"), "ridge_"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, ridge_scale="2"), "scale"),
        (lambda d, k: one_step_spikes(k, d, n=10, n_tilde=9, width=4, test_tile=0), "test_tile"),
    ],
)
def test_bad_protocol_arguments_are_named(getkey, call, match):
    dist = jf.data.SingleIndex(np.eye(1, 6)[0], [0.0, 1.0])
    with pytest.raises((ValueError, TypeError), match=match):
        call(dist, getkey())


@pytest.mark.slow
def test_ridge_conventions_against_a_hand_written_solve():
    rng = np.random.default_rng(0)
    for n, N in [(40, 15), (15, 40)]:
        F, y = rng.normal(size=(n, N)), rng.normal(size=n)
        Ft, yt = rng.normal(size=(25, N)), rng.normal(size=25)
        s = 1 / np.sqrt(N)
        for loss, intercept in [("mean", True), ("sum", False), ("sum", True)]:
            G = F * s
            gm, ym = (G.mean(0), y.mean()) if intercept else (np.zeros(N), 0.0)
            lam = 0.7 if loss == "sum" else 0.7 * n  # the normal equations of the summed loss
            a = np.linalg.solve((G - gm).T @ (G - gm) + lam * np.eye(N), (G - gm).T @ (y - ym))
            want = np.mean((Ft * s @ a + ym - gm @ a - yt) ** 2)
            conv = dict(loss=loss, intercept=intercept, feature_scale=s)
            one = ridge_fit(F, y, 0.7, Ft, yt, **conv)
            path = jf.ridge_path(F, y, jnp.array([0.1, 0.7]), Ft, yt, **conv)
            np.testing.assert_allclose(one["coef"], a, rtol=1e-10)
            np.testing.assert_allclose(one["test_mse"], want, rtol=1e-11)
            np.testing.assert_allclose(path["test_mse"][1], want, rtol=1e-11)
    with pytest.raises(ValueError, match="loss"):
        ridge_fit(F, y, 1.0, loss="l2")
    with pytest.raises(ValueError, match="lam"):
        ridge_fit(F, y, np.ones(2))


@pytest.mark.slow
def test_one_lambda_readout_equals_that_lambda_on_the_path(getkey):
    dist = jf.data.SingleIndex(np.eye(1, 10)[0], [0.0, 1.0, 0.7], noise=0.1)
    key = getkey()
    kw = dict(n=80, n_tilde=60, width=20, n_test=200, alpha=0.3, intercept=False)
    one = one_step_spikes(key, dist, **kw, lambdas=0.01, ridge_loss="sum")
    # λ = 10⁶ predicts the mean: leave-one-out and the test set both choose 0.01/60
    path = one_step_spikes(key, dist, **kw, lambdas=jnp.array([0.01 / 60, 1e6]))
    assert float(path["lambda_w1"]) == pytest.approx(0.01 / 60)
    for name in ("test_mse_w1", "test_mse_w0", "test_mse_w1_oracle", "test_mse_w0_oracle"):
        np.testing.assert_allclose(one[name.removesuffix("_oracle")], path[name], rtol=1e-9)
    np.testing.assert_allclose(one["f0_edge"], path["f0_edge"], rtol=1e-9)
    # test features formed in tiles (the last one padded): the same test points, the same error
    tiled = one_step_spikes(key, dist, **kw, lambdas=0.01, ridge_loss="sum", test_tile=64)
    np.testing.assert_array_equal(tiled["singular_values"], one["singular_values"])
    for name in ("test_mse_w1", "test_mse_w0"):
        np.testing.assert_allclose(tiled[name], one[name], rtol=1e-12)
    skipped = one_step_spikes(key, dist, **kw, lambdas=0.01, ridge_loss="sum", init_readout=False)
    assert float(skipped["test_mse_w1"]) == float(one["test_mse_w1"])
    assert np.isnan(skipped["test_mse_w0"]) and np.isnan(skipped["f0_edge"])


def test_hermite_bases_and_multi_index_links(getkey):
    coef = [0.0, 1.0, 0.5, 0.0, 1 / 24]  # He₁ + He₂/2 + He₄/24 (Dandi et al.'s teacher)
    f = lambda z: (z**4 - 6 * z**2 + 3) / 24 + (z**2 - 1) / 2 + z  # noqa: E731
    z = np.linspace(-2, 2, 7)
    single = jf.data.SingleIndex(np.eye(1, 3)[0], coef, basis="probabilists")
    np.testing.assert_allclose(single.link(jnp.asarray(z)), f(z), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(single.hermite, np.asarray(coef) * np.sqrt(factorial(range(5))))
    B = jf.data.orthonormal_directions(getkey(), 2, 7)
    np.testing.assert_allclose(B @ B.T, np.eye(2), atol=1e-14)
    multi = jf.data.MultiIndex(B, coef, basis="probabilists")  # one link for every direction
    Z = np.stack([z, -z[::-1] / 2], axis=1)
    np.testing.assert_allclose(multi.link(jnp.asarray(Z)), f(Z[:, 0]) + f(Z[:, 1]), rtol=1e-13)
    with pytest.raises(ValueError, match="basis"):
        jf.data.SingleIndex(np.eye(1, 3)[0], coef, basis="physicists")
    with pytest.raises(ValueError, match="k must be <= dim"):
        jf.data.orthonormal_directions(getkey(), 4, 3)
