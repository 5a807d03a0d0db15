"""The `jaxfeat` command line."""

import subprocess
import sys

import pytest

from jaxfeat import cli


def test_hermite_command_prints_coefficients(capsys):
    assert cli.main(["hermite", "relu", "--degree", "2"]) == 0
    lines = capsys.readouterr().out.split()
    assert float(lines[1]) == pytest.approx(0.3989422804014327, rel=1e-14)
    assert float(lines[5]) == pytest.approx(0.28209479177387814, rel=1e-14)


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
