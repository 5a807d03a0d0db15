"""Every numeric argument refuses a string in one line, naming it, before anything compiles
(issue "a library's face", item 5): `float("0.3")` parses, so a check that only calls
`float()` lets the string through to JAX, which fails with a raw TypeError."""

import json
import os
import subprocess
import sys

import jax
import pytest

import jaxfeat as jf
from jaxfeat._checks import InputError, InputTypeError

KEY = jax.random.key(0)
HERE = os.path.dirname(__file__)


def test_every_experiment_refuses_a_string_for_each_numeric_parameter():
    env = dict(os.environ, PYTHONPATH=HERE, JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-m", "scan_helpers.string_arguments"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {}


@pytest.mark.parametrize("arg", ["alpha", "c"])
def test_one_step_refuses_a_string_for_a_number(arg, no_compile):
    dist = jf.data.SingleIndex([1.0, 0.0, 0.0], [0.0, 1.0], noise=0.0)
    with no_compile(), pytest.raises(InputTypeError, match=f"{arg} must be a number"):
        jf.one_step(KEY, dist, n=8, width=4, **{arg: "0.3"})


def test_a_scan_refuses_a_string_for_a_number_before_anything_compiles(no_compile):
    with no_compile(), pytest.raises(InputTypeError, match="n must be a number"):
        jf.plan_summary("spikes", {"n": ["250", "500"]}, 2)
    with no_compile(), pytest.raises(InputError, match="'alpha' is vmapped and must hold numbers"):
        jf.plan_summary("spikes", {"alpha": ["0.1", "0.3"]}, 2)
    with no_compile(), pytest.raises(InputTypeError, match="noise must be a number"):
        jf.plan_summary("spikes", {}, 2, params={"noise": "0.1"})
