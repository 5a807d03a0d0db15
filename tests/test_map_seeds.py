"""`jf.map_seeds`: a per-seed function over many keys, a batch at a time, within a memory budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compile_log

import jaxfeat as jf
from jaxfeat._checks import InputError, InputTypeError

N = 192  # a per-seed (N, N) temporary: 288 KiB in float64


def per_seed(key):
    X = jax.random.normal(key, (N, 8))
    K = jnp.tanh(X @ X.T / 8)  # the per-seed temporary a batch multiplies
    return {"trace": jnp.trace(K), "top": jnp.linalg.norm(K @ jnp.ones(N)), "row": K[0, :4]}


KEYS = jax.random.split(jax.random.key(3), 24)


@pytest.mark.parametrize("batch_size", [None, 1, 5, 24, 100])
@pytest.mark.slow
def test_equals_a_hand_written_loop_over_seeds(batch_size):
    got = jf.map_seeds(per_seed, KEYS, batch_size=batch_size)
    for i in (0, 7, 23):
        want = per_seed(KEYS[i])
        for name in want:
            np.testing.assert_allclose(got[name][i], want[name], rtol=1e-13, err_msg=name)
    assert got["row"].shape == (24, 4)


def test_memory_budget_picks_a_batch_whose_program_fits():
    full = jax.jit(jax.vmap(per_seed)).lower(KEYS).compile().memory_analysis()
    assert full is not None
    budget = full.temp_size_in_bytes // 4  # a quarter of what vmapping all 24 seeds needs
    batch = jf.seed_batch_for(per_seed, KEYS, budget)
    assert 1 <= batch < 24
    from jaxfeat._scan.seed_batches import _mapped

    mem = _mapped.lower(per_seed, batch, KEYS).compile().memory_analysis()
    used = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
    assert used <= budget, (batch, used, budget)
    got = jf.map_seeds(per_seed, KEYS, memory_budget=budget)
    np.testing.assert_allclose(got["top"], jax.vmap(per_seed)(KEYS)["top"], rtol=1e-13)
    assert jf.seed_batch_for(per_seed, KEYS, "1GiB") == 24  # everything fits: plain vmap


def test_second_call_does_not_compile():
    jf.map_seeds(per_seed, KEYS, batch_size=6)
    # drawn outside the log: splitting keys compiles its own program whenever another test on
    # this worker cleared JAX's caches since (the compile-budget test does)
    other = jax.random.split(jax.random.key(9), 24)
    with compile_log() as log:
        jf.map_seeds(per_seed, other, batch_size=6)
    assert not log, log


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"batch_size": 0}, InputError, "batch_size must be positive"),
        ({"batch_size": 2.5}, InputTypeError, "batch_size must be a positive Python int"),
        ({"batch_size": 2, "memory_budget": "1GiB"}, InputError, "not both"),
        ({"memory_budget": "lots"}, InputError, "memory_budget must be"),
    ],
)
def test_bad_input_is_refused_before_compiling(kwargs, exc, match, no_compile):
    with no_compile(), pytest.raises(exc, match=match):
        jf.map_seeds(per_seed, KEYS, **kwargs)


def test_keys_must_be_an_array_of_keys(no_compile):
    with no_compile(), pytest.raises(InputTypeError, match="keys must be a JAX array"):
        jf.map_seeds(per_seed, [1, 2, 3])
    with no_compile(), pytest.raises(InputTypeError, match="fn must be a callable"):
        jf.map_seeds(3, KEYS)
