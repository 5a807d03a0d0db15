"""The `jaxfeat` command line."""

import json
import subprocess
import sys

import pytest

from jaxfeat import cli


def test_hermite_command_prints_coefficients(capsys):
    assert cli.main(["hermite", "relu", "--degree", "2"]) == 0
    lines = capsys.readouterr().out.split()
    assert float(lines[1]) == pytest.approx(0.3989422804014327, rel=1e-14)
    assert float(lines[5]) == pytest.approx(0.28209479177387814, rel=1e-14)


@pytest.mark.slow
def test_demo_writes_figure(tmp_path, capsys):
    out = tmp_path / "fig" / "demo.png"
    assert cli.main(["demo", "--out", str(out), "--widths", "4,8", "--seeds", "2"]) == 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "sigma_ge2" in text and "width     8" in text


def test_bad_activation_is_one_line_and_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxfeat.cli", "hermite", "swish"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "jaxfeat: error: activation: unknown name 'swish'; known: abs, elu, erf, gelu, relu, "
        "shifted_relu, sigma_ge2, sigmoid, softplus, tanh, he<k>"
    ]


def _run_cli(args, env):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxfeat.cli", *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "compiling" in ln)
    return float(line.split(" compiling ")[1].split(" s,")[0])


@pytest.mark.slow
def test_second_identical_run_loads_its_programs_from_the_persistent_cache(tmp_path):
    """`jaxfeat run` keeps JAX's compilation cache (here in a fresh directory): the same command
    again spends under 10 % of the first run's XLA compile time (issue 16; tracing is not
    cached), and `--cache-dir off` compiles."""
    import os

    env = dict(os.environ, JAX_PLATFORMS="cpu", JAXFEAT_CACHE_DIR=str(tmp_path / "cache"))
    args = ["run", "local_convergence", "--seeds", "2", "--no-plot", "--quiet", "--overwrite"]
    args += ["--set", "steps_per_phase=20", "--set", "log_every=10", "--set", "phases=2"]
    args += ["--out", str(tmp_path / "lc.zarr")]
    first = _run_cli(args, env)
    assert any((tmp_path / "cache").iterdir())
    second = _run_cli(args, env)
    off = _run_cli(args + ["--cache-dir", "off"], env)
    # `off` against the cached run, not the first: this shared host's speed drifts up to 2×
    # between runs minutes apart, and a compile is ≫ 5× a cache load either way
    assert second < 0.1 * first and off > 5 * second, (first, second, off)


@pytest.mark.slow
def test_pdf_figures_embed_truetype_not_type3_fonts(tmp_path):
    """Many venues reject Type 3 fonts (issue 15): a figure saved as PDF embeds TrueType."""
    out = tmp_path / "demo.pdf"
    assert cli.main(["demo", "--out", str(out), "--widths", "4", "--seeds", "2"]) == 0
    pdf = out.read_bytes()
    assert b"/Type3" not in pdf
    assert b"/CIDFontType2" in pdf or b"/TrueType" in pdf  # matplotlib ≥ 3.9 embeds CID fonts


def test_spike_heat_map_colour_limits_come_from_the_theory():
    """0 to the largest predicted ℓ(α) on the axis, whatever the data (issue 15: an automatic
    0.65–1.0 scale looked like full contrast); widened only for a larger measured mean."""
    import numpy as np

    from jaxfeat import plotting, theory

    alphas = [0.0, 0.2, 0.3, 0.45]
    assert theory.predicted_spike_count(0.45) == 9
    counts = np.array([[0.65, 1.0, 1.0, 0.9], [np.nan, 0.7, 1.0, 1.0]])
    assert plotting.spike_colour_limits(alphas, counts) == {"vmin": 0, "vmax": 9}
    assert plotting.spike_colour_limits([0.0], np.zeros((1, 1))) == {"vmin": 0, "vmax": 1}
    assert plotting.spike_colour_limits([0.1], np.array([[2.4]])) == {"vmin": 0, "vmax": 3}


def test_cpus_pins_the_process_before_jax_starts_and_refuses_bad_counts(capsys):
    import os

    code = (
        "import json, os, jaxfeat.cli as c, jax.numpy as jnp\n"
        "got = c.pin_cpus(1)\n"
        "jnp.ones(3).block_until_ready()\n"
        "print(json.dumps([got, sorted(os.sched_getaffinity(0))]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    chosen, mask = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(chosen) == 1 and mask == chosen
    too_many = str(len(os.sched_getaffinity(0)) + 1)
    for bad in ("0", too_many):
        assert cli.main(["run", "random_features", "--cpus", bad, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--cpus" in err[0]


def test_version_is_the_package_version(capsys):
    import os
    import re

    import jaxfeat as jf

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml")) as f:
        want = re.search(r'^version = "(.+)"$', f.read(), re.M).group(1)
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"jaxfeat {want}"
    assert jf.__version__ == want == "0.2.0"


def test_info_states_the_sizes_derived_from_ratio():
    cfg = {"grid": {"n": [250, 500]}, "params": {"ratio": 0.25, "dim": None, "width": None}}
    assert cli._derived_sizes(cfg) == "dim = width = round(ratio·n) = 62, 125 at n = 250, 500"
    cfg = {"grid": {}, "params": {"ratio": 0.5, "dim": 40, "width": None, "n": 100}}
    assert cli._derived_sizes(cfg) == "width = round(ratio·n) = 50 at n = 100"
    assert cli._derived_sizes({"grid": {}, "params": {"dim": None}}) is None


def test_list_names_an_experiments_parameters_and_what_each_preset_sets(capsys):
    """`jaxfeat list NAME`: the parameters with their defaults (the spikes experiment takes
    **params, so its signature no longer lists them), the vmapped axes and dynamic sizes, and
    each preset's settings beyond the defaults; an unknown name is one line, exit 2."""
    assert cli.main(["list", "spikes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "  alpha        = 0.3  (vmapped)" in out and "  n            = 800  (a dynamic size)" in out
    )
    assert '  ridge_loss   = "mean"' in out
    dandi = next(line for line in out if line.startswith("preset dandi:"))
    assert "init_seed=0" in dandi and 'ridge_loss="sum"' in dandi and "activation" not in dandi
    assert next(line for line in out if line.startswith("preset quick:")).endswith("n_test=500")
    assert cli.main(["list", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown experiment 'nope'" in err[0]
