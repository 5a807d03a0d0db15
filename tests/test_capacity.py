"""Sample sizes as dynamic values below a static capacity (DESIGN §4, issue "fast to start").

Every function that takes a size as a value computes on `capacity` rows (or neurons, or
coordinates) of which the first n are live. The reference is always the same function at the
exact size, without a capacity: outputs agree to rounding in float64 (≤ 1e-12 relative), and
integer outputs (spike counts) are identical; the draws are the same bit for bit.
"""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same, compile_log

import jaxfeat as jf
from jaxfeat import _sized
from jaxfeat._checks import InputError, InputTypeError
from jaxfeat._scan import cost
from jaxfeat.algorithms.one_gradient_step import one_step, one_step_spikes
from jaxfeat.experiments import spikes

Capacity = jf.Capacity
KEY = jax.random.key(7)


# ----------------------------------------------------------------------------- draws


@pytest.mark.slow
def test_normal_live_block_is_the_exact_draw_and_the_rest_zero():
    exact = jax.random.normal(KEY, (5, 3))
    for shape in [(5, 3), (9, 3), (5, 8), (12, 11)]:
        got = _sized.normal(KEY, shape, (5, 3))
        np.testing.assert_array_equal(got[:5, :3], exact)
        assert float(jnp.sum(jnp.abs(got))) == pytest.approx(float(jnp.sum(jnp.abs(exact))))
    traced = jax.jit(lambda n, d: _sized.normal(KEY, (12, 11), (n, d)))
    np.testing.assert_array_equal(traced(5, 3)[:5, :3], exact)


DISTRIBUTIONS = {
    "single_index": lambda: jf.data.SingleIndex(np.eye(1, 6)[0], [0.0, 1.0, 0.5], noise=0.1),
    "multi_index": lambda: jf.data.MultiIndex(np.eye(2, 6), [0.0, 1.0, 0.5], noise=0.1),
    "teacher": lambda: jf.data.Teacher(jf.TwoLayer.init(KEY, 3, 6, "relu"), noise=0.1),
    "xor": lambda: jf.data.GaussianMixture.xor(6),
    "parity": lambda: jf.data.SparseParity(6, (0, 2), structured_weight=0.5),
    "linear": lambda: jf.data.LinearSeparable(np.ones(6), 0.1, flip=0.1),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.slow
def test_sample_below_a_capacity_is_the_exact_sample(name):
    dist = DISTRIBUTIONS[name]()
    X, y = dist.sample(KEY, 13)
    for cap in (13, 20, 64):
        Xc, yc = dist.sample(KEY, 13, capacity=cap)
        np.testing.assert_array_equal(Xc[:13], X)
        np.testing.assert_array_equal(yc[:13], y)
        assert not np.any(np.asarray(Xc[13:])) and not np.any(np.asarray(yc[13:]))
    # a traced n: one program for every n
    draw = jax.jit(lambda n: dist.sample(KEY, n, capacity=64))
    with compile_log():
        draw(jnp.int32(13))
    with compile_log() as again:
        Xt, _ = draw(jnp.int32(40))
    assert not again  # (jit fuses differently from eager ops: equal to rounding)
    np.testing.assert_allclose(Xt[:40], dist.sample(KEY, 40)[0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_live_dim_pads_the_inputs_with_the_exact_draw(kind):
    d, cap = 5, 9

    def make(dim, live=None):
        if kind == "single":
            return jf.data.SingleIndex(np.eye(1, dim)[0], [0.0, 1.0, 0.5], 0.1, live_dim=live)
        return jf.data.MultiIndex(np.eye(2, dim), [0.0, 1.0, 0.5], 0.1, live_dim=live)

    X, y = make(d).sample(KEY, 11)
    Xp, yp = make(cap, d).sample(KEY, 11, capacity=16)
    np.testing.assert_array_equal(Xp[:11, :d], X)
    np.testing.assert_array_equal(yp[:11], y)
    assert not np.any(np.asarray(Xp[:, d:])) and not np.any(np.asarray(Xp[11:]))
    with pytest.raises(InputError, match="Gaussian inputs"):
        jf.population_gradient(make(cap, d), jnp.ones((2, cap)), jnp.zeros(2))
    if kind == "multi":  # its second direction is e₂: not zero beyond live_dim = 1
        with pytest.raises(InputError, match="zero beyond"):
            make(cap, 1)


def test_bad_sizes_are_refused_with_the_argument_named():
    dist = DISTRIBUTIONS["single_index"]()
    with pytest.raises(InputError, match="n=30 exceeds its capacity 20"):
        dist.sample(KEY, 30, capacity=20)
    with pytest.raises(InputTypeError, match="n must be"):
        dist.sample(KEY, 2.5, capacity=20)
    with pytest.raises(InputTypeError, match="n must be a positive Python int"):
        jax.jit(lambda n: dist.sample(KEY, n))(jnp.int32(3))
    with pytest.raises(InputError, match="capacity.n"):
        Capacity(n=0)
    with pytest.raises(InputError, match="not for tile= or data="):
        one_step(KEY, dist, n=10, width=4, tile=5, capacity=Capacity(n=20))


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("form", ["primal", "dual"])
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.slow
def test_ridge_on_live_rows_is_the_ridge_of_those_rows(form, intercept):
    n, N, cap = (40, 9, 64) if form == "primal" else (9, 40, 30)
    k = jax.random.split(KEY, 4)
    F, y = jax.random.normal(k[0], (n, N)), jax.random.normal(k[1], (n,))
    Ft, yt = jax.random.normal(k[2], (17, N)), jax.random.normal(k[3], (17,))
    pad = lambda a: jnp.concatenate([a, jnp.full((cap - n,) + a.shape[1:], 3.0)])  # noqa: E731
    lams = jnp.logspace(-3, 0, 5)
    for loss in ("mean", "sum"):
        conv = dict(intercept=intercept, loss=loss, feature_scale=0.5)
        ref = jf.ridge_path(F, y, lams, Ft, yt, **conv)
        got = jf.ridge_path(pad(F), pad(y), lams, Ft, yt, n=n, **conv)
        ref["gram_eigenvalues"] = ref["gram_eigenvalues"][-5:]  # padding adds zeros below
        got["gram_eigenvalues"] = got["gram_eigenvalues"][-5:]
        assert_same(got, ref)
        ref1 = jf.ridge.ridge_fit(F, y, 0.3, Ft, yt, **conv)
        got1 = jax.jit(lambda n: jf.ridge.ridge_fit(pad(F), pad(y), 0.3, Ft, yt, n=n, **conv))(n)
        assert_same(got1, ref1)


def test_spectrum_and_spikes_of_live_rows():
    k = jax.random.split(KEY, 3)
    n, N, cap = 60, 12, 90
    F = jax.random.normal(k[0], (n, N)) + 2.0 * jax.random.normal(k[1], (n, 1))
    H = jax.random.normal(k[2], (n, 3))
    pad = lambda a: jnp.concatenate([a, jnp.full((cap - n, a.shape[1]), -1.5)])  # noqa: E731
    s, U, V = jf.feature_spectrum(F, 4)
    sp, Up, Vp = jf.feature_spectrum(jf.spectrum.DenseFeatures(pad(F), n=n), 4)
    np.testing.assert_allclose(sp, s, rtol=1e-12)
    np.testing.assert_allclose(np.abs(Vp), np.abs(V), atol=1e-10)
    assert Up is not None and U is not None
    np.testing.assert_allclose(np.abs(Up[:n]), np.abs(U), atol=1e-10)
    assert not np.any(np.asarray(Up[n:]))
    ref = jf.count_spikes(F, H, k=4)
    got = jax.jit(lambda n: jf.count_spikes(jf.spectrum.DenseFeatures(pad(F), n=n), pad(H), k=4))(n)
    assert_same(got, ref)


# ----------------------------------------------------------------------------- one step


def _index(d, cap_d=None):
    beta = np.eye(1, cap_d or d)[0]
    live = None if cap_d is None else d
    return jf.data.SingleIndex(beta, [0.0, 1.0, 0.7], noise=0.1, live_dim=live)


@pytest.mark.parametrize(
    "activation, scheme, a_law, labels",
    [
        ("relu", "sphere", "gaussian", None),
        ("sigma_ge2", "gaussian", "sign", "centred"),
        ("tanh", "sphere", "gaussian", "moments"),
    ],
)
@pytest.mark.slow
def test_one_step_below_capacities_is_the_exact_step(activation, scheme, a_law, labels):
    n, d, N = 50, 7, 11
    kw = dict(activation=activation, scheme=scheme, a_law=a_law, labels=labels, alpha=0.3)
    kw |= dict(output_scale="1/sqrt(width)")
    ref = one_step(KEY, _index(d), n=n, width=N, **kw)

    @jax.jit
    def padded(n, d, N):
        return one_step(KEY, _index(d, 10), n=n, width=N, capacity=Capacity(n=80, width=16), **kw)

    got = padded(n, d, N)
    for field in ("W0", "W1"):
        g, r = getattr(got, field), getattr(ref, field)
        np.testing.assert_allclose(g[:N, :d], r, rtol=0, atol=1e-13)
        assert not np.any(np.asarray(g[N:])) and not np.any(np.asarray(g[:, d:]))
    np.testing.assert_allclose(got.a[:N], ref.a, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got.zeta[:d], ref.zeta, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got.eta, ref.eta, rtol=1e-14)
    np.testing.assert_allclose(got.scale, ref.scale, rtol=1e-15)


SPIKE_CASES = {
    "fresh": dict(),
    "fresh, more neurons than samples (dual ridge)": dict(width=90),
    "step readout, label rule": dict(readout="step", labels="moments"),
    "one lambda, no intercept, scaled": dict(
        lambdas=0.5, intercept=False, ridge_scale="1/sqrt(width)", ridge_loss="sum"
    ),
    "shifted relu, gaussian init": dict(activation="shifted_relu", scheme="gaussian"),
}


@pytest.mark.parametrize("case", sorted(SPIKE_CASES))
@pytest.mark.slow
def test_one_step_spikes_below_capacities_is_the_exact_run(case):
    kw = dict(n_test=40, k=4, degree=4, alpha=0.35, output_scale="1/sqrt(width)")
    kw |= SPIKE_CASES[case]
    n, d = 60, 12
    N = kw.pop("width", 15)
    step = kw.get("readout") == "step"
    ref = one_step_spikes(KEY, _index(d), n=n, n_tilde=None if step else 70, width=N, **kw)
    cap = Capacity(n=100, n_tilde=None if step else 120, width=N + 20)

    @jax.jit
    def padded(n, nt, d, N):
        return one_step_spikes(
            KEY, _index(d, 20), n=n, n_tilde=None if step else nt, width=N, capacity=cap, **kw
        )

    got = padded(n, 70, d, N)
    assert_same(got, ref, rtol=1e-11)


@pytest.mark.slow
def test_spikes_experiment_sweeps_n_with_one_program():
    """The experiment's n below `n_capacity` (dim = width = ratio·n follow it): the numbers of
    each n's exact run, and a second n compiles nothing."""
    run = jax.jit(lambda n: spikes.run(KEY, n=n, n_capacity=96, n_test=30, k=3, degree=3))
    with compile_log():
        got = run(jnp.int32(64))
    with compile_log() as again:
        got2 = run(jnp.int32(90))
    assert not again
    assert_same(got, spikes.run(KEY, n=64, n_test=30, k=3, degree=3), rtol=1e-11)
    assert_same(got2, spikes.run(KEY, n=90, n_test=30, k=3, degree=3), rtol=1e-11)


def test_spikes_refuses_a_ratio_that_rounds_differently_in_the_traced_dtype(monkeypatch):
    # 0.5·n rounds half to even in both: fine; a forced mismatch is refused by name
    spikes._size("dim", None, 0.5, 11, 20)
    monkeypatch.setattr(spikes.np, "round", lambda x: np.floor(x) + 3)
    with pytest.raises(InputError, match="dim: ratio·n"):
        spikes._size("dim", None, 0.5, 11, 20)


# ----------------------------------------------------------------------------- buckets


def _brute_force(values, cost_of, compile_cost, programs):
    best = None
    k = len(values)
    for cuts in itertools.product([False, True], repeat=k - 1):
        buckets, cur = [], [values[0]]
        for v, cut in zip(values[1:], cuts):
            if cut:
                buckets.append(cur)
                cur = [v]
            else:
                cur.append(v)
        buckets.append(cur)
        if programs is not None and len(buckets) != programs:
            continue
        total = sum(compile_cost + len(b) * cost_of(max(b)) for b in buckets)
        if best is None or total < best[0] - 1e-12:
            best = (total, buckets)
    assert best is not None
    return best


@pytest.mark.parametrize("compile_cost", [0.0, 1.0, 5.0, 40.0, 1e6])
@pytest.mark.parametrize("programs", [None, 1, 2, 9])
def test_buckets_are_the_cheapest_contiguous_split(compile_cost, programs):
    values = [100, 250, 500, 1000, 2000]
    cost_of = lambda v: (v / 250) ** 3  # noqa: E731
    got = cost.choose_buckets(values, cost_of, compile_cost, programs)
    total = sum(compile_cost + len(b) * cost_of(max(b)) for b in got)
    want, _ = _brute_force(
        values, cost_of, compile_cost, min(programs or 99, 5) if programs else None
    )
    assert total == pytest.approx(want)
    assert sorted(v for b in got for v in b) == values
    if programs is not None:
        assert len(got) == min(programs, len(values))
    elif compile_cost == 0.0:
        assert got == [[v] for v in values]  # compiles are free: every value exact
    elif compile_cost == 1e6:
        assert got == [values]  # compiles dominate: one program


@pytest.mark.slow
def test_a_scan_over_three_sample_sizes_compiles_the_programs_it_announces():
    grid = {"alpha": [0.1, 0.3], "n": [40, 48, 200]}
    params = dict(n_test=30, k=3, degree=3)
    summary = jf.plan_summary("spikes", grid, 4, params=params, buckets=2)
    assert "compiled programs: 2: n ∈ {40, 48} at capacity 48; n=200" in summary
    with compile_log() as names:
        ds = jf.scan("spikes", grid, 4, params=params, buckets=2, progress=False)
    assert sum("chunk" in name for name in names) == 2, names
    with compile_log():
        exact = jf.scan("spikes", grid, 4, params=params, buckets="off", progress=False)
    for name in ("n_outliers", "n_aligned"):
        np.testing.assert_array_equal(ds[name].values, exact[name].values)
    for name in ("singular_values", "test_mse_w1", "f0_edge", "zeta_norm"):
        np.testing.assert_allclose(ds[name].values, exact[name].values, rtol=1e-10)


def test_bad_buckets_is_refused_before_anything_compiles(no_compile):
    with no_compile(), pytest.raises(InputError, match="buckets must be"):
        jf.scan("spikes", {"n": [40, 48]}, 2, buckets="some", progress=False)


@pytest.mark.slow
def test_the_dry_run_compiles_nothing_and_its_eta_counts_compiling():
    grid = {"alpha": [0.1, 0.3], "n": [40, 48, 200]}
    params = dict(n_test=30, k=3, degree=3)
    with compile_log() as names:
        summary = jf.plan_summary("spikes", grid, 4, params=params)
    assert not [n for n in names if "chunk" in n], names
    eta = next(line for line in summary.splitlines() if line.startswith("ETA"))
    assert "compiling ≈" in eta and "computing ≈" in eta and "tracing ≈" in eta
    ds = jf.scan("spikes", grid, 4, params=params, buckets=2, progress=False)
    programs = json.loads(ds.attrs["programs"])
    assert sorted(p["program"] for p in programs) == ["n ∈ {40, 48} at capacity 48", "n=200"]
    assert all(p["compile_s"] > 0 and p["equations"] > 0 for p in programs)


def test_the_progress_eta_counts_programs_still_to_compile():
    from jaxfeat._scan.loop import _Rate

    class Runner:
        workers = 1

        def __init__(self, pending):
            self.pending = pending

        def pending_compile_seconds(self):
            return self.pending

        def compiling_in_loop(self):
            return 0.0

        def chunk_seconds_estimate(self):
            return 2.0

    class Bar:
        def set_postfix_str(self, text, refresh=False):
            self.text = text

        def update(self):
            pass

    bar = Bar()
    rate = _Rate(bar, Runner(5.0), total=4)
    assert rate.eta(0.0) == pytest.approx(5.0 + 4 * 2.0)  # before any chunk: the estimate
    assert "ETA 13 s" in bar.text
    rate.runner.pending = 0.0
    rate.chunks = 2
    assert rate.eta(6.0) == pytest.approx(2 * 3.0)  # then the pace measured so far
