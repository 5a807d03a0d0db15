"""Strict test configuration (DESIGN §6.8): float64, no implicit rank promotion, a key fixture.

jaxtyping + beartype runtime shape checks are switched on for `jaxfeat` through
`--jaxtyping-packages` in pyproject.toml, under pytest only.
"""

import os
import sys
from contextlib import contextmanager

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_platforms", "cpu")
# `jaxfeat run` called in-process must not turn on the persistent compilation cache for the
# whole test process (compile-counting tests would see cache hits); tests of the cache set it
os.environ["JAXFEAT_CACHE_DIR"] = "off"
# tests compute on every CPU, whatever else runs (jaxfeat/_cpus.py; tests of `auto` set it)
os.environ["JAXFEAT_CPUS"] = "all"
# the scan engine's timing calibration (`jaxfeat._scan.cost`) is per machine: tests must neither
# read the user's nor write it
os.environ["JAXFEAT_CALIBRATION"] = os.path.join(
    __import__("tempfile").mkdtemp(prefix="jaxfeat-calibration-"), "calibration.json"
)


@pytest.fixture(autouse=True)
def _fresh_scan_caches():
    """Each test starts with no compiled scan programs and no traced shapes kept from another
    test (`jaxfeat._scan.program.PROGRAMS`, `SHAPES`): compile counts do not depend on order."""
    from jaxfeat._scan import program

    program.clear_caches()


@pytest.fixture
def getkey():
    """Fresh, distinct PRNG keys on each call; deterministic per test."""
    state = {"i": 0}
    base = jax.random.key(1234)

    def _getkey():
        state["i"] += 1
        return jax.random.fold_in(base, state["i"])

    return _getkey


# JAX records this event once per XLA (backend) compilation, with the program's name; counting
# events does not depend on the wording of JAX's log lines. If JAX renames the event, the positive
# control in `compile_log` fails loudly instead of every "nothing compiled" check passing.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_control_passed = False


@contextmanager
def _compiles():
    names = []

    def listen(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def _positive_control():
    """A fresh function must be seen compiling once, or the compile counter is blind."""
    global _control_passed
    if not _control_passed:
        with _compiles() as names:
            jax.jit(lambda x: x + 1)(0.0).block_until_ready()  # a new lambda: never cached
        assert names, f"no {_COMPILE_EVENT!r} event seen for a fresh jit: JAX renamed it?"
        _control_passed = True


@contextmanager
def compile_log():
    """Collect the names of the XLA programs compiled inside the block (e.g. `jit(_ensemble)`).

    Counts JAX's backend-compile monitoring event, after a positive control (a fresh `jax.jit`
    must register one compile) so that an empty list means "nothing compiled", not "blind".
    """
    _positive_control()
    with _compiles() as names:
        yield names


@pytest.fixture
def no_compile():
    """Context manager asserting that nothing is compiled inside it (errors must come first)."""

    @contextmanager
    def _ctx():
        _warm_conversions()
        with compile_log() as messages:
            yield
        assert not messages, f"XLA compiled before the error: {messages[:2]}"

    return _ctx


def _warm_conversions():
    """Compile the scalar dtype conversions that argument checks use (jnp.asarray(x, dtype)),
    so that `no_compile` sees only what the code under test compiles, whatever test ran first
    in this process (pytest-xdist changes the order)."""
    import jax.numpy as jnp

    kinds = (jnp.float64, jnp.float32, jnp.int64, jnp.int32, jnp.bool_)
    for src in kinds:
        for dst in kinds:
            jnp.zeros((), src).astype(dst).block_until_ready()
    jax.random.key(0).block_until_ready()


sys.path.insert(0, os.path.dirname(__file__))


def assert_same(got: dict, ref: dict, rtol=1e-12):
    """Two output dicts with the same keys and shapes: integer and boolean outputs identical,
    floating ones within `rtol` of the reference's largest magnitude (at least 1); NaN where
    the reference is NaN."""
    assert set(got) == set(ref)
    for k in ref:
        g, r = np.asarray(got[k]), np.asarray(ref[k])
        assert g.shape == r.shape, k
        if np.issubdtype(r.dtype, np.integer) or r.dtype == bool:
            np.testing.assert_array_equal(g, r, err_msg=k)
        else:
            scale = max(1.0, float(np.nanmax(np.abs(r), initial=0.0)))
            np.testing.assert_allclose(g, r, rtol=0, atol=rtol * scale, err_msg=k)
