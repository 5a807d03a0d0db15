"""Strict test configuration (DESIGN §6.8): float64, no implicit rank promotion, a key fixture.

jaxtyping + beartype runtime shape checks are switched on for `jaxfeat` through
`--jaxtyping-packages` in pyproject.toml, under pytest only.
"""

import logging
import os
import sys
from contextlib import contextmanager

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_platforms", "cpu")


@pytest.fixture
def getkey():
    """Fresh, distinct PRNG keys on each call; deterministic per test."""
    state = {"i": 0}
    base = jax.random.key(1234)

    def _getkey():
        state["i"] += 1
        return jax.random.fold_in(base, state["i"])

    return _getkey


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if "Compiling" in msg or "compiling" in msg:
            self.messages.append(msg)


@contextmanager
def compile_log():
    """Collect XLA compilation log lines emitted inside the block (jax.log_compiles)."""
    handler = _CompileLog()
    logger = logging.getLogger("jax")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


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
