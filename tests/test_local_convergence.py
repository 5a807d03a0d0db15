"""Zhou–Ge three stages: stage 1 against jax.grad, stage 2 against np.linalg.solve with a NumPy
kernel, the decay-vs-control phenomenon at a tiny size, bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat import plotting
from jaxfeat.algorithms.local_convergence import (
    draw_success,
    neuron_points,
    neuron_statistics,
    sampler_tries,
    stage_one,
    stage_two,
    teacher_directions,
)
from jaxfeat.experiments.local_convergence import (
    local_convergence_experiment,
    recovery_probability,
    recovery_threshold,
)


def _teacher(d=8):
    return jf.TwoLayer(np.eye(3, d), np.zeros(3), np.array([1.0, -0.8, 0.6]), "sigma_ge2")


def test_stage_one_is_minus_eta_times_the_population_gradient(getkey):
    teacher = _teacher()
    net = jf.TwoLayer.init(getkey(), 10, 8, "sigma_ge2", "small", w_std=0.01)
    W1 = stage_one(getkey(), net, jf.objectives.Population(teacher), 0.7).W

    def loss(W):
        return jf.population_loss(eqx.tree_at(lambda n: n.W, net, W), teacher)

    np.testing.assert_allclose(W1, -0.7 * jax.jit(jax.grad(loss))(net.W), rtol=1e-12, atol=1e-16)


def _numpy_kernel(A, B):
    """σ≥2 homogeneous neurons: |w||v| (√(1−ρ²) + ρ arcsin ρ − 1)/2π (MATH §2.1)."""
    nA, nB = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    r = np.clip((A / nA[:, None]) @ (B / nB[:, None]).T, -1, 1)
    return np.outer(nA, nB) * (np.sqrt(1 - r**2) + r * np.arcsin(r) - 1) / (2 * np.pi)


@pytest.mark.slow
def test_stage_two_population_and_sample_readouts(getkey):
    teacher = _teacher()
    W = np.asarray(jax.random.normal(getkey(), (9, 8)))
    net = jf.TwoLayer(W, np.zeros(9), np.ones(9), "sigma_ge2", mask=np.arange(9) < 7)
    out = stage_two(net, teacher, 1e-3)
    U = W[:7] / np.linalg.norm(W[:7], axis=1, keepdims=True)
    Kss, Kst = _numpy_kernel(U, U), _numpy_kernel(U, np.asarray(teacher.W))
    want = np.linalg.solve(Kss + 1e-3 * np.eye(7), Kst @ np.asarray(teacher.a))
    np.testing.assert_allclose(out.a[:7], want, rtol=1e-9)
    np.testing.assert_array_equal(out.a[7:], 0.0)  # padded neurons carry nothing
    np.testing.assert_allclose(np.linalg.norm(out.W, axis=1), 1.0, rtol=1e-14)
    X = np.asarray(jax.random.normal(getkey(), (300, 8)))
    y = np.asarray(teacher(X))
    F = np.abs(X @ U.T) / 2 - 1 / math.sqrt(2 * math.pi)  # unit σ≥2 neuron: |z|/2 − 1/√(2π)
    want = np.linalg.solve(F.T @ F / 300 + 1e-2 * np.eye(7), F.T @ y / 300)
    out = stage_two(net, teacher, 1e-2, (jnp.asarray(X), jnp.asarray(y)))
    np.testing.assert_allclose(out.a[:7], want, rtol=1e-9)


def test_neuron_statistics_by_hand():
    W_star = np.eye(2, 3)
    W = np.array([[2.0, 0.0, 0.0], [0.0, -0.5, 0.01], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    a = np.array([0.5, 1.0, 0.1, -0.2])
    st = neuron_statistics(W, a, np.ones(4, bool), W_star, np.array([1.0, 0.5]), 0.15)
    # neuron 0 near e1 (ã = 1), neuron 1 near −e2 (ã = 0.5), neurons 2, 3 far (0.1√2 + 0.6)
    np.testing.assert_allclose(st["near_weight"], [1.0, 0.5 * math.sqrt(1 + 4e-4)])
    np.testing.assert_allclose(st["far_mass"], 0.1 * math.sqrt(2) + 0.6)
    np.testing.assert_allclose(st["best_angle"], [0.0, math.atan(0.02)], atol=1e-12)
    assert not st["recovered"]
    st = neuron_statistics(W[:2], a[:2], np.ones(2, bool), W_star, np.array([1.0, 0.5]), 0.15)
    assert float(st["far_mass"]) == 0.0 and st["recovered"]  # 0.5·√1.0004 is within 1 % of 0.5
    st = neuron_statistics(
        W[:2], a[:2] * 1.02, np.ones(2, bool), W_star, np.array([1.0, 0.5]), 0.15
    )
    assert not st["recovered"]  # 2 % off


def test_neuron_points_against_numpy(getkey):
    """Angle to the nearest ±w*_j against NumPy's arccos (float64, angles well above √ε), an
    angle of 1e-9 rad resolved exactly (arccos of the cosine would give 0), |ã_i| = |a_i||w_i|,
    and NaN for padded neurons."""
    W_star = np.asarray(teacher_directions(getkey(), 3, 5, 0.5))
    W = np.array(jax.random.normal(getkey(), (6, 5)))
    W[4] = -2.0 * W_star[1]
    W[4] += 2e-9 * np.linalg.svd(W_star)[2][-1]  # a direction orthogonal to every teacher
    a = np.asarray(jax.random.normal(getkey(), (6,)))
    mask = np.arange(6) < 5
    pts = neuron_points(W, a, mask, W_star)
    cos = np.abs(W @ W_star.T) / np.linalg.norm(W, axis=1)[:, None]
    want = np.arccos(np.clip(cos.max(1), 0, 1))
    np.testing.assert_allclose(pts["angle"][:4], want[:4], rtol=1e-12)
    np.testing.assert_allclose(pts["angle"][4], 1e-9, rtol=1e-6)
    np.testing.assert_allclose(pts["weight"][:5], np.abs(a * np.linalg.norm(W, axis=1))[:5])
    assert np.isnan(pts["angle"][5]) and np.isnan(pts["weight"][5])


@pytest.mark.slow
def test_scan_per_neuron_outputs_padded_widths_not_diverged(tmp_path):
    """A width sweep pads to the largest width: the padded neurons are NaN, yet no seed is
    flagged diverged; far_mass and n_near agree with the per-neuron points; the figures draw."""
    ds = jf.scan(
        local_convergence_experiment,
        {"width": [2, 3], "decay": [1.0, 0.0]},
        2,
        params=dict(dim=4, teacher=(1.0, -0.7), phases=2, steps_per_phase=50, log_every=50),
        chunk_size=2,  # no one-seed memory probe
        progress=False,
    )
    assert ds.sizes["neuron"] == 3 and not ds["diverged"].any()
    ang, wt = ds["neuron_angle"], ds["neuron_weight"]
    assert ang.sel(width=2, neuron=2).isnull().all() and wt.sel(width=3).notnull().all()
    assert ds["neuron_angle_stage2"].sel(width=2, neuron=2).isnull().all()
    far = wt.where(ang >= 0.15).sum("neuron")
    np.testing.assert_allclose(far, ds["far_mass"], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal((ang < 0.15).sum("neuron"), ds["n_near"].sum("teacher"))
    for draw in (local_convergence_experiment.plot, plotting.neuron_points_figure):
        path = str(tmp_path / f"{draw.__name__}.png")
        assert draw(ds, path) == path


@pytest.mark.slow
def test_decay_concentrates_and_the_control_does_not(getkey):
    """MATH §5.3's picture at d = 8, two teachers, width 12: stage 1 puts ≥ 95 % of every
    neuron in the teacher subspace; with halving decay the far mass ends below 1e-2; without
    decay it stays above 0.1."""
    cfg = dict(dim=8, teacher=(1.0, -0.8), width=12, phases=4, steps_per_phase=1500, lr=0.1)
    run = jax.vmap(
        jax.vmap(lambda k, d: jf.local_convergence(k, decay=d, **cfg), (None, 0)), (0, None)
    )
    out = jax.jit(run)(jax.random.split(getkey(), 4), jnp.array([1.0, 0.0]))
    assert np.all(out["stage1_subspace_fraction"] > 0.95)
    far = np.asarray(out["far_mass"])
    assert np.all(far[:, 0] < 1e-2) and np.all(far[:, 1] > 0.1), far
    assert np.all(np.asarray(out["final_loss"]) < np.asarray(out["loss_stage2"]))
    assert not np.any(out["diverged"])


BAD = [
    (dict(dim=3, teacher=(1.0, 1.0, 1.0, 1.0)), "dim"),
    (dict(dim=0), "dim"),
    (dict(min_angle=2.0), "min_angle"),
    (dict(min_angle=0.0), "min_angle"),
    # 3 lines in the plane are at most 60° apart (Welch bound, tight): 61° is infeasible
    (dict(dim=2, teacher=(1.0, 1.0, 1.0), width=3, min_angle=math.radians(61)), "Welch"),
    # exactly 60° is feasible, but random draws meet it with probability 0
    (dict(dim=2, teacher=(1.0, 1.0, 1.0), width=3, min_angle=math.pi / 3), "too rare"),
    (dict(dim=4, teacher=(1.0, 1.0, 1.0, 1.0), min_angle=1.5), "min_angle"),
    (dict(teacher=()), "teacher"),
    (dict(teacher=(1.0, 0.0)), "teacher"),
    (dict(teacher=(1.0, float("nan"))), "teacher"),
    (dict(lambda0=-1.0), "lambda0"),
    (dict(ridge=-1e-3), "ridge"),
    (dict(lr=0.0), "lr"),
    (dict(eta1=-1.0), "eta1"),
    (dict(init_scale=0.0), "init_scale"),
    (dict(decay=0.5), "decay"),
    (dict(width=3), "width"),
    (dict(max_width=2, width=2), "width"),
    (dict(near=0.0), "near"),
    (dict(near=-0.1), "near"),
    (dict(near=2.0), "near"),
    (dict(n=0), "n"),
    (dict(phases=0), "phases"),
    (dict(steps_per_phase=0), "steps_per_phase"),
    (dict(log_every=0), "log_every"),
]


@pytest.mark.parametrize("kwargs, match", BAD)
def test_bad_input_names_the_argument(kwargs, match, no_compile):
    with no_compile(), pytest.raises(ValueError, match=match):
        jf.local_convergence(jax.random.key(0), **kwargs)


def _synthetic(widths=(4, 8, 16), ns=(100, 400), p=((0.0, 0.5, 1.0), (0.25, 0.75, 1.0)), S=100):
    """A fake local_convergence scan: recovered in the first round(p·S) seeds of each point."""
    import xarray as xr

    rec = np.zeros((2, len(ns), len(widths), S), bool)
    for i in range(len(ns)):
        for j in range(len(widths)):
            rec[0, i, j, : round(p[i][j] * S)] = True  # decay = 1
    dims = ("decay", "n", "width", "seed")
    coords = {"decay": [1.0, 0.0], "n": list(ns), "width": list(widths), "seed": np.arange(S)}
    return xr.Dataset(
        {"recovered": (dims, rec), "diverged": (dims, np.zeros_like(rec))}, coords=coords
    )


def test_recovery_probability_and_threshold_by_hand():

    ds = _synthetic()
    pr = recovery_probability(ds)
    np.testing.assert_array_equal(pr["p"].sel(n=100), [0.0, 0.5, 1.0])  # decay = 1 picked
    np.testing.assert_allclose(pr["se"].sel(n=400), np.sqrt([0.25 * 0.75 / 99] * 2 + [0.0]))
    # Wilson 95 %: 0/100 → [0, z²/(100 + z²)]; 50/100 → [0.4038, 0.5962] (tables); 100/100 → 1
    z2 = 1.959963984540054**2
    np.testing.assert_allclose(pr["lo"].sel(n=100), [0.0, 0.40383, 1 - z2 / (100 + z2)], atol=5e-5)
    np.testing.assert_allclose(pr["hi"].sel(n=100), [z2 / (100 + z2), 0.59617, 1.0], atol=5e-5)
    ds["diverged"][0, 0, 1, 0] = True  # a diverged seed counts as not recovered
    assert float(recovery_probability(ds)["p"].sel(n=100, width=8)) == 0.49
    ds["diverged"][0, 0, 1, 0] = False
    th = recovery_threshold(ds, 0.5, boot=200)
    # n = 100: p = 0.5 at width 8 exactly; n = 400: halfway (log2) between 4 and 8
    assert th[100][0] == 8.0 and th[400][0] == 2**2.5
    lo, hi = th[100][1:3]
    assert 4 < lo <= 8 <= hi < 16
    # level 0.9 at n = 100: log2 w = 3 + 0.4/0.5 between 8 and 16
    np.testing.assert_allclose(recovery_threshold(ds, 0.9, boot=10)[100][0], 2**3.8)
    np.testing.assert_allclose(
        recovery_threshold(ds, 0.9, fixed={"n": 100}, boot=10)[None][0], 2**3.8
    )
    assert np.isnan(recovery_threshold(ds.isel(width=[0, 1]), 0.9, boot=10)[100][0])


def test_recovery_heatmap_picks_and_names_axes(tmp_path):
    ds = _synthetic()
    assert plotting._heat_axes(ds) == (("width", "n"), {})
    ds3 = ds.expand_dims({"dim": [10, 20]}).transpose("decay", "dim", "n", "width", "seed")
    axes, fixed = plotting._heat_axes(ds3)
    assert axes == ("width", "dim") and fixed == {"n": 100}
    assert plotting._heat_axes(ds3, ("n", "dim"))[1] == {"width": 4}
    fig, ax = plotting._subplots()
    title = plotting._recovery_panel(ax, ds3)
    assert "width × dim of dim, n, width" in title and "fixed n=100" in title, title
    assert "fixed" not in plotting._recovery_panel(ax, ds)
    for d in (ds, ds3, ds.isel(n=[0])):  # two axes, three (one fixed), one (a single row)
        path = tmp_path / f"h{d.sizes['n']}{len(d.dims)}.png"
        assert plotting.recovery_heatmap(d, str(path)) == str(path) and path.exists()


def test_random_teachers_meet_min_angle_near_the_sampler_limit(getkey):
    """Feasible angles that random draws meet rarely (q ≈ 0.07): every seed's directions are
    unit and pairwise ≥ Δ apart (the sampler draws enough), checked in NumPy."""
    Delta = 1.1
    tries = sampler_tries(5, 8, Delta)
    assert 200 < tries <= 1024
    keys = jax.random.split(getkey(), 200)
    W = np.asarray(jax.jit(jax.vmap(lambda k: teacher_directions(k, 5, 8, Delta)))(keys))
    np.testing.assert_allclose(np.linalg.norm(W, axis=2), 1.0, rtol=1e-12)
    cos = np.abs(np.einsum("sid,sjd->sij", W, W)) - 2 * np.eye(5)
    assert np.all(np.arccos(np.minimum(cos.max(axis=(1, 2)), 1)) >= Delta)


def test_draw_success_against_the_exact_pair_probability():
    """Two uniform directions in R^d: t = u·v has t² ~ Beta(½, (d−1)/2), so they are ≥ Δ apart
    (as lines) with probability I_{cos²Δ}(½, (d−1)/2); the Monte Carlo estimate agrees within
    4 binomial standard errors."""
    from scipy.special import betainc

    for d, Delta in ((3, 1.0), (5, 1.2), (20, 1.3)):
        exact = betainc(0.5, (d - 1) / 2, math.cos(Delta) ** 2)
        se = math.sqrt(exact * (1 - exact) / 4096)
        assert abs(draw_success(2, d, Delta) - exact) < 4 * se, (d, Delta, exact)


def test_presets_pass_the_checks():
    """Every grid point of every preset passes check_config (no compile); the paper presets
    hold ≥ 256 seeds a point (issue 12)."""
    import itertools

    from jaxfeat.algorithms.local_convergence import check_config

    exp = local_convergence_experiment
    names = set(inspect_params(check_config)) - {"teacher"}
    for name, preset in exp.presets.items():
        grid = preset["grid"]
        for point in itertools.product(*grid.values()):
            p = exp.resolve({**preset["set"], **dict(zip(grid, point))})
            check_config(p["teacher"], **{k: p[k] for k in names})
        assert name == "quick" or preset["seeds"] >= 256


def inspect_params(fn):
    import inspect

    return list(inspect.signature(fn).parameters)
