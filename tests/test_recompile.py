"""Nothing recompiles: every public entry point, called a second time with new values of the
same shapes, compiles nothing (DESIGN §6.7).

Each check has a positive control: the first call, on shapes no other test uses, must be seen
compiling, so that a blind compile counter (say, JAX renamed its monitoring event) fails here
instead of every "nothing compiled" passing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compile_log

import jaxfeat as jf

# odd sizes that no other test uses: the first call must compile (the positive control)
D, N_ROWS, WIDTH = 11, 37, 13


def _spikes():
    return getattr(jf, "one_step_spikes", None) or jf.algorithms.one_step_spikes


def first_compiles_second_does_not(first, second):
    with compile_log() as before:
        jax.block_until_ready(first())
    assert before, "control: the first call compiled nothing (or the compile counter is blind)"
    with compile_log() as after:
        jax.block_until_ready(second())
    assert not after, f"the second call (new values, same shapes) compiled: {after}"


def single_index(key, d=D):
    beta = jax.random.normal(key, (d,))
    return jf.data.SingleIndex(beta, [0.0, 1.0, 0.5], noise=0.1)


def test_compile_log_sees_a_compile():
    with compile_log() as names:
        jax.jit(lambda x: x * 2)(1.0)  # a new function object is never in the cache
    assert names


# Found by these tests: called eagerly, `one_step_spikes` rebuilt a `lax.scan` body closure on
# every call, and XLA compiled the scan again (`jit(scan)`) for new values of the same shapes.
# The public one-step, spectrum and Monte Carlo entry points now run module-level
# `eqx.filter_jit` bodies (Python scalars α, c, η, λ made arrays first): eager calls hit the
# cache like calls under `jax.jit`.
@pytest.mark.parametrize(
    "path, mode", [("dense", "eager"), ("krylov", "eager"), ("dense", "jit"), ("krylov", "jit")]
)
@pytest.mark.slow
def test_one_step_spikes(path, mode):
    size = {"n": N_ROWS, "n_tilde": 41, "width": WIDTH, "n_test": 29, "k": 3, "degree": 4}
    if path == "krylov":
        size.update(width=WIDTH + 2, tile=16, iters=2)  # the matrix-free path on LazyFeatures

    def run(key, dist, alpha, c):
        return _spikes()(key, dist, alpha=alpha, c=c, **size)

    run = jax.jit(run) if mode == "jit" else run

    def call(seed, alpha, c):
        key = jax.random.key(seed)
        return run(key, single_index(jax.random.fold_in(key, 1)), alpha, c)

    first_compiles_second_does_not(lambda: call(0, 0.2, 1.0), lambda: call(1, 0.35, 2.0))


@pytest.mark.slow
def test_ridge_path():
    def call(seed):
        k = jax.random.split(jax.random.key(seed), 4)
        F, y = jax.random.normal(k[0], (43, 17)), jax.random.normal(k[1], (43,))
        Ft, yt = jax.random.normal(k[2], (19, 17)), jax.random.normal(k[3], (19,))
        lambdas = jnp.logspace(-3, 0, 5) * (1 + seed)
        return jf.ridge_path(F, y, lambdas, Ft, yt)

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


DISTRIBUTIONS = {
    "single_index": lambda k: single_index(k, 7),
    "multi_index": lambda k: jf.data.MultiIndex(
        jnp.linalg.qr(jax.random.normal(k, (7, 2)))[0].T, [[0.0, 1.0], [0.5, 0.0]], noise=0.1
    ),
    "teacher": lambda k: jf.data.Teacher(jf.TwoLayer.init(k, 3, 7, "relu"), noise=0.1),
    "xor": lambda k: jf.data.GaussianMixture.xor(7),
    "parity": lambda k: jf.data.SparseParity(7, (0, 2, 5)),
    "linear": lambda k: jf.data.LinearSeparable(jax.random.normal(k, (7,)), 0.1),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.slow
def test_sample(name):
    """dist.sample, eagerly and under jit with the distribution as an argument: new keys and
    new array values (same shapes) compile nothing."""
    make, n = DISTRIBUTIONS[name], 53

    def call(seed):
        key = jax.random.key(seed)
        return make(jax.random.fold_in(key, 1)).sample(key, n)

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))
    jitted = jax.jit(lambda dist, key: dist.sample(key, n + 2))

    def jit_call(seed):
        key = jax.random.key(seed)
        return jitted(make(jax.random.fold_in(key, 1)), key)

    first_compiles_second_does_not(lambda: jit_call(0), lambda: jit_call(1))


def test_sample_under_jit_with_new_numeric_parameters():
    jitted = jax.jit(lambda dist, key: dist.sample(key, 59))
    first_compiles_second_does_not(
        lambda: jitted(jf.data.LinearSeparable(np.ones(7), 0.1, flip=0.05), jax.random.key(0)),
        lambda: jitted(jf.data.LinearSeparable(np.ones(7), 0.2, flip=0.1), jax.random.key(1)),
    )


@pytest.mark.parametrize(
    "activation, method",
    [("relu", "closed_form"), ("tanh", "hermite")],
)
def test_population_loss(activation, method):
    def call(seed):
        ks, kt = jax.random.split(jax.random.key(seed))
        student = jf.TwoLayer.init(ks, 6, D, activation, b_std=0.0)
        teacher = jf.TwoLayer.init(kt, 2, D, activation, b_std=0.0)
        return jf.population_loss(student, teacher, method=method, degree=9)

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


@pytest.mark.parametrize("kind", ["single_index", "mixture"])
@pytest.mark.slow
def test_population_gradient(kind):
    def call(seed):
        kd, kw, kb = jax.random.split(jax.random.key(seed), 3)
        dist = single_index(kd) if kind == "single_index" else jf.data.GaussianMixture.xor(D)
        W, b = jax.random.normal(kw, (WIDTH, D)), 0.1 * jax.random.normal(kb, (WIDTH,))
        return jf.population_gradient(dist, W, b)

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


def test_train():
    """A second run with a new key, new initial weights and a new teacher (same shapes and the
    same optimizer object) compiles nothing."""
    optimizer = optax.sgd(0.05)

    def call(seed):
        kn, kt, key = jax.random.split(jax.random.key(seed), 3)
        teacher = jf.TwoLayer.init(kt, 2, D, "sigma_ge2", "gaussian")
        net = jf.TwoLayer.init(kn, 5, D, "sigma_ge2", "gaussian")
        objective = jf.objectives.Population(teacher)
        return jf.train(key, net, objective, optimizer, steps=7, log_every=7)

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


def test_train_learning_rate_sweep_under_jit():
    """The way to sweep a learning rate: jit over a traced lr, one program for every value
    (called eagerly, each new value of `optax.sgd(lr)` compiles a program of its own). Here
    the optimizer closes over a tracer, which has no structural key: identity is used."""

    @jax.jit
    def run(key, lr):
        net = jf.TwoLayer.init(key, 5, D, "sigma_ge2", "gaussian")
        teacher = jf.TwoLayer.init(jax.random.fold_in(key, 1), 3, D, "sigma_ge2", "gaussian")
        objective = jf.objectives.Population(teacher)
        return jf.train(key, net, objective, optax.sgd(lr), steps=7, log_every=7)[1]["loss"]

    first_compiles_second_does_not(
        lambda: run(jax.random.key(0), 0.05), lambda: run(jax.random.key(1), 0.2)
    )


# --- jf.train keys its program on the optimizer's structure, not its identity (issue 27) ------


def _start(width):
    kn, kt, key = jax.random.split(jax.random.key(7), 3)
    return key, jf.TwoLayer.init(kn, width, D, "sigma_ge2", "gaussian"), kt


def _train_run(optimizer, *, width=6, steps=3, log_every=1, **kwargs):
    """A notebook cell: the same key, net and teacher each time, with the optimizer (and
    schedules, metrics) given, freshly made by the caller."""
    key, net, kt = _start(width)
    objective = jf.objectives.Population(jf.TwoLayer.init(kt, 2, D, "sigma_ge2", "gaussian"))
    return jf.train(key, net, objective, optimizer, steps=steps, log_every=log_every, **kwargs)


def _uncached(make):
    """`make()` after `jax.clear_caches()`: from a program compiled for it alone."""
    jax.clear_caches()
    with compile_log() as names:
        out = jax.block_until_ready(make())
    assert "jit(_train)" in names, names
    return out


def _same(a, b) -> bool:
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b)
    )


def test_train_with_a_fresh_optimizer_schedule_and_metrics_compiles_nothing():
    """The README's call pasted twice: a new `optax.sgd(0.05)`, a new weight-decay schedule and
    a new metrics lambda (same code, same values) reuse the compiled program."""

    def call():
        scale = 3.0
        decay = optax.piecewise_constant_schedule(1e-3, {2: 0.5})
        metrics = lambda net: {"scaled_a": scale * jnp.sum(net.a)}
        return _train_run(optax.sgd(0.05), width=7, weight_decay=decay, metrics=metrics)

    first_compiles_second_does_not(call, call)


@pytest.mark.slow
def test_train_learning_rates_get_their_own_programs():
    """`optax.sgd(0.1)` after `optax.sgd(0.05)` must not be served the program with 0.05 baked
    in: one SGD step moves the weights by −η∇L, twice as far at η = 0.1, and the result is
    that of a program compiled for it alone."""
    w0 = _start(6)[1].W
    slow = _train_run(optax.sgd(0.05), steps=1)
    fast = _train_run(optax.sgd(0.1), steps=1)
    assert not np.array_equal(slow[0].W, w0)
    np.testing.assert_allclose(fast[0].W - w0, 2 * (slow[0].W - w0), rtol=1e-9, atol=1e-14)
    assert _same(fast, _uncached(lambda: _train_run(optax.sgd(0.1), steps=1)))


@pytest.mark.parametrize("where", ["learning_rate", "weight_decay"])
@pytest.mark.slow
def test_train_schedule_hyperparameters_get_their_own_programs(where):
    """A schedule's boundary scale is a value in a closure two levels down (sgd → chain →
    scale_by_schedule → the schedule): changing it compiles a new program."""

    def make(scale):
        schedule = optax.piecewise_constant_schedule(0.05, {1: scale})
        if where == "learning_rate":
            return lambda: _train_run(optax.sgd(schedule), width=8)
        return lambda: _train_run(optax.sgd(0.05), width=8, weight_decay=schedule)

    half, quarter = make(0.5)(), make(0.25)()
    assert not _same(half, quarter)
    assert _same(quarter, _uncached(make(0.25)))


@pytest.mark.slow
def test_train_metrics_follow_their_closure_and_global_values():
    """A metrics lambda as a notebook defines it: changing a global it reads, or a value it
    closes over, is seen (re-running the cell, or even calling with the same lambda)."""
    cell = "metrics = lambda net: {'s': scale * jnp.sum(net.a)}"
    notebook = {"jnp": jnp, "scale": 2.0}
    exec(cell, notebook)
    two = _train_run(optax.sgd(0.05), width=9, metrics=notebook["metrics"])[1]["s"]
    notebook["scale"] = 3.0
    exec(cell, notebook)  # the cell run again: a fresh lambda, same code
    three = _train_run(optax.sgd(0.05), width=9, metrics=notebook["metrics"])[1]["s"]
    notebook["scale"] = 4.0  # the same lambda object, the global changed
    four = _train_run(optax.sgd(0.05), width=9, metrics=notebook["metrics"])[1]["s"]
    np.testing.assert_allclose(three, 1.5 * two, rtol=1e-12)
    np.testing.assert_allclose(four, 2.0 * two, rtol=1e-12)

    def closing_over(scale):
        return lambda net: {"s": scale * jnp.sum(net.a)}

    runs = [_train_run(optax.sgd(0.05), width=9, metrics=closing_over(v)) for v in (2.0, 5.0)]
    np.testing.assert_allclose(runs[0][1]["s"], two, rtol=1e-12)
    np.testing.assert_allclose(runs[1][1]["s"], 2.5 * two, rtol=1e-12)


def test_static_keys():
    """Equal for equal structure and values; different for any value; identity (never equal
    to a fresh object) when something has no sound structural key."""
    from jaxfeat._static_key import Static

    assert Static(optax.sgd(0.05)) == Static(optax.sgd(0.05))
    assert Static(optax.adamw(1e-3)) == Static(optax.adamw(1e-3))
    assert Static(optax.sgd(0.05)) != Static(optax.sgd(0.1))
    assert Static(optax.sgd(0.0)) != Static(optax.sgd(-0.0))  # −0.0 == 0.0 in Python
    assert Static(optax.sgd(0.05)) != Static(optax.sgd(0.05, momentum=0.9))
    assert Static(optax.sgd(np.float32(0.05))) != Static(optax.sgd(0.05))
    assert Static(optax.sgd(jnp.asarray(0.05))) == Static(optax.sgd(jnp.asarray(0.05)))
    assert Static(optax.sgd(jnp.asarray(0.05))) != Static(optax.sgd(jnp.asarray(0.1)))
    assert Static(optax.sgd(jnp.asarray(0.05))) != Static(optax.sgd(jnp.asarray([0.05])))
    assert Static(optax.sgd(jnp.float32(0.05))) != Static(optax.sgd(jnp.asarray(0.05)))

    class Config:  # an object whose attributes could change between calls
        lr = 0.05

    config = Config()
    reads_config = lambda: optax.sgd(lambda t: config.lr)
    first = reads_config()
    assert Static(first) == Static(first) and Static(first) != Static(reads_config())

    # a notebook cell reading a class attribute, run twice, then again after a change
    cell = "make = lambda: optax.sgd(lambda t: Config.lr)"
    notebook = {"optax": optax, "Config": Config}
    keys = []
    for lr in (0.05, 0.05, 0.1):
        Config.lr = lr
        exec(cell, notebook)
        keys.append(Static(notebook["make"]()))
    assert keys[0] == keys[1] != keys[2]


@pytest.mark.parametrize("method", ["dense", "krylov"])
@pytest.mark.slow
def test_feature_spectrum_and_count_spikes(method):
    def call(seed):
        k = jax.random.split(jax.random.key(seed), 3)
        X, W = jax.random.normal(k[0], (41, D)), jax.random.normal(k[1], (WIDTH, D))
        F = jf.LazyFeatures(X, W, "relu", tile=16) if method == "krylov" else jax.nn.relu(X @ W.T)
        spec = jf.feature_spectrum(F, 3, method=method, key=k[2], iters=2)[0]
        H = jf.spectrum.hermite_features(X, W[0], 3)
        kw = dict(direction=W[0], degree=3) if method == "krylov" else dict(H=H)
        spikes = jf.count_spikes(F, k=3, method=method, key=k[2], iters=2, **kw)
        return spec, spikes["singular_values"]

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


def test_one_step():
    def call(seed):
        key = jax.random.key(seed)
        dist = single_index(jax.random.fold_in(key, 1))
        return jf.one_step(key, dist, n=N_ROWS, width=WIDTH, alpha=0.1 + 0.1 * seed).W1

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


def test_monte_carlo_gradient():
    def call(seed):
        key = jax.random.key(seed)
        W = jax.random.normal(key, (WIDTH, D))
        return jf.monte_carlo_gradient(key, single_index(key), W, jnp.zeros(WIDTH), 333)[0]

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


@pytest.mark.slow
def test_gradient_features_and_local_convergence():
    xor = jf.data.GaussianMixture.xor(D)

    def shi(seed):
        key = jax.random.key(seed)
        return jf.gradient_features(key, xor, directions=xor.means, width=10, n=N_ROWS, n_test=19)

    first_compiles_second_does_not(lambda: shi(0), lambda: shi(1))

    def zhou_ge(seed):
        return jf.local_convergence(jax.random.key(seed), dim=D, teacher=(1.0, 0.7), width=5)

    first_compiles_second_does_not(lambda: zhou_ge(0), lambda: zhou_ge(1))


def test_ensembles_and_gradient_feature_sets():
    xor = jf.data.GaussianMixture.xor(D)

    def call(seed):
        key = jax.random.key(seed)
        nets = jf.init_ensemble(key, [3, WIDTH], D, "relu", seeds=3)
        W = jax.random.normal(key, (WIDTH, D))
        frac = jf.gradient_feature_set(
            xor, W, jnp.zeros(WIDTH), xor.means, gamma=0.1, B_G=0.0, p=0.05
        )
        return nets.W, frac[0]

    first_compiles_second_does_not(lambda: call(0), lambda: call(1))


@pytest.mark.slow
def test_one_step_equivalence_and_spike_expansion():
    from jaxfeat.algorithms.equivalence import one_step_equivalence

    def call(seed, alpha, c):
        key = jax.random.key(seed)
        dist = single_index(jax.random.fold_in(key, 1))
        out = one_step_equivalence(
            key, dist, n=N_ROWS + 2, width=WIDTH, n_test=23, alpha=alpha, c=c, terms=2, steps=2
        )
        res = jf.one_step(key, dist, n=N_ROWS + 2, width=WIDTH, alpha=alpha, c=c)
        return out, jf.spectrum.spike_expansion(jnp.ones((5, D)), res, "shifted_relu", 2)

    first_compiles_second_does_not(lambda: call(0, 0.2, 1.0), lambda: call(1, 0.35, 2.0))
