"""CPU choice on a busy machine (issue #27 item 6, jaxfeat/_cpus.py): the pure choice from
/proc/stat ticks, the public `jaxfeat.config(cpus=…)`, and the choice made at import."""

import json
import os
import subprocess
import sys

import pytest

from jaxfeat import _cpus
from jaxfeat._checks import InputError

STAT = """cpu  10 0 10 80 0 0 0 0 0 0
cpu0 5 0 5 40 0 0 0 0 0 0
cpu1 5 0 5 40 0 0 0 0 0 0
intr 1 2 3
"""
LATER = """cpu  100 0 10 170 0 0 0 0 0 0
cpu0 95 0 5 40 0 0 0 0 0 0
cpu1 5 0 5 130 0 0 0 0 0 0
"""


def test_ticks_and_busy_fractions_from_proc_stat_text():
    before, after = _cpus.cpu_ticks(STAT), _cpus.cpu_ticks(LATER)
    assert before == {0: (40, 50), 1: (40, 50)}
    busy = _cpus.busy_fractions(before, after)
    assert busy == pytest.approx({0: 1.0, 1: 0.0})
    assert _cpus.busy_fractions(after, after) == {0: 0.0, 1: 0.0}  # no tick elapsed


@pytest.mark.parametrize(
    "busy, expected",
    [
        ({0: 0.1, 1: 0.2, 2: 0.0, 3: 0.7}, None),  # every CPU free: unpinned
        ({0: 0.9, 1: 0.2, 2: 1.0, 3: 0.0}, [1, 3]),  # the free ones
        ({0: 0.9, 1: 0.8, 2: 1.0, 3: 0.95}, [1]),  # none free: the least busy one
        ({0: 1.0, 1: 1.0}, [0]),  # ties: the lowest number
    ],
)
def test_choose_keeps_every_cpu_when_quiet_and_the_free_ones_when_busy(busy, expected):
    assert _cpus.choose(sorted(busy), busy) == expected


@pytest.mark.parametrize("bad", ["many", "1.5", 0, -1, 1.0, True, None, 10**6])
def test_config_refuses_bad_values_with_one_line_naming_cpus(bad):
    # (under pytest, jaxtyping's runtime check refuses non-str/int arguments to `config` itself)
    check = (
        _cpus.config if isinstance(bad, str | int) and not isinstance(bad, bool) else _cpus._parse
    )
    with pytest.raises(InputError, match=r"^cpus") as e:
        check(bad)
    assert "\n" not in str(e.value)


def _child(code: str, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


AFTER_COMPUTE = (
    "import json, os, jaxfeat, jax.numpy as jnp\n"
    "jnp.ones(3).block_until_ready()\n"
    "print(json.dumps(sorted(os.sched_getaffinity(0))))\n"
)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
@pytest.mark.slow
def test_the_import_applies_jaxfeat_cpus_before_jax_starts():
    out = _child(AFTER_COMPUTE, JAXFEAT_CPUS="1")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout.strip().splitlines()[-1])) == 1
    out = _child(AFTER_COMPUTE, JAXFEAT_CPUS="all")
    assert json.loads(out.stdout.strip().splitlines()[-1]) == sorted(os.sched_getaffinity(0))
    out = _child(AFTER_COMPUTE, JAXFEAT_CPUS="lots")
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("jaxfeat:")]
    assert out.returncode == 0 and len(lines) == 1 and "JAXFEAT_CPUS ignored" in lines[0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_config_after_the_first_computation_raises_and_the_import_then_leaves_it_alone():
    code = (
        "import jax.numpy as jnp; jnp.ones(3).block_until_ready()\n"
        "import jaxfeat\n"  # the import's `auto` must not raise: JAX already runs
        "try:\n    jaxfeat.config(cpus=1)\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = _child(code, JAXFEAT_CPUS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("InputError cpus: JAX has already started")
