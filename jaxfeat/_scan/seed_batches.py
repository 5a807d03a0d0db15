"""The scan engine's seed chunker as a function for notebooks: `map_seeds(fn, keys, ...)` runs a
per-seed function over many seeds in one compiled call, vmapping `batch_size` seeds at a time
(`jax.lax.map(..., batch_size=...)`), so that memory is that of one batch, not of every seed
at once (issue 15: ten vmapped seeds of the one-step protocol kept ten test sets alive)."""

from __future__ import annotations

import functools
from typing import Any  # arguments are checked by hand, with errors that name them

import jax

from .. import _checks
from .._checks import InputError, InputTypeError
from .program import parse_bytes

__all__ = ["map_seeds", "seed_batch_for"]


def map_seeds(fn: Any, keys: Any, *, batch_size: Any = None, memory_budget: Any = None):
    """`fn(key) -> pytree` for every key, stacked along a leading seed axis, in one `jit`.

    **Arguments:**

    - `fn`: a per-seed function of one PRNG key (close over everything else, e.g.
      `functools.partial(jf.one_step, n=..., ...)`); the same `fn` object is compiled once per
      batch size and key shape (`jax.jit` keyed on it: a new lambda per call compiles again).
    - `keys`: S keys (`jax.random.split(jax.random.key(0), S)`).
    - `batch_size`: seeds vmapped at a time (the last batch may be smaller); default: all S
      (plain `vmap`).
    - `memory_budget`: bytes (or "2GiB") for the compiled call's buffers instead of a
      `batch_size`; `seed_batch_for` picks the largest batch that fits, read from XLA's memory
      analysis (this costs one compile at the full batch, and one more at the chosen one).

    Results are those of `jax.vmap(fn)(keys)` up to the round-off of batched reductions.
    """
    n = _check(fn, keys, batch_size, memory_budget)
    if memory_budget is not None:
        batch_size = seed_batch_for(fn, keys, memory_budget)
    return _mapped(fn, min(batch_size or n, n), keys)


def seed_batch_for(fn: Any, keys: Any, memory_budget: Any) -> int:
    """The largest seed batch whose `map_seeds` call fits `memory_budget` bytes: the outputs of
    every seed, plus the temporaries of one batch (measured at the full batch and scaled).
    At least 1; S when everything fits.

    From XLA's memory analysis of `map_seeds`'s program compiled at the full batch (one
    compile): with A the argument and output bytes and T the temporaries, the batch is
    ⌊(budget − A) / (T/S)⌋, clipped to 1..S.

    **Arguments:**

    - `fn`: the per-seed function `fn(key) -> pytree`, as for `map_seeds`.
    - `keys`: S ≥ 1 keys, a JAX array (`jax.random.split(jax.random.key(0), S)`).
    - `memory_budget`: bytes, a positive number or a string like `"2GiB"` or `"500MB"`.

    **Returns:** the batch size, an int in 1..S (1 on a backend without the memory analysis).
    Pass it as `map_seeds(fn, keys, batch_size=...)`.
    """
    n = _check(fn, keys, None, memory_budget)
    budget = parse_bytes(memory_budget)
    mem = _mapped.lower(fn, n, keys).compile().memory_analysis()
    if mem is None:  # a backend without the analysis: one seed at a time is always safe
        return 1
    fixed = mem.output_size_in_bytes + mem.argument_size_in_bytes
    per_seed = mem.temp_size_in_bytes / n
    if fixed + mem.temp_size_in_bytes <= budget:
        return n
    return max(1, min(n, int((budget - fixed) // max(per_seed, 1.0))))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _mapped(fn, batch: int, keys):
    """One seed at a time runs `fn` itself (a lone seed: `fn` inlined; more: `lax.map` with no
    batch): a vmap over a batch of 1 compiles to batched ops of size 1, which on a CPU ran
    10–20 % slower than the unbatched ones (`jaxfeat bench`, `batch_sweep`)."""
    if keys.shape[0] == 1:
        return jax.tree.map(lambda x: x[None], fn(keys[0]))
    if batch == 1:
        return jax.lax.map(fn, keys)
    if batch >= keys.shape[0]:
        return jax.vmap(fn)(keys)
    return jax.lax.map(fn, keys, batch_size=batch)


def _check(fn, keys, batch_size, memory_budget) -> int:
    """Every argument before anything is traced. **Returns:** the number of seeds S."""
    if not callable(fn):
        raise InputTypeError(f"fn must be a callable fn(key) -> pytree, got {fn!r}")
    if not isinstance(keys, jax.Array) or keys.ndim < 1 or keys.shape[0] < 1:
        raise InputTypeError(
            "keys must be a JAX array of S ≥ 1 keys (jax.random.split(jax.random.key(0), S)), "
            f"got {type(keys).__name__} of shape {getattr(keys, 'shape', None)}"
        )
    if batch_size is not None and memory_budget is not None:
        raise InputError("give batch_size or memory_budget, not both")
    if batch_size is not None:
        _checks.check_positive_int("batch_size", batch_size)
    if memory_budget is not None:
        parse_bytes(memory_budget)
    return int(keys.shape[0])
