"""Scan stores you can trust: damaged chunks detected, named and recomputed; partial stores never
read as zeros; atomic creation; several writers; provenance; figures of any grid; one-line CLI
errors."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scan_helpers.toy import GRID, toy, unfinish

from jaxfeat import plotting, scan, summarize
from jaxfeat._checks import InputError
from jaxfeat._scan import store as _store
from jaxfeat.cli import main
from jaxfeat.experiments import Experiment

HERE = os.path.dirname(__file__)
VARS = ("v", "trace", "u", "count", "diverged")
SEEDS, CHUNK = 40, 7  # 2 static points (n) × 6 chunks


def _env(**extra):
    return dict(
        os.environ, PYTHONPATH=HERE, JAX_PLATFORMS="cpu", **({"JAX_ENABLE_X64": "1"} | extra)
    )


@pytest.fixture(scope="module")
def reference():
    return scan(toy, GRID, SEEDS, chunk_size=CHUNK, progress=False)


def _same(ds, ref):
    for k in VARS:
        np.testing.assert_array_equal(ds[k].values, ref[k].values, err_msg=k)


def _journal(out):
    return open(os.path.join(out, "_done", "journal")).read().split()


def _chunk_file(out, s, c, output="v"):
    rec = json.load(open(os.path.join(out, "_done", f"s{s}-c{c}")))
    return os.path.join(out, rec["files"][output]["path"])


@pytest.mark.slow
def test_damaged_chunks_are_named_left_out_and_recomputed(tmp_path, reference):
    out = str(tmp_path / "d.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    assert _store.verify_scan(out).complete
    os.remove(_chunk_file(out, 0, 1))  # deleted
    with open(_chunk_file(out, 1, 2, "trace"), "r+b") as f:  # truncated
        f.truncate(os.path.getsize(f.name) // 2)
    with open(_chunk_file(out, 1, 4, "count"), "r+b") as f:  # one byte flipped, same size
        f.seek(os.path.getsize(f.name) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))
    v = _store.verify_scan(out)
    assert set(v.damaged) == {(0, 1), (1, 2), (1, 4)} and len(v.ok) == 9
    assert "missing" in v.damaged[(0, 1)] and "bytes" in v.damaged[(1, 2)]
    assert "altered" in v.damaged[(1, 4)]
    # a size-only check (`jaxfeat info` without --verify) misses the flipped byte, not the others
    assert set(_store.verify_scan(out, full=False).damaged) == {(0, 1), (1, 2)}
    said = []
    ds = _store.open_scan(out, warn=said.append)
    assert len(said) == 3 and "chunk s0-c1 (seeds 7–13 at n=32)" in said[0]
    fin = ds["finished"]
    assert int(fin.sum()) == 3 * (SEEDS * 2 - 3 * CHUNK)  # 3 scales × the intact seeds
    lost = fin.sel(n=32).isel(seed=slice(7, 14))
    assert not lost.any()
    assert np.isnan(ds["count"].sel(n=32).isel(seed=slice(7, 14))).all()  # never 0
    assert np.isnan(ds["v"].sel(n=32).isel(seed=slice(7, 14))).all()
    ok = fin.values
    np.testing.assert_array_equal(ds["v"].values[ok], reference["v"].values[ok])
    sm = summarize(ds)
    assert int(sm["n_seeds"].sel(n=32, scale=1.0)) == SEEDS - CHUNK
    # the rerun recomputes exactly the damaged chunks, and the store is whole again
    ds2 = scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    assert sorted(_journal(out)[12:]) == ["s0-c1", "s1-c2", "s1-c4"]
    _same(ds2, reference)
    assert bool(ds2["finished"].all()) and _store.verify_scan(out).complete


def test_zarr_checksums_catch_damage_outside_jaxfeat(tmp_path):
    """Every array carries CRC32C: a flipped byte fails loudly even through plain xarray."""
    out = str(tmp_path / "z.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    with open(_chunk_file(out, 0, 0, "trace"), "r+b") as f:
        f.seek(3)
        b = f.read(1)
        f.seek(3)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(Exception, match="(?i)crc32c|checksum"):
        xr.open_zarr(out, consolidated=False)["trace"].values


def test_partial_store_is_missing_values_and_counted(tmp_path, reference):
    out = str(tmp_path / "p.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    # as if these chunks had not finished (their data may be half written)
    unfinish(out, *(f"s1-c{c}" for c in (3, 4, 5)))
    ds = _store.open_scan(out, warn=lambda m: pytest.fail(m))
    assert ds.attrs["seeds_finished"] == 3 * (2 * SEEDS - (SEEDS - 3 * CHUNK))
    unfinished = ds["count"].sel(n=64).isel(seed=slice(21, None))
    assert np.isnan(unfinished).all() and not ds["diverged"].sel(n=64).any()
    sm = summarize(ds)
    assert int(sm["n_seeds"].sel(n=64, scale=0.5)) == 21
    assert int(sm["n_seeds"].sel(n=32, scale=0.5)) == SEEDS
    want = reference["count"].sel(n=64).isel(seed=slice(0, 21)).mean("seed")
    np.testing.assert_allclose(sm["count"].sel(n=64, stat="mean"), want)
    assert plotting._seeds_label(ds) == "21–40 of 40 seeds per point, partial scan"
    path = plotting.generic_scan(ds, str(tmp_path / "p.png"))
    assert os.path.getsize(path) > 1000


def test_unfinished_grid_has_fewer_seeds_in_the_figure_title(tmp_path):
    ds = xr.Dataset(
        {
            "x": (("a", "seed"), np.arange(8.0).reshape(2, 4)),
            "diverged": (("a", "seed"), np.zeros((2, 4), bool)),
            "finished": (("a", "seed"), np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)),
        },
        coords={"a": [1.0, 2.0], "seed": np.arange(4)},
    )
    assert plotting._seeds_label(ds) == "2–4 of 4 seeds per point, partial scan"
    sm = summarize(ds)
    assert sm["n_seeds"].values.tolist() == [2, 4]
    assert sm["x"].sel(stat="mean").values.tolist() == [0.5, 5.5]


def _kill_when(out_parent, pattern, argv, max_wait=60.0):
    """Start a worker; SIGKILL it as soon as a path containing `pattern` appears."""
    p = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < max_wait:
        if any(pattern in f for f in os.listdir(out_parent)):
            os.kill(p.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    p.wait()
    return p.returncode


@pytest.mark.slow
def test_kill_during_creation_then_rerun_works(tmp_path, reference):
    out = str(tmp_path / "c.zarr")
    argv = [sys.executable, "-m", "scan_helpers.worker", out, str(CHUNK)]
    assert _kill_when(str(tmp_path), ".c.zarr.creating-", argv) == -signal.SIGKILL
    assert not os.path.exists(out)  # nothing half-built under the real name
    r = subprocess.run(argv, env=_env(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert not [f for f in os.listdir(tmp_path) if "creating" in f]  # the dead build is gone
    _same(_store.open_scan(out), reference)


@pytest.mark.slow
def test_two_writers_started_together_share_the_chunks(tmp_path, reference):
    out = str(tmp_path / "w.zarr")
    argv = [sys.executable, "-m", "scan_helpers.worker", out, "3"]
    procs = [
        subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode()[-2000:]
    journal = _journal(out)
    assert len(journal) == len(set(journal)) == 2 * 14  # every chunk computed exactly once
    pids = {json.load(open(os.path.join(out, "_done", j)))["pid"] for j in journal}
    assert len(pids) == 2  # and both writers did work
    ref = scan(toy, GRID, SEEDS, chunk_size=3, progress=False)
    _same(_store.open_scan(out), ref)
    assert not [f for f in os.listdir(os.path.join(out, "_done")) if f.endswith(".lock")]


def test_stale_lock_of_a_dead_writer_is_taken_over(tmp_path, reference):
    out = str(tmp_path / "l.zarr")
    scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    unfinish(out, "s0-c2")
    with open(os.path.join(out, "_done", "s0-c2.lock"), "w") as f:
        json.dump({"host": __import__("socket").gethostname(), "pid": int(dead)}, f)
    ds = scan(toy, GRID, SEEDS, out=out, chunk_size=CHUNK, progress=False)
    assert _journal(out)[11:] == ["s0-c2"]
    _same(ds, reference)


def test_results_of_other_code_are_refused_unless_allowed(tmp_path, monkeypatch):
    out = str(tmp_path / "v.zarr")
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False)
    attrs = xr.open_zarr(out, consolidated=False).attrs
    assert attrs["jaxfeat_code"] == _store.code_fingerprint(toy) and attrs["jaxfeat_version"]
    unfinish(out, "s0-c1")
    monkeypatch.setattr(_store, "code_fingerprint", lambda exp: "0123456789abcdef")
    with pytest.raises(InputError, match="computed by other code.*--allow-code-change"):
        scan(toy, GRID, 8, out=out, chunk_size=4, progress=False)
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False, allow_code_change=True)
    v = _store.verify_scan(out)
    assert v.complete and v.codes == {attrs["jaxfeat_code"]: 3, "0123456789abcdef": 1}


def test_overwrite_is_the_only_way_to_discard(tmp_path, capsys):
    out = str(tmp_path / "o.zarr")
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False)
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False)  # nothing recomputed
    assert len(_journal(out)) == 4
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False, overwrite=True)
    assert "discarding" in capsys.readouterr().err and len(_journal(out)) == 4


def _maybe_nan(key, *, scale=1.0):
    u = jax.random.uniform(key)
    return {"x": scale * u, "ratio": jnp.where(u < 0.5, jnp.nan, 1.0 / u)}


def test_not_applicable_is_not_divergence():
    exp = Experiment(
        "na", _maybe_nan, dynamic=frozenset({"scale"}), not_applicable={"ratio": float("nan")}
    )
    ds = scan(exp, {"scale": [1.0, 2.0]}, 64, chunk_size=64, progress=False)
    assert not ds["diverged"].any()
    assert np.isfinite(ds["x"]).all() and 10 < int(np.isnan(ds["ratio"]).sum() / 2) < 54
    assert ds["ratio"].attrs["not_applicable"] == "NaN"
    sm = summarize(ds)
    r = ds["ratio"].sel(scale=1.0).values
    r = r[np.isfinite(r)]
    np.testing.assert_allclose(sm["ratio"].sel(scale=1.0, stat="mean"), r.mean())
    np.testing.assert_allclose(
        sm["ratio"].sel(scale=1.0, stat="se"), r.std(ddof=1) / np.sqrt(r.size)
    )
    plain = Experiment("na", _maybe_nan, dynamic=frozenset({"scale"}))
    assert scan(plain, {"scale": [1.0]}, 64, chunk_size=64, progress=False)["diverged"].any()
    with pytest.raises(InputError, match="not_applicable"):
        Experiment("na", _maybe_nan, not_applicable={"ratio": "n/a"})


def _fake_spikes(extra: dict, seeds=3):
    """A dataset shaped like a `spikes` scan, with extra grid axes."""
    axes = {"alpha": [0.0, 0.2, 0.4], "n": [100, 200]} | extra
    shape = tuple(len(v) for v in axes.values()) + (seeds,)
    dims = tuple(axes) + ("seed",)
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "n_outliers": (dims, rng.integers(0, 3, shape)),
            "singular_values": (dims + ("k",), rng.uniform(1, 3, shape + (4,))),
            "deflated_edge": (dims, np.ones(shape)),
            "test_mse_w1": (dims, rng.uniform(0, 1, shape)),
            "test_mse_w0": (dims, rng.uniform(0, 1, shape)),
            "diverged": (dims, np.zeros(shape, bool)),
        },
        coords=axes | {"seed": np.arange(seeds)},
        attrs={"jaxfeat_config": json.dumps({"params": {}})},
    )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"activation": ["relu", "tanh"]},
        {"activation": ["relu", "tanh"], "c": [0.5, 1.0, 2.0]},
    ],
)
def test_spike_figure_with_any_number_of_grid_axes(tmp_path, extra):
    path = plotting.spike_phase_diagram(_fake_spikes(extra), str(tmp_path / "s.png"))
    assert os.path.getsize(path) > 1000


def test_spike_figure_with_fixed_alpha_and_n(tmp_path):
    ds = _fake_spikes({}).isel(alpha=0, n=0, drop=True)
    ds.attrs["jaxfeat_config"] = json.dumps({"params": {"alpha": 0.3, "n": 250}})
    assert os.path.getsize(plotting.spike_phase_diagram(ds, str(tmp_path / "s.png"))) > 1000


def test_single_point_and_dry_run_from_the_cli(tmp_path, capsys):
    out = str(tmp_path / "one.zarr")
    base = [
        "run",
        "random_features",
        "--seeds",
        "2",
        "--set",
        "width=4",
        "--set",
        "dim=4",
        "--set",
        "n_train=32",
        "--set",
        "n_test=32",
        "--out",
        out + "/",
    ]
    assert main(base + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "grid: 1 point" in plan and "chunks" in plan and "ETA" in plan
    # the fixed parameters that differ from the defaults, and only those (width is a grid axis)
    assert "set (differs from the defaults): dim=4, n_train=32, n_test=32\n" in plan
    assert not os.path.exists(out)  # a dry run writes nothing
    assert main(base + ["--quiet"]) == 0
    assert os.path.exists(os.path.join(tmp_path, "one.png"))  # beside the store, not inside
    assert main(["plot", out, "--out", str(tmp_path / "sub" / "fig.svg")]) == 0
    assert os.path.getsize(tmp_path / "sub" / "fig.svg") > 1000
    assert main(["info", out, "--verify"]) == 0
    text = capsys.readouterr().out
    assert "chunks finished: 2/2 (verified by checksum); damaged: 0" in text  # one per worker


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "spikes", "--set", "alpha=0.1,0.7"], "alpha must be in [0, 1/2], got 0.7"),
        (["run", "spikes", "--set", "alpha=0.1,NaN"], "grid axis 'alpha' holds nan"),
        (["run", "spikes", "--set", "target=relu"], "target must be a list"),
        (["run", "spikes", "--set", "degree=0"], "degree must be positive"),
        (["run", "spikes", "--set", "n=-5"], "n must be positive, got -5"),
        (["run", "spikes", "--set", "N=0"], "N must be positive, got 0"),
        (["run", "spikes", "--set", "c=-1"], "c must be finite and > 0"),
        (["run", "spikes", "--seeds", "1000000000"], "seeds must be at most"),
        (["run", "spikes", "--memory-budget", "lots"], "memory_budget must be"),
        (["plot", "x.zarr", "--out", "fig.xyz"], "--out must end in"),
        (["plot", "x.zarr", "--out", "/proc/f.png"], "cannot be written"),
        (["demo", "--widths", "abc"], "--widths must be comma-separated integers"),
        (["demo", "--out", "/proc/x.png"], "cannot be written"),
    ],
)
def test_cli_inputs_fail_in_one_line(argv, match, capsys, tmp_path):
    if argv[0] == "run":
        argv = argv + ["--out", str(tmp_path / "x.zarr"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x.zarr")


@pytest.mark.slow
def test_info_into_a_closed_pipe_is_quiet(tmp_path):
    out = str(tmp_path / "i.zarr")
    scan(toy, GRID, 8, out=out, chunk_size=4, progress=False)
    r = subprocess.run(
        f"{sys.executable} -m jaxfeat.cli info {out} | head -1",
        shell=True,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert r.stdout.startswith("experiment: toy") and "Traceback" not in r.stderr, r.stderr


def test_grid_axis_as_an_array_and_byte_budgets():
    from jaxfeat._scan.program import parse_bytes as _parse_bytes

    ds = scan(toy, {"scale": jnp.array([0.5, 1.0]), "n": np.array([32])}, 2, progress=False)
    assert list(ds["scale"].values) == [0.5, 1.0] and list(ds["n"].values) == [32]
    assert _parse_bytes("1000000000") == 10**9 == _parse_bytes(1e9)
    assert _parse_bytes("2GiB") == 2**31
    for bad in ("0", "-5", "nan", "lots", True):
        with pytest.raises(InputError, match="memory_budget"):
            _parse_bytes(bad)


@pytest.mark.parametrize("c", [-1.0, 0.0, float("nan"), float("inf")])
def test_one_step_refuses_a_step_size_that_is_not_positive(c):
    from jaxfeat import data, one_step

    dist = data.SingleIndex(np.eye(1, 4)[0], [0.0, 1.0])
    with pytest.raises(InputError, match="c must be finite and > 0"):
        one_step(jax.random.key(0), dist, n=8, width=4, c=c)


def test_recovery_probability_counts_only_finished_seeds():
    from jaxfeat.experiments.local_convergence import recovery_probability

    rec = np.array([[1.0, 0.0, 1.0, np.nan], [1.0, 1.0, 1.0, 1.0]])  # NaN: unfinished seed
    ds = xr.Dataset(
        {
            "recovered": (("width", "seed"), rec),
            "diverged": (("width", "seed"), np.array([[0, 0, 0, 0], [0, 1, 0, 0]], bool)),
            "finished": (("width", "seed"), np.isfinite(rec)),
        },
        coords={"width": [4, 8], "seed": np.arange(4)},
    )
    pr = recovery_probability(ds)
    assert pr["seeds"].values.tolist() == [3, 4]
    np.testing.assert_allclose(pr["p"], [2 / 3, 3 / 4])  # a diverged seed is not recovered
    np.testing.assert_allclose(pr["se"], np.sqrt([2 / 9 / 2, 3 / 16 / 3]))
