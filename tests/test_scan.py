"""The scan engine: resumable, chunk- and device-independent, distributed, NaN-robust."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import xarray as xr
from conftest import compile_log
from scan_helpers.toy import GRID, toy, unfinish

from jaxfeat import experiments, plotting, scan, summarize
from jaxfeat._checks import InputError
from jaxfeat.cli import main

HERE = os.path.dirname(__file__)
VARS = ("v", "trace", "u", "count", "diverged")


def _env(**extra):
    """Subprocess environment; float64 like this process (conftest) unless overridden."""
    return dict(
        os.environ, PYTHONPATH=HERE, JAX_PLATFORMS="cpu", **({"JAX_ENABLE_X64": "1"} | extra)
    )


def _reference(chunk=64):
    return scan(toy, GRID, 40, chunk_size=chunk, progress=False)


def _assert_same(ds, ref):
    for k in VARS:
        np.testing.assert_array_equal(
            np.asarray(ds[k].values), np.asarray(ref[k].values), err_msg=k
        )


def test_dataset_layout_and_per_seed_values(getkey):
    ds = scan(toy, GRID, 5, chunk_size=2, progress=False)
    assert ds["v"].dims == ("scale", "n", "seed", "j")
    assert ds["v"].shape == (3, 2, 5, 8)
    assert list(ds["scale"].values) == [0.5, 1.0, 2.0] and list(ds["n"].values) == [32, 64]
    cfg = json.loads(ds.attrs["jaxfeat_config"])
    assert cfg["grid"] == {"scale": [0.5, 1.0, 2.0], "n": [32, 64]} and cfg["seeds"] == 5
    # seed i at any grid point is fold_in(PRNGKey(0), i) through the unbatched function
    key = jax.random.fold_in(jax.random.key(0), 3)
    direct = toy.fn(key, scale=2.0, n=32)
    np.testing.assert_allclose(ds["v"].sel(scale=2.0, n=32, seed=3), direct["v"], rtol=1e-5)
    assert int(ds["count"].sel(scale=2.0, n=32, seed=3)) == int(direct["count"])


def test_zarr_store_equals_memory_and_resume_skips_finished(tmp_path):
    out = str(tmp_path / "s.zarr")
    ds = scan(toy, GRID, 40, out=out, chunk_size=7, progress=False)
    _assert_same(ds, _reference(7))
    ds.to_netcdf(tmp_path / "s.nc")  # the export users share
    _assert_same(xr.open_dataset(tmp_path / "s.nc"), ds)
    journal = open(os.path.join(out, "_done", "journal")).read().split()
    assert len(journal) == 2 * 6  # 2 static points × ⌈40/7⌉ chunks, each computed once
    unfinish(out, "s1-c3")  # as if killed before that chunk's marker
    ds2 = scan(toy, GRID, 40, out=out, chunk_size=64, progress=False)  # stored chunking wins
    journal = open(os.path.join(out, "_done", "journal")).read().split()
    assert journal[11:] == ["s1-c3"]
    _assert_same(ds2, ds)


@pytest.mark.slow
def test_kill_minus_nine_and_resume_is_bit_identical(tmp_path):
    out = str(tmp_path / "k.zarr")
    done = os.path.join(out, "_done")
    total = 2 * 40
    for target in (3, 25, 55):  # kill -9 once this many chunks are finished
        p = subprocess.Popen(
            [sys.executable, "-m", "scan_helpers.worker", out, "1"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        while p.poll() is None:
            n = (
                len([f for f in os.listdir(done) if f.startswith("s") and "." not in f])
                if os.path.isdir(done)
                else 0
            )
            if n >= target:
                os.kill(p.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        p.wait()
        assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    r = subprocess.run(
        [sys.executable, "-m", "scan_helpers.worker", out, "1"], env=_env(), capture_output=True
    )
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    journal = open(os.path.join(done, "journal")).read().split()
    assert len(journal) == len(set(journal)) <= total  # no finished chunk computed twice
    assert len([f for f in os.listdir(done) if f.startswith("s") and "." not in f]) == total
    _assert_same(xr.open_zarr(out, consolidated=False), _reference(1))


# 8 forced devices in subprocesses; benchmarks/scan_reproducibility.py records it
@pytest.mark.paper
def test_chunk_sizes_and_eight_devices_agree():
    r = subprocess.run(
        [sys.executable, os.path.join(HERE, "scan_helpers", "layouts.py")],
        capture_output=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_ENABLE_X64="0"),
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert res["n_devices"] == 8
    for layout, d in res["diffs"].items():
        # integers and the key-derived uniform are exact; floats agree to float32 round-off
        assert d["count"] == 0 and d["u"] == 0, layout
        assert d["v"] <= 1e-6 and d["trace"] <= 1.6e-5, (layout, d)  # ≤ 4 ulp at |v|≤2, tr≤40


@pytest.mark.slow
def test_two_process_distributed_run_matches(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "d.zarr")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scan_helpers.worker", out, "7", str(i), "2", str(port)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for p in procs:
        p.wait(timeout=300)
        assert p.returncode == 0, p.stderr.read().decode()[-3000:]
    journal = open(os.path.join(out, "_done", "journal")).read().split()
    assert sorted(journal) == sorted(set(journal)) and len(journal) == 12
    _assert_same(xr.open_zarr(out, consolidated=False), _reference(7))


@pytest.mark.slow
def test_width_sweep_compiles_once():
    grid = {"width": [4, 8, 16, 32]}
    params = {"dim": 4, "n_train": 64, "n_test": 64}
    with compile_log() as log:
        ds = scan("random_features", grid, 3, params=params, chunk_size=3, progress=False)
    chunk_compiles = [m for m in log if m == "jit(chunk)"]
    assert len(chunk_compiles) == 1, log
    assert ds["test_mse"].shape == (4, 3) and np.all(np.isfinite(ds["test_mse"].values))
    # padded width 4 equals an unpadded width-4 network (same key, masked neurons are inert)
    alone = scan("random_features", {"width": [4]}, 3, params=params, chunk_size=3, progress=False)
    np.testing.assert_allclose(
        ds["test_mse"].sel(width=4), alone["test_mse"].sel(width=4), rtol=1e-9
    )


def test_nan_seed_is_flagged_and_others_unaffected():
    grid = {"nan_below": [0.0, 0.3]}
    ds = scan(toy, grid, 30, chunk_size=8, progress=False)
    u = ds["u"].sel(nan_below=0.0).values
    flagged = ds["diverged"].sel(nan_below=0.3).values
    np.testing.assert_array_equal(flagged, u < 0.3)
    assert 0 < flagged.sum() < 30 and not ds["diverged"].sel(nan_below=0.0).any()
    bad = ds.sel(nan_below=0.3)
    assert np.all(np.isnan(bad["trace"].values[flagged]))  # masked
    np.testing.assert_array_equal(
        bad["trace"].values[~flagged], ds["trace"].sel(nan_below=0.0).values[~flagged]
    )
    sm = summarize(ds)
    assert int(sm["n_seeds"].sel(nan_below=0.3)) == 30 - flagged.sum()
    good = ds["trace"].sel(nan_below=0.0).values[~flagged]
    np.testing.assert_allclose(sm["trace"].sel(stat="mean", nan_below=0.3), good.mean(), rtol=1e-6)
    np.testing.assert_allclose(
        sm["trace"].sel(stat="se", nan_below=0.3), good.std(ddof=1) / np.sqrt(good.size), rtol=1e-5
    )
    np.testing.assert_allclose(
        sm["trace"].sel(stat="q50", nan_below=0.3), np.median(good), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grid": {"scale": [1.0, float("nan")]}}, "grid axis 'scale' holds nan"),
        ({"params": {"n": float("inf")}}, "parameter 'n' holds inf"),
        ({"grid": {"scale": np.array([1.0, 2.0])}, "seeds": 10**8}, "seeds must be at most"),
        ({"grid": {"scale": []}}, "grid axis 'scale' is empty"),
        ({"grid": {"bogus": [1.0]}}, "unknown parameter"),
        ({"seeds": 0}, "seeds must be positive"),
        ({"grid": {"scale": ["a"]}}, "must hold numbers"),
        ({"params": {"scale": 2.0}}, "both as grid axes and fixed"),
    ],
)
def test_bad_scan_input(kwargs, match):
    args = {"grid": {"scale": [1.0]}, "seeds": 2} | kwargs
    with pytest.raises(InputError, match=match):
        scan(toy, args.pop("grid"), args.pop("seeds"), progress=False, **args)


def test_mismatched_store_is_refused_unless_overwrite(tmp_path):
    out = str(tmp_path / "m.zarr")
    scan(toy, {"scale": [1.0]}, 2, out=out, progress=False)
    with pytest.raises(InputError, match="differs in: seeds"):
        scan(toy, {"scale": [1.0]}, 3, out=out, progress=False)
    ds = scan(toy, {"scale": [1.0]}, 3, out=out, overwrite=True, progress=False)
    assert ds.sizes["seed"] == 3
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    with pytest.raises(InputError, match="not a jaxfeat store"):
        scan(toy, {"scale": [1.0]}, 2, out=str(tmp_path / "junk"), progress=False)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "spikes", "--seeds", "0"], "seeds must be positive"),
        (["run", "spikes", "--set", "bogus=1"], "unknown parameter"),
        (["run", "spikes", "--set", "alpha="], "has no value"),
        (["run", "spikes", "--preset", "huge"], "unknown preset"),
        (["run", "spikes", "--out", "/proc/forbidden/x.zarr"], "cannot be written"),
        (["info", "/nonexistent/x.zarr"], "not a Zarr store"),
    ],
)
def test_cli_bad_input_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_run_plot_info_list(tmp_path, capsys):
    out = str(tmp_path / "w.zarr")
    argv = [
        "run",
        "random_features",
        "--seeds",
        "4",
        "--set",
        "width=4,8",
        "--set",
        "dim=4",
        "--set",
        "n_train=64",
        "--set",
        "n_test=64",
        "--out",
        out,
        "--quiet",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert os.path.exists(out.replace(".zarr", ".png")) and "4 seeds × 2 grid points" in text
    journal = os.path.join(out, "_done", "journal")
    done = open(journal).read().split()
    assert main(argv) == 0  # resume of a finished scan recomputes nothing
    assert open(journal).read().split() == done and len(done) == 2  # a chunk per CPU worker
    assert main(["run", "random_features", "--seeds", "5", "--out", out, "--quiet"]) == 2
    assert "different scan" in capsys.readouterr().err
    assert main(["plot", out, "--out", str(tmp_path / "f.pdf")]) == 0
    assert os.path.getsize(tmp_path / "f.pdf") > 1000
    assert main(["info", out]) == 0
    assert "chunks finished: 2/2" in capsys.readouterr().out
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in experiments.names())


@pytest.mark.paper  # the quick preset end to end: README's first command runs the same
def test_spikes_preset_smoke(tmp_path):
    """The flagship experiment runs through the engine (tiny sizes) and its figure draws."""
    grid = {"alpha": [0.0, 0.4], "n": [120, 160]}
    ds = scan("spikes", grid, 2, params={"n_test": 50, "k": 4, "degree": 3}, progress=False)
    assert ds["n_outliers"].shape == (2, 2, 2) and not ds["diverged"].any()
    assert ds["singular_values"].dims == ("alpha", "n", "seed", "k")
    sv = ds["singular_values"].sel(alpha=0.4).values[..., 0]
    assert np.all(sv > ds["singular_values"].sel(alpha=0.0).values[..., 0])  # the step's spike
    path = plotting.draw(ds, str(tmp_path / "p.png"), experiments.get("spikes"))
    assert os.path.getsize(path) > 1000


def test_memory_budget_holds_at_the_largest_static_point():
    """The chunk is sized on every static point, not the first: n = 10⁵ needs far more memory
    per seed than n = 16, wherever it sits in the grid."""
    from jaxfeat._scan.plan import Plan as _Plan
    from jaxfeat._scan.program import Runner as _Runner

    def chunk(ns):
        plan = _Plan(toy, {"scale": [1.0], "n": ns}, 64, {}, 0, None)
        return _Runner(plan, None, "64MiB").chunk_size

    big = chunk([100_000])
    assert 1 <= big < 32 and chunk([16]) == 32  # 64 small seeds: one chunk per worker
    assert chunk([16, 100_000]) == chunk([100_000, 16]) == big


@pytest.mark.slow
def test_one_compile_per_static_point_with_a_budget_sized_chunk_and_a_short_last_chunk():
    """The chunk is sized from the traced programs' estimated bytes before anything compiles,
    and the short last chunk is padded, not compiled again: one `jit(chunk)` per static point
    (GRID has two: n = 32, 64), whether or not the budget binds."""
    with compile_log() as log:  # caps only: 130 seeds, 2 workers, ≤ 64 a chunk → 44 + 44 + 42
        ds = scan(toy, GRID, 130, progress=False)
    assert log.count("jit(chunk)") == 2, log
    assert int(ds.attrs["chunk_size"]) == 44
    ref = scan(toy, GRID, 130, chunk_size=65, progress=False)  # no padding: 65 + 65
    _assert_same(ds, ref)
    # a budget that binds: the estimate sizes the chunk before anything compiles (one compile
    # per static point) and XLA's count of the compiled program fits the budget
    params = {"dim": 8, "n_test": 256, "width": 64}
    grid = {"n_train": [512, 1024]}
    with compile_log() as log:
        small = scan("random_features", grid, 31, params=params, memory_budget="40MiB",
                     workers=1, progress=False)  # fmt: skip
    assert log.count("jit(chunk)") == 2, log
    chunk = int(small.attrs["chunk_size"])
    assert 1 < chunk < 31 and 31 % chunk != 0, chunk  # budget-sized, with a short last chunk
    assert np.all(small["finished"].values) and not small["diverged"].any()
    one = scan("random_features", grid, 31, params=params, chunk_size=31, progress=False)
    np.testing.assert_allclose(small["test_mse"], one["test_mse"], rtol=1e-9)


def test_an_estimate_that_falls_short_shrinks_the_chunk_to_fit():
    """The toy's elementwise chain (XLA keeps 2.5× the live bytes the jaxpr shows): the
    estimate-sized program is measured, found over the budget, and the chunk shrinks and
    compiles again; the program the scan runs fits the budget by XLA's count."""
    from jaxfeat._scan.plan import Plan as _Plan
    from jaxfeat._scan.program import Runner as _Runner

    budget = 8 * 2**20
    plan = _Plan(toy, {"n": [4096]}, 100, {}, 0, None)
    with compile_log() as log:
        runner = _Runner(plan, None, budget, workers=1)
        mem = runner.program(0, runner.batch(runner.chunk_size)).memory_analysis()
    assert log.count("jit(chunk)") == 2, log
    used = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
    assert budget / 3 < used <= budget, (runner.chunk_size, used)


@pytest.mark.slow
def test_a_second_identical_scan_compiles_and_traces_nothing():
    """`jf.scan` called again in the same process (a notebook cell rerun) reuses the compiled
    chunk programs and the traced output shapes; another static value compiles its own."""
    first = scan(toy, GRID, 20, chunk_size=8, progress=False)
    with compile_log() as log:
        again = scan(toy, GRID, 20, chunk_size=8, progress=False)
    assert log.count("jit(chunk)") == 0, log
    assert float(again.attrs["compile_seconds"]) == 0.0
    _assert_same(again, first)
    with compile_log() as log:
        scan(toy, {"n": [48]}, 20, chunk_size=8, progress=False)
    assert log.count("jit(chunk)") == 1, log
    # a setting the traced program depends on (here the PRNG's bits) is part of the key
    old = jax.config.jax_threefry_partitionable  # pyright: ignore[reportAttributeAccessIssue]
    jax.config.update("jax_threefry_partitionable", not old)
    try:
        with compile_log() as log:
            scan(toy, GRID, 20, chunk_size=8, progress=False)
        assert log.count("jit(chunk)") == 2, log
    finally:
        jax.config.update("jax_threefry_partitionable", old)


def test_workers_compute_the_same_chunks(tmp_path):
    """Two chunks in flight (threads) give bit-identical results, in memory and in a store."""
    one = scan(toy, GRID, 40, chunk_size=7, workers=1, progress=False)
    two = scan(toy, GRID, 40, chunk_size=7, workers=2, progress=False)
    _assert_same(two, one)
    out = str(tmp_path / "w.zarr")
    stored = scan(toy, GRID, 40, out=out, chunk_size=7, workers=3, progress=False)
    _assert_same(stored, one)
    _assert_same(xr.open_zarr(out, consolidated=False), one)


def test_workers_must_be_positive(no_compile):
    with no_compile(), pytest.raises(InputError, match="workers must be"):
        scan(toy, GRID, 4, workers=0, progress=False)


def test_small_scans_compile_at_a_lower_optimisation_level_and_large_ones_do_not():
    """On a CPU a program whose chunks compute for less than QUICK_PROGRAM × its compile (the
    built-in rates) compiles at XLA backend level 1 (~27 % less compiling for ~6 % slower
    chunks, benchmarks/README.md); the same grid with many more seeds keeps XLA's default."""
    from jaxfeat._scan.plan import Plan as _Plan
    from jaxfeat._scan.program import QUICK_LEVEL, Runner as _Runner

    preset = experiments.get("spikes").presets["quick"]

    def options(seeds):
        plan = _Plan("spikes", preset["grid"], seeds, preset["set"], 0, None)
        runner = _Runner(plan, None, "2GiB", measure=False)
        batch = runner.batch(runner.chunk_size)
        return {
            summary: runner._compiler_options(p, batch)
            for p, summary in enumerate(runner.program_summary())
        }

    quick = {"xla_backend_optimization_level": QUICK_LEVEL}
    assert options(preset["seeds"]) == dict.fromkeys(
        ["n ∈ {250, 500} at capacity 500", "n=1000"], quick
    )
    many = options(100 * preset["seeds"])  # one program per n now; the costliest keep the default
    assert many["n=1000"] == many["n=500"] == {}
    # the choice is part of a compiled program's key: a large scan does not reuse a small
    # scan's level-1 program (nor the reverse), whatever their chunks
    plans = [_Plan("spikes", {"n": [1000]}, s, preset["set"], 0, None) for s in (32, 3200)]
    small, large = (_Runner(p, 16, "2GiB", measure=False) for p in plans)
    assert small._program_key(0, 16) == large._program_key(0, 16)
    assert small._compiled_key(0, 16) != large._compiled_key(0, 16)
