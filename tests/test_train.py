"""`jf.train` against hand-written per-seed loops (float64), padding, frozen leaves, divergence,
Population vs Online within Monte-Carlo error, one compile for seeds × learning rates, and bad
input before anything compiles."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compile_log

import jaxfeat as jf
from jaxfeat.objectives import LOSSES, Dataset, Online, Population

D = 6
LR0, LR_DROP, LR_AT = 0.1, 0.5, 5  # lr(t) = 0.1 for t < 5, then 0.05
WD0, WD_DROP, WD_AT = 0.02, 0.25, 7  # λ(t) = 0.02 for t < 7, then 0.005


def lr_by_hand(t):
    return LR0 if t < LR_AT else LR0 * LR_DROP


def wd_by_hand(t):
    return WD0 if t < WD_AT else WD0 * WD_DROP


def optimizer():
    return optax.sgd(optax.piecewise_constant_schedule(LR0, {LR_AT: LR_DROP}))


def wd_schedule():
    return optax.piecewise_constant_schedule(WD0, {WD_AT: WD_DROP})


def teacher_net(act="sigma_ge2"):
    W = jnp.eye(3, D) + 0.1 * jnp.arange(3 * D, dtype=float).reshape(3, D) / (3 * D)
    return jf.TwoLayer(W, jnp.zeros(3), jnp.array([1.0, -0.7, 0.5]), act)


def student(key, act="sigma_ge2", width=7, **kw):
    return jf.TwoLayer.init(key, width, D, act, "gaussian", **kw)


def reference_loop(key, net, loss_of, steps, trainable=("W", "b", "a"), evaluate=None):
    """θ ← θ − lr(t)(∇L_t(θ) + λ(t)θ) by hand, with eqx.filter_grad; L_t = loss_of(net, key_t)."""
    _, step_key = jax.random.split(key)
    grad = eqx.filter_jit(eqx.filter_grad(loss_of))  # jitted for speed; the update is by hand
    states = [net]
    for t in range(steps):
        g = grad(net, jax.random.fold_in(step_key, t))
        for name in trainable:
            new = getattr(net, name) - lr_by_hand(t) * (
                getattr(g, name) + wd_by_hand(t) * getattr(net, name)
            )
            net = eqx.tree_at(lambda m, k=name: getattr(m, k), net, new)
        states.append(net)
    return states


def square(f, y):
    return jnp.mean((f - y) ** 2)


def hinge(f, y):
    return jnp.mean(jnp.maximum(0.0, 1.0 - y * f) * (1.0 - y * f > 0))


def logistic(f, y):
    return jnp.mean(jnp.log1p(jnp.exp(-y * f)))


BY_HAND = {"square": square, "hinge": hinge, "logistic": logistic}


def assert_trained_like(net, history, states, log_steps, evaluate, tol=1e-10):
    final = states[-1]
    for name in ("W", "b", "a"):
        np.testing.assert_allclose(getattr(net, name), getattr(final, name), rtol=tol, atol=tol)
    np.testing.assert_array_equal(history["step"], log_steps)
    evaluate = jax.jit(evaluate)
    want = [evaluate(states[s]) for s in log_steps]
    np.testing.assert_allclose(history["loss"], want, rtol=tol, atol=tol)
    pen = [
        0.5 * wd_by_hand(s) * sum(float(jnp.sum(getattr(states[s], k) ** 2)) for k in "Wba")
        for s in log_steps
    ]
    np.testing.assert_allclose(history["penalty"], pen, rtol=tol)
    assert not history["diverged"].any()


STEPS, LOG_EVERY = 14, 4
LOG_STEPS = [0, 4, 8, 12, 14]  # 4 does not divide 14: the last state is logged too


@pytest.mark.parametrize("degree", [None, 12])
@pytest.mark.slow
def test_population_matches_hand_loop(getkey, degree):
    act = "sigma_ge2" if degree is None else "tanh"
    teacher = teacher_net(act)
    net = student(getkey(), act, b_std=0.0 if degree is None else 0.3)
    key = getkey()
    obj = Population(teacher, degree=degree)
    out, hist = jf.train(
        key, net, obj, optimizer(), steps=STEPS, log_every=LOG_EVERY, weight_decay=wd_schedule()
    )
    if degree is None:
        loss = lambda n: jf.population_loss(n, teacher, method="closed_form")  # noqa: E731
    else:
        loss = lambda n: jf.population_loss(n, teacher, method="hermite", degree=12)  # noqa: E731
    # the closed form has no bias gradient, so its default leaves are ("W", "a")
    trainable = ("W", "a") if degree is None else ("W", "b", "a")
    states = reference_loop(key, net, lambda n, k: loss(n), STEPS, trainable)
    assert_trained_like(out, hist, states, LOG_STEPS, loss)
    np.testing.assert_allclose(hist["test_loss"], hist["loss"], rtol=0)
    assert float(hist["loss"][-1]) < float(hist["loss"][0])  # it learns


@pytest.mark.parametrize("loss_name", ["square", "hinge", "logistic"])
@pytest.mark.slow
def test_online_matches_hand_loop(getkey, loss_name):
    if loss_name == "square":
        dist = jf.data.Teacher(teacher_net("relu"), noise=0.1)
        act = "relu"
    else:
        dist = jf.data.GaussianMixture.xor(D)
        act = "relu"
    net = student(getkey(), act, b_std=0.2)
    key = getkey()
    obj = Online(dist, batch=32, loss=loss_name, n_test=500)
    out, hist = jf.train(
        key, net, obj, optimizer(), steps=STEPS, log_every=LOG_EVERY, weight_decay=wd_schedule()
    )
    by_hand = BY_HAND[loss_name]

    def loss_of(n, k):
        X, y = dist.sample(k, 32)
        return by_hand(n(X), y)

    Xt, yt = dist.sample(jax.random.split(key)[0], 500)
    states = reference_loop(key, net, loss_of, STEPS)
    assert_trained_like(out, hist, states, LOG_STEPS, lambda n: by_hand(n(Xt), yt))
    if LOSSES[loss_name].margin:
        err = [float(jnp.mean(jnp.sign(states[s](Xt)) != yt)) for s in LOG_STEPS]
        np.testing.assert_allclose(hist["test_error"], err)


@pytest.mark.parametrize(
    "loss_name, batch", [("square", None), ("hinge", 16), ("logistic", None), ("square", 16)]
)
@pytest.mark.slow
def test_dataset_matches_hand_loop(getkey, loss_name, batch):
    dist = jf.data.GaussianMixture.xor(D)
    X, y = dist.sample(getkey(), 64)
    Xt, yt = dist.sample(getkey(), 100)
    net = student(getkey(), "relu", b_std=0.2)
    key = getkey()
    obj = Dataset(X, y, batch=batch, loss=loss_name, test=(Xt, yt))
    out, hist = jf.train(
        key, net, obj, optimizer(), steps=STEPS, log_every=LOG_EVERY, weight_decay=wd_schedule()
    )
    by_hand = BY_HAND[loss_name]

    def loss_of(n, k):
        if batch is None:
            return by_hand(n(X), y)
        idx = jax.random.choice(k, 64, (batch,), replace=False)
        return by_hand(n(X[idx]), y[idx])

    states = reference_loop(key, net, loss_of, STEPS)
    assert_trained_like(out, hist, states, LOG_STEPS, lambda n: by_hand(n(X), y))
    want = [float(by_hand(states[s](Xt), yt)) for s in LOG_STEPS]
    np.testing.assert_allclose(hist["test_loss"], want, rtol=1e-10)


def test_loss_derivatives_at_zero():
    for loss in LOSSES.values():
        d = jax.grad(lambda z, fn=loss.fn: fn(z, 1.0))(0.0)  # margin z = y·f with y = 1
        assert float(d) == loss.derivative_at_zero, loss.name


@pytest.mark.slow
def test_padding_trains_like_the_unpadded_network(getkey):
    key = getkey()
    padded = jf.TwoLayer.init(key, 5, D, "sigma_ge2", "gaussian", max_width=9)
    assert padded.width == 9 and int(padded.n_active) == 5
    plain = jf.TwoLayer(padded.W[:5], padded.b[:5], padded.a[:5], "sigma_ge2")
    obj = Population(teacher_net())
    opt = optax.adamw(1e-2, weight_decay=0.1)  # decoupled decay must not move the padding either
    kw = dict(steps=50, log_every=10, weight_decay={"W": 1e-2, "a": wd_schedule()})
    k = getkey()
    out_p, hist_p = jf.train(k, padded, obj, opt, **kw)
    out_u, hist_u = jf.train(k, plain, obj, opt, **kw)
    for name in ("W", "b", "a"):
        np.testing.assert_allclose(getattr(out_p, name)[:5], getattr(out_u, name), rtol=1e-12)
        np.testing.assert_array_equal(getattr(out_p, name)[5:], getattr(padded, name)[5:])
    for name in ("loss", "penalty", "a_norm", "W_norm"):
        np.testing.assert_allclose(hist_p[name], hist_u[name], rtol=1e-12)
    assert float(hist_p["loss"][-1]) < float(hist_p["loss"][0])


@pytest.mark.parametrize("trainable", [("a",), ("W",), ("W", "a"), ("b",)])
@pytest.mark.slow
def test_frozen_leaves_are_bitwise_unchanged(getkey, trainable):
    dist = jf.data.GaussianMixture.xor(D)
    X, y = dist.sample(getkey(), 50)
    net = student(getkey(), "relu", b_std=0.3)
    out, _ = jf.train(
        getkey(),
        net,
        Dataset(X, y, loss="logistic"),
        optax.adam(1e-2),
        steps=20,
        trainable=trainable,
        weight_decay=0.1,
    )
    for name in ("W", "b", "a", "scale", "mask"):
        same = np.array_equal(np.asarray(getattr(out, name)), np.asarray(getattr(net, name)))
        assert same == (name not in trainable), name


def test_random_features_is_the_convex_readout(getkey):
    """trainable=("a",) with square loss and decay converges to the ridge solution."""
    dist = jf.data.Teacher(teacher_net("relu"), noise=0.1)
    X, y = dist.sample(getkey(), 200)
    net = student(getkey(), "relu", width=6)
    lam = 1e-2
    out, _ = jf.train(
        getkey(), net, Dataset(X, y), optax.sgd(0.2), steps=4000, trainable="a", weight_decay=lam
    )
    # minimiser of mean (F a − y)² + (λ/2)|a|²: (2FᵀF/n + λI) a = 2Fᵀy/n
    F = np.asarray(net.features(X))
    a = np.linalg.solve(2 * F.T @ F / 200 + lam * np.eye(6), 2 * F.T @ np.asarray(y) / 200)
    np.testing.assert_allclose(out.a, a, rtol=1e-8, atol=1e-10)


def test_divergence_freezes_at_the_last_finite_state(getkey):
    teacher = teacher_net()
    net = student(getkey(), width=7)
    loss = lambda n: jf.population_loss(n, teacher)  # noqa: E731
    lr = 40.0
    out, hist = jf.train(getkey(), net, Population(teacher), optax.sgd(lr), steps=60, log_every=5)
    assert hist["diverged"][-1] and not hist["diverged"][0]
    for v in hist.values():
        assert np.all(np.isfinite(np.asarray(v, float)))
    # by hand: plain GD until the loss or the parameters stop being finite
    states, cur = [net], net
    grad, loss = eqx.filter_jit(eqx.filter_grad(loss)), eqx.filter_jit(loss)
    for _ in range(60):
        g = grad(cur)
        cur = eqx.tree_at(
            lambda m: (m.W, m.b, m.a), cur, (cur.W - lr * g.W, cur.b - lr * g.b, cur.a - lr * g.a)
        )
        if not (np.isfinite(float(loss(cur))) and np.all(np.isfinite(cur.W))):
            break
        states.append(cur)
    last = states[-1]
    np.testing.assert_allclose(out.W, last.W, rtol=1e-10)
    np.testing.assert_allclose(out.a, last.a, rtol=1e-10)
    first_bad = int(np.argmax(np.asarray(hist["diverged"])))
    assert np.all(np.asarray(hist["loss"])[first_bad:] == np.asarray(hist["loss"])[-1])


@pytest.mark.slow
def test_population_and_online_agree_within_monte_carlo_error(getkey):
    """One SGD step on Online(batch B) is unbiased for the Population step (z-scores over R
    independent keys), and the held-out loss estimates the population loss."""
    teacher = teacher_net("relu")
    net = student(getkey(), "relu", width=8)
    pop, online = Population(teacher), Online(jf.data.Teacher(teacher), batch=2048, n_test=2048)
    lr, R = 0.5, 48
    p_net, p_hist = jf.train(getkey(), net, pop, optax.sgd(lr), steps=1)

    @jax.vmap
    def one(key):
        o_net, o_hist = jf.train(key, net, online, optax.sgd(lr), steps=1, trainable=("W", "a"))
        return o_net.W, o_net.a, o_hist["loss"][0]

    W, a, loss0 = one(jax.random.split(getkey(), R))
    for got, want in ((W, p_net.W), (a, p_net.a)):
        z = (np.mean(got, 0) - want) / (np.std(got, 0, ddof=1) / np.sqrt(R) + 1e-300)
        assert np.max(np.abs(z)) < 5, np.max(np.abs(z))
    z = (np.mean(loss0) - p_hist["loss"][0]) / (np.std(loss0, ddof=1) / np.sqrt(R))
    assert abs(z) < 5, z


@pytest.mark.slow
def test_vmap_over_seeds_and_learning_rates_compiles_once(getkey):
    teacher = teacher_net()
    obj = Population(teacher)

    def run(key, lr):
        net = jf.TwoLayer.init(key, 8, D, "sigma_ge2", "gaussian")
        out, hist = jf.train(key, net, obj, optax.sgd(lr), steps=30, log_every=10)
        return hist["loss"]

    sweep = jax.jit(jax.vmap(jax.vmap(run, (None, 0)), (0, None)))
    with compile_log() as first:
        losses = sweep(jax.random.split(getkey(), 3), jnp.array([0.01, 0.05]))
    assert losses.shape == (3, 2, 4)
    assert len([m for m in first if "run" in m]) == 1, first
    with compile_log() as second:
        sweep(jax.random.split(getkey(), 3), jnp.array([0.02, 0.2]))
    assert not second, second
    # a seed's run does not depend on the other lanes of the vmap
    net = jf.TwoLayer.init(jax.random.key(7), 8, D, "sigma_ge2", "gaussian")
    _, hist = jf.train(jax.random.key(7), net, obj, optax.sgd(0.05), steps=30, log_every=10)
    keys = jnp.stack([jax.random.key(7), jax.random.key(8)])
    np.testing.assert_allclose(sweep(keys, jnp.array([0.05]))[0, 0], hist["loss"], rtol=1e-12)


def test_program_size_does_not_grow_with_steps(getkey):
    """The loop is two nested lax.scans: 10 and 10,000 steps lower to the same program up to the
    trip counts (compile times are recorded in benchmarks/, not timed here)."""
    net = student(getkey())
    obj = Population(teacher_net())

    def lowered(steps):
        fn = jax.jit(lambda k, n: jf.train(k, n, obj, optax.sgd(0.1), steps=steps, log_every=10))
        return fn.lower(getkey(), net).as_text()

    short, long = lowered(10), lowered(10_000)
    assert abs(len(short.splitlines()) - len(long.splitlines())) <= 2
    assert len(long) < 1.05 * len(short)


def test_metrics_and_history_layout(getkey):
    net = student(getkey())
    obj = Population(teacher_net())

    def metrics(n):
        return {"first_norm": jnp.linalg.norm(n.W[0]), "W": n.W}

    out, hist = jf.train(getkey(), net, obj, optax.sgd(0.1), steps=10, log_every=5, metrics=metrics)
    assert hist["W"].shape == (3, 7, D)
    np.testing.assert_allclose(hist["W"][-1], out.W, rtol=0)
    np.testing.assert_allclose(hist["first_norm"][0], jnp.linalg.norm(net.W[0]), rtol=0)
    np.testing.assert_allclose(hist["W_norm"][0], jnp.linalg.norm(net.W), rtol=1e-14)
    np.testing.assert_allclose(hist["a_norm"][0], jnp.linalg.norm(net.a), rtol=1e-14)
    np.testing.assert_allclose(hist["penalty"], 0.0)


def _net():
    return jf.TwoLayer.init(jax.random.key(0), 4, D, "sigma_ge2")


def _obj():
    return Population(teacher_net())


def _train(**kw):
    args = dict(net=_net(), objective=_obj(), optimizer=optax.sgd(0.1), steps=10)
    args.update(kw)
    return jf.train(
        jax.random.key(0), args.pop("net"), args.pop("objective"), args.pop("optimizer"), **args
    )


BAD = [
    (lambda: _train(steps=0), ValueError, "steps"),
    (lambda: _train(steps=2.5), TypeError, "steps"),
    (lambda: _train(log_every=0), ValueError, "log_every"),
    (lambda: _train(log_every=11), ValueError, "log_every"),
    (lambda: _train(trainable=("W", "c")), ValueError, "trainable"),
    (lambda: _train(trainable=()), ValueError, "trainable"),
    (lambda: _train(trainable=("W", "b", "a")), ValueError, "no gradient for"),
    (lambda: _train(optimizer=lambda g: g), TypeError, "optimizer"),
    (lambda: _train(optimizer=optax.sgd), TypeError, "optimizer"),
    (lambda: _train(objective="population"), TypeError, "objective"),
    (
        lambda: _train(net=jf.TwoLayer.init(jax.random.key(0), 4, D + 1, "sigma_ge2")),
        ValueError,
        "dim",
    ),
    (
        lambda: _train(net=jf.TwoLayer.init(jax.random.key(0), 4, D, "relu")),
        ValueError,
        "activation",
    ),
    (lambda: _train(weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda: _train(weight_decay=float("nan")), ValueError, "weight_decay"),
    (lambda: _train(weight_decay=jnp.ones(3)), ValueError, "weight_decay"),
    (lambda: _train(trainable=("a",), weight_decay={"W": 0.1}), ValueError, "weight_decay"),
    (lambda: _train(metrics=lambda n: {"loss": n.a}), ValueError, "metrics"),
    (lambda: _train(metrics=3), TypeError, "metrics"),
    (
        lambda: _train(net=jf.init_ensemble(jax.random.key(0), [4], D, "sigma_ge2", seeds=2)),
        ValueError,
        "net",
    ),
    (lambda: Online(jf.data.GaussianMixture.xor(D), batch=0), ValueError, "batch"),
    (lambda: Online(jf.data.GaussianMixture.xor(D), loss="l1"), ValueError, "loss"),
    (lambda: Online("xor"), TypeError, "dist"),
    (lambda: Dataset(np.ones((5, D)), np.ones(5), batch=6), ValueError, "batch"),
    (lambda: Dataset(np.ones((5, D)), np.ones(4)), ValueError, "y"),
    (
        lambda: Dataset(np.ones((5, D)), np.ones(5), test=(np.ones((3, D + 1)), np.ones(3))),
        ValueError,
        "test",
    ),
    (lambda: Dataset(np.ones((5, D)), np.ones(5), loss="mse"), ValueError, "loss"),
    (lambda: Population(teacher_net(), degree=0), ValueError, "degree"),
    (lambda: Population(np.ones(3)), TypeError, "teacher"),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_input_names_the_argument_before_compiling(call, exc, match, no_compile):
    with pytest.raises(exc, match=match):  # builds (and caches) the nets and objectives
        call()
    with no_compile(), pytest.raises(exc, match=match):  # nothing of the training compiles
        call()


@pytest.mark.slow
def test_training_scan_step_coordinate_divergence_and_one_compile(tmp_path):
    """A training experiment in the scan engine: trajectories carry a `step` coordinate, the
    width × lr grid is one program, a diverged run is flagged (and masked), and every value is
    the per-seed `jf.train` run."""
    from jaxfeat import experiments, plotting, scan, summarize
    from jaxfeat.experiments.teacher_student import run

    grid = {"width": [3, 5], "lr": [0.05, 60.0]}
    params = {"dim": 6, "steps": 40, "log_every": 10}
    with compile_log() as msgs:
        ds = scan(
            "teacher_student",
            grid,
            3,
            params=params,
            out=tmp_path / "t.zarr",
            chunk_size=3,
            progress=False,
        )
    assert len([m for m in msgs if "jit(chunk)" in m]) == 1, msgs
    assert ds["loss"].dims == ("width", "lr", "seed", "step")
    np.testing.assert_array_equal(ds["step"].values, [0, 10, 20, 30, 40])
    assert ds["best_cosine"].dims == ("width", "lr", "seed", "teacher")
    div = np.asarray(ds["diverged"].values)
    assert not div[:, 0].any() and div[:, 1].all()  # lr = 60 blows up, lr = 0.05 does not
    assert np.isnan(ds["final_loss"].values[:, 1]).all()  # masked: NaN means diverged
    for s in range(3):
        key = jax.random.fold_in(jax.random.key(0), s)
        out = run(key, width=5, max_width=5, lr=0.05, **params)
        np.testing.assert_allclose(ds["loss"].values[1, 0, s], out["loss"], rtol=1e-10)
        np.testing.assert_allclose(
            ds["best_cosine"].values[1, 0, s], out["best_cosine"], rtol=1e-10
        )
    assert int(summarize(ds)["n_seeds"].sel(lr=60.0).sum()) == 0
    # the figure, also with a third grid axis (fixed at its first value and named)
    exp = experiments.get("teacher_student")
    assert os.path.exists(plotting.draw(ds, str(tmp_path / "f.png"), exp))
    ds3 = ds.expand_dims(weight_decay=[0.0, 1e-3]).transpose("width", "lr", "weight_decay", ...)
    assert os.path.exists(plotting.draw(ds3, str(tmp_path / "g.png"), exp))
