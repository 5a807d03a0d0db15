"""`jaxfeat bench` (issue #16) on tiny sizes: the measurements it reports are the ones it says."""

import json

import numpy as np
import pytest

from jaxfeat import bench, cli
from jaxfeat._checks import InputError


@pytest.mark.slow
def test_bench_reports_compile_steady_memory_rates_slopes_and_baselines(tmp_path):
    sizes = {
        "population_loss": [16, 64],
        "one_step_spikes": [1, 2],
        "one_step_spikes_matrix_free": [128],
        "feature_spectrum": [16],
        "population_gradient_seeds": [1, 3],
    }
    res = bench.run_bench(list(sizes), sizes=sizes, repeats=2, out=str(tmp_path), progress=None)
    assert res["rates"]["gemm_flops"] > 1e8 and res["rates"]["copy_bytes_per_s"] > 1e8
    loss = res["cases"]["population_loss"]
    assert loss["axis"] == "width" and [r["size"] for r in loss["rows"]] == [16, 64]
    for row in loss["rows"]:
        assert row["compile_s"] > 0 and row["steady_s"] > 0 and row["memory_bytes"] > 0
        assert 0 < row["flop_rate_vs_gemm"] and row["numpy_value_only_s"] > 0
    x = np.log([16, 64])
    y = np.log([r["steady_s"] for r in loss["rows"]])
    assert loss["slope"] == pytest.approx((y[1] - y[0]) / (x[1] - x[0]))
    spikes = res["cases"]["one_step_spikes"]["rows"]
    for r in spikes:  # the loop over seeds is timed: it grows with the seeds it loops over
        assert r["loop_s"] > 0 and r["speedup_vs_loop"] == pytest.approx(
            r["loop_s"] / r["steady_s"]
        )
    sweep = res["cases"]["one_step_spikes"]["batch_sweep"]  # at the largest seed count
    assert sweep["seeds"] == 2 and [r["batch"] for r in sweep["rows"]] == [1, 2]
    best = max(sweep["rows"], key=lambda r: r["seeds_per_s"])
    assert sweep["best_batch"] == best["batch"] and sweep["loop_seeds_per_s"] > 0
    for r in sweep["rows"]:
        assert r["vs_loop"] == pytest.approx(r["seeds_per_s"] / sweep["loop_seeds_per_s"])
    assert "batch_sweep" not in loss  # only the cases over seeds
    free = res["cases"]["one_step_spikes_matrix_free"]["rows"][0]
    assert free["size"] == 128 and free["dense_s"] > 0  # the dense path on the same seed
    g = res["cases"]["population_gradient_seeds"]
    assert [r["batch"] for r in g["batch_sweep"]["rows"]] == [1, 3] and g["rows"][1]["loop_s"] > 0
    spectrum = res["cases"]["feature_spectrum"]["rows"][0]
    assert spectrum["krylov_s"] > 0 and spectrum["numpy_svd_s"] > 0
    written = json.loads((tmp_path / f"bench-{res['machine']['platform']}.json").read_text())
    assert written["cases"]["population_loss"]["rows"][0]["size"] == 16
    assert (tmp_path / f"bench-{res['machine']['platform']}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_numpy_baseline_computes_the_same_loss():
    import jax

    import jaxfeat as jf

    student = jf.TwoLayer.init(jax.random.key(0), 7, 5, "sigma_ge2", "small")
    teacher = jf.TwoLayer.init(jax.random.key(1), 3, 5, "sigma_ge2", "sphere")
    want = float(jf.population_loss(student, teacher))
    got = bench._numpy_sigma_ge2_loss(
        np.asarray(student.W), np.asarray(student.a), np.asarray(teacher.W), np.asarray(teacher.a)
    )
    assert got == pytest.approx(want, rel=1e-10)


def test_cli_bench_refuses_unknown_names_in_one_line(capsys):
    assert cli.main(["bench", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    assert cli.main(["bench", "train", "--sizes", "0"]) == 2
    capsys.readouterr()
    assert cli.main(["bench", "--quick", "--presets", "spikes,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "presets: unknown experiment(s) nope" in err[0]


def test_the_compile_budget_runs_by_default_only_on_a_full_run_of_every_case():
    everything = bench._check_presets(None, default_all=True)
    assert everything == bench._check_presets("all", default_all=False) and "spikes" in everything
    assert bench._check_presets(None, default_all=False) == []
    assert bench._check_presets("none", default_all=True) == []
    assert bench._check_presets("spikes,equivalence", False) == ["spikes", "equivalence"]


@pytest.mark.slow
def test_compile_budget_records_each_program_of_a_quick_preset_cold(tmp_path, monkeypatch):
    import jax

    import jaxfeat as jf

    # a small stand-in for random_features' quick preset (the same code path, seconds less)
    presets = jf.experiments.get("random_features").presets
    small = {"grid": {"width": [4, 8, 16]}, "seeds": 4, "set": {"n_train": 64, "n_test": 64}}
    monkeypatch.setitem(presets, "quick", small)
    cache = jf.enable_compile_cache(str(tmp_path / "xla"))  # a user's cache: left alone
    res = bench.preset_compiles(["random_features", "random_features"], progress=None)
    assert jax.config.jax_compilation_cache_dir == cache  # restored
    assert not any((tmp_path / "xla").rglob("*-cache*")), "compiled into the user's cache"
    jf.enable_compile_cache(None)
    rf = res["random_features"]  # the second run compiles again: the caches were emptied
    assert rf["seeds"] == 4 and len(rf["programs"]) == 1  # widths padded: one program
    program = rf["programs"][0]
    assert program["compile_s"] > 0 and program["trace_s"] > 0 and program["equations"] > 0
    assert rf["compile_s"] == pytest.approx(sum(p["compile_s"] for p in rf["programs"]))
    assert rf["wall_s"] > rf["compile_s"] + rf["trace_s"]


@pytest.mark.slow
def test_numpy_train_baseline_takes_the_gradient_of_the_same_loss():
    import equinox as eqx
    import jax

    import jaxfeat as jf

    student = jf.TwoLayer.init(jax.random.key(0), 7, 5, "sigma_ge2", "small")
    teacher = jf.TwoLayer.init(jax.random.key(1), 3, 5, "sigma_ge2", "sphere")
    params, static = eqx.partition(student, eqx.is_inexact_array)
    grads = jax.grad(lambda p: jf.population_loss(eqx.combine(p, static), teacher))(params)
    gW, ga = bench._numpy_sigma_ge2_grad(
        *(np.asarray(x, np.float64) for x in (student.W, student.a, teacher.W, teacher.a))
    )
    np.testing.assert_allclose(gW, grads.W, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ga, grads.a, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_numpy_spike_baseline_counts_like_jaxfeat():
    """Same set-up, other draws: the spike counts of the bench's case (n = 250, d = 62,
    α = 0.3; at these sizes 1 or 2 a seed, mean 1.375 jaxfeat / 1.25 NumPy on 8 seeds) agree
    in distribution."""
    fn, (keys,), _, _ = bench._one_step_seeds(8)
    ours = np.asarray(fn(keys))
    rng = np.random.default_rng(0)
    theirs = np.array([bench._numpy_spike_count(rng, 250, 62, 0.3) for _ in range(8)])
    assert set(ours) <= {1, 2} and set(theirs) <= {1, 2}, (ours, theirs)
    assert abs(ours.mean() - theirs.mean()) <= 0.5, (ours, theirs)


def test_no_presets_named_is_refused():
    with pytest.raises(InputError, match=r"\(none given\)"):
        bench._check_presets("", default_all=False)
