"""Sizes as dynamic values below a static capacity (DESIGN §4, "Start fast").

A function that takes a sample count n (or a width, or a dimension) compiles one program per
value when n is a shape. Given a static `capacity` instead, it computes on `capacity` rows of
which the first n are *live*; n is then an ordinary (traced) value and a sweep over n compiles
once per capacity. Padding rows are zero and are masked out of every sum.

Draws do not depend on the capacity. `normal(key, capacity_shape, live_shape)` equals
`jax.random.normal(key, live_shape)` on its live block, bit for bit: with JAX's partitionable
threefry (the default since JAX 0.5, `jax_threefry_partitionable`) element i of a draw of any
shape is a function of the key and i's flat index alone, so the live block is gathered from a
flat draw by its flat indices in the live shape. Draws whose leading axis is the sample axis
(`jax.random.normal(key, (n, d))`, `choice`, `bernoulli`, …) are prefixes of the larger draw as
they are, so `Distribution.sample(key, n, capacity=c)` is `sample(key, c)` with rows n.. zeroed.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from . import _checks
from ._checks import InputError, InputTypeError

__all__ = ["Capacity", "check_size", "fills", "live_mask", "mask_rows", "normal", "is_static"]


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Static capacities of the sizes a one-step function takes as dynamic values (None: that
    size is a plain static int, its own capacity).

    **Arguments:** `n` step samples, `n_tilde` readout samples (ñ), `width` neurons. With
    `Capacity(n=1000)`, `one_step(…, n=k)` accepts any 1 ≤ k ≤ 1000, traced or not, and a
    sweep over k under `jit`/`vmap` compiles once; outputs are those of `n=k` run alone (to
    rounding; the same random draws).
    """

    n: int | None = None
    n_tilde: int | None = None
    width: int | None = None

    def __post_init__(self):
        for name in ("n", "n_tilde", "width"):
            v = getattr(self, name)
            if v is not None:
                _checks.check_positive_int(f"capacity.{name}", v)


def is_static(n) -> bool:
    """True for a Python (or NumPy) int, False for a JAX array or tracer."""
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


def check_size(name: str, n, capacity: int | None) -> tuple[int | Array, int]:
    """(live size, capacity) of a size argument. Without a capacity `n` must be a positive
    Python int (its own capacity). With one, `n` may be a traced integer scalar; a concrete
    `n` must lie in 1..capacity. Errors name `name`."""
    if capacity is None:
        n = _checks.check_positive_int(name, n)
        return n, n
    capacity = _checks.check_positive_int(f"{name} capacity", capacity)
    if is_static(n):
        n = _checks.check_positive_int(name, n)
    else:
        shape = _checks.shape_of(name, n)
        dtype = getattr(n, "dtype", None)
        if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.integer):
            raise InputTypeError(f"{name} must be an int or an integer scalar array, got {n!r}")
        if _checks.is_concrete(n):
            n = _checks.check_positive_int(name, int(n))
    if is_static(n) and n > capacity:
        raise InputError(f"{name}={n} exceeds its capacity {capacity}")
    return n, capacity


def fills(live, shape) -> bool:
    """True when every live size is static and equal to its capacity (nothing is padding)."""
    return all(is_static(v) and v == c for v, c in zip(live, shape))


def live_mask(capacity: int, n) -> Bool[Array, " capacity"]:
    """True on the first n of `capacity` entries (all True, folded away, when n is static and
    equal to the capacity)."""
    return jnp.arange(capacity) < n


def live_mean(x, n) -> Array:
    """The mean of x (rows, …) over all its rows, or over its first `n` (a live count, possibly
    traced: the padding rows after it are left out whatever they hold)."""
    x = jnp.asarray(x)
    if n is None:
        return jnp.mean(x)
    live = live_mask(x.shape[0], n).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.sum(where(live, x, jnp.zeros((), x.dtype))) / (n * math.prod(x.shape[1:]))


def where(cond, x, y) -> Array:
    """`jnp.where(cond, x, y)`, typed as an array (pyright reads jnp.where's one-argument
    overload into its return type)."""
    out: Array = jnp.where(cond, x, y)  # pyright: ignore[reportAssignmentType]
    return out


def mask_rows(x, n) -> Array:
    """x (rows, …) with the rows from `n` on zeroed (x itself when `n` is None): the one
    place padding rows are masked."""
    x = jnp.asarray(x)
    if n is None:
        return x
    live = live_mask(x.shape[0], n)
    return where(live.reshape(live.shape + (1,) * (x.ndim - 1)), x, jnp.zeros((), x.dtype))


def normal(key: PRNGKeyArray, shape: tuple[int, ...], live: tuple, dtype=None) -> Float[Array, ...]:
    """A standard normal array of static `shape` whose block `[:live[0], :live[1], …]` equals
    `jax.random.normal(key, live)` exactly and which is zero elsewhere (module docstring).
    `live` may hold traced sizes; when it equals `shape` this is `jax.random.normal` itself."""
    dtype = dtype or jnp.zeros(()).dtype
    if len(live) != len(shape):
        raise InputError(f"live shape {live} must have as many axes as {shape}")
    if fills(live, shape):
        return jax.random.normal(key, shape, dtype)
    if not jax.config.jax_threefry_partitionable:  # pyright: ignore[reportAttributeAccessIssue]
        raise InputError(
            "dynamic sizes need jax_threefry_partitionable=True (JAX's default): its draws are "
            "prefixes of larger draws"
        )
    flat = jax.random.normal(key, (math.prod(shape),), dtype)
    index, valid = jnp.zeros(shape, jnp.int32), jnp.ones(shape, bool)
    stride = jnp.ones((), jnp.int32)
    for axis in reversed(range(len(shape))):  # flat index in the live shape, row-major
        i = jax.lax.broadcasted_iota(jnp.int32, shape, axis)
        index = index + i * stride
        valid = valid & (i < live[axis])
        stride = stride * jnp.asarray(live[axis], jnp.int32)
    return where(valid, flat[where(valid, index, 0)], jnp.zeros((), dtype))
