"""`jaxfeat bench` (issue #16) on tiny sizes: the measurements it reports are the ones it says."""

import json

import numpy as np
import pytest

from jaxfeat import bench, cli


def test_bench_reports_compile_steady_memory_rates_slopes_and_baselines(tmp_path):
    sizes = {"population_loss": [16, 64], "one_step_spikes": [1, 2]}
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
        assert r["loop_s"] > 0 and r["speedup_vs_loop"] > 0
    written = json.loads((tmp_path / f"bench-{res['machine']['platform']}.json").read_text())
    assert written["cases"]["population_loss"]["rows"][0]["size"] == 16
    assert (tmp_path / f"bench-{res['machine']['platform']}.png").stat().st_size > 10_000


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
