"""Argument checks that run in Python, before anything is traced or compiled.

Arrays that are JAX tracers (inside `jit`/`vmap`) are checked for shape only: their values are
not known yet.
"""

from __future__ import annotations

import jax
import jax.core  # explicit: `jax` imports it only under a private name
import numpy as np


class InputError(ValueError):
    """Bad user input (a value or a shape); the message names the argument."""


class InputTypeError(TypeError):
    """Bad user input (a type); the message names the argument."""


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def shape_of(name: str, x) -> tuple[int, ...]:
    try:
        return tuple(np.shape(x))
    except Exception:  # noqa: BLE001 - anything unshapeable is a type error for the user
        raise InputTypeError(f"{name} must be an array, got {type(x).__name__}") from None


def check_gram_eigh(gram_eigh, N: int, dtype=None) -> tuple | None:
    """`gram_eigh` = (e (N,), V (N, N)), an N×N Gram matrix's eigendecomposition, as arrays of
    the features' `dtype` (None passes through); wrong shapes raise `InputError` naming it."""
    if gram_eigh is None:
        return None
    if not isinstance(gram_eigh, (tuple, list)) or len(gram_eigh) != 2:
        raise InputError(f"gram_eigh must be a pair (e, V), got {type(gram_eigh).__name__}")
    e, V = gram_eigh
    if np.shape(e) != (N,) or np.shape(V) != (N, N):
        raise InputError(
            f"gram_eigh must be (e, V) of shapes ({N},), ({N}, {N}) for features with {N} "
            f"columns, got {np.shape(e)}, {np.shape(V)}"
        )
    return jax.numpy.asarray(e, dtype), jax.numpy.asarray(V, dtype)


def check_ndim(name: str, x, ndim: int, expected: str) -> tuple[int, ...]:
    shape = shape_of(name, x)
    if len(shape) != ndim:
        raise InputError(f"{name} must have shape {expected}, got shape {shape}")
    return shape


def check_shape(name: str, x, shape: tuple[int, ...], expected: str) -> None:
    got = shape_of(name, x)
    if got != tuple(shape):
        raise InputError(f"{name} must have shape {expected} = {tuple(shape)}, got shape {got}")


def check_finite(name: str, x) -> None:
    """Raise if a concrete array holds NaN or ±inf (tracers pass: their values are unknown)."""
    if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise InputError(f"{name} contains NaN or inf")


def check_positive_int(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputTypeError(f"{name} must be a positive Python int, got {n!r}")
    if n <= 0:
        raise InputError(f"{name} must be positive, got {n}")
    return int(n)


def check_nonneg_int(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputTypeError(f"{name} must be a Python int >= 0, got {n!r}")
    if n < 0:
        raise InputError(f"{name} must be >= 0, got {n}")
    return int(n)


def check_real(name: str, x) -> float:
    """`x` as a float, or `InputTypeError` naming `name` (a string such as "0.3" is refused:
    `float()` would parse it, and it would then reach JAX as a static argument)."""
    if isinstance(x, (str, bytes)):
        raise InputTypeError(f"{name} must be a number, got the string {x!r}")
    try:
        return float(x)
    except (TypeError, ValueError):
        raise InputTypeError(f"{name} must be a real number, got {x!r}") from None


def check_nonneg_float(name: str, x) -> float:
    v = check_real(name, x)
    if not (v >= 0.0) or np.isinf(v):
        raise InputError(f"{name} must be finite and >= 0, got {x!r}")
    return v


def check_key(key) -> None:
    if not isinstance(key, jax.Array):
        raise InputTypeError(
            f"key must be a JAX PRNG key (jax.random.key(0)), got {type(key).__name__}"
        )


def same_value(a, b) -> bool:
    """Equal as parameter values: 1 and 1.0 alike, a tuple and a list of equal items alike."""
    try:
        return bool(np.all(np.asarray(a, dtype=object) == np.asarray(b, dtype=object)))
    except (TypeError, ValueError):
        return a is b


def check_choice(name: str, value, allowed) -> None:
    """`value` one of the strings `allowed`, or `InputError` naming `name`."""
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {allowed}, got {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")


def check_in_range(name: str, value, low: float, high: float = np.inf, closed=True) -> None:
    """A concrete number in [low, high] (open below unless `closed`); traced values pass (a
    scan's dynamic axes, checked where they are concrete)."""
    if not is_concrete(value):
        return
    if isinstance(value, bool):
        raise InputTypeError(f"{name} must be a number, got {value!r}")
    v = check_real(name, value)
    if not (low <= v <= high) or (not closed and v == low) or not np.isfinite(v):
        bound = (
            f"in [{low:g}, {high:g}]" if np.isfinite(high) else f"{'>=' if closed else '>'} {low:g}"
        )
        raise InputError(f"{name} must be finite and {bound}, got {value!r}")
