"""Static arguments that compare by what they compute, not by which object they are.

`jax.jit` and `eqx.filter_jit` cache a compiled program on their static arguments' `==`. An
optax transformation is a `GradientTransformation(init, update)` of closures made afresh by
every `optax.sgd(0.05)`, and a lambda typed in a notebook cell is a new object each time the
cell runs, so by identity each such call compiles again. `Static(x)` compares `x` by its
*structure*: a function by its code, defaults and the values in its closure cells and in the
globals it names (recursively: `chain` closes over transformations, which close over schedules,
which close over numbers), numbers and arrays by value, containers and pytrees by their
structure and leaves. Two callables with equal keys run the same code on equal values, so they
trace to the same program; `optax.sgd(0.05)` and `optax.sgd(0.1)` differ (the learning rate is
a closure value). Whatever cannot be keyed soundly — a tracer (an optimizer built inside an
outer `jit`), an object of unknown type (its attributes could change) — makes the whole key
fall back to identity: a correct program, compiled again. Modules, classes and global functions
count by identity, with the plain values among their attributes that the code names (so
`config.lr` is seen to change); what lies deeper, like `config.sub.lr` on a module, is baked in
as `jax.jit` itself bakes in the globals a function reads.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

__all__ = ["Static", "structural_key"]

_MAX_DEPTH = 64  # nested functions followed before giving up (identity)


class Static:
    """A static argument that hashes and compares by `structural_key(value)`, or by identity
    when `value` has no structural key. `.value` is the wrapped object."""

    __slots__ = ("value", "key", "_hash")

    def __init__(self, value: Any):
        self.value = value
        try:
            self.key = ("structure", structural_key(value))
            self._hash = hash(self.key)
        except Exception:  # unkeyable: identity is always correct (a recompile at worst)
            self.key = _Identity(value)
            self._hash = hash(self.key)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Static) or self._hash != other._hash:
            return False
        try:
            return bool(self.key == other.key)
        except Exception:  # e.g. a pytree's static data compared elementwise: recompile
            return False

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


class _Identity:
    """Compares by `is`; holds its object, so that its id is never reused while it is a key."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Identity) and self.obj is other.obj

    def __hash__(self) -> int:
        return id(self.obj)


class _Unkeyable(Exception):
    pass


def structural_key(x: Any) -> tuple:
    """A hashable key such that two objects with equal keys compute the same thing.

    **Arguments:**

    - `x`: a function (closures, defaults and named globals followed), `functools.partial`,
      bound method, number, string, NumPy or JAX array (by value: dtype, shape, weak type and
      a BLAKE2 digest of the bytes), or a pytree of those (containers, NamedTuples such as
      optax's `GradientTransformation`, equinox modules).

    **Returns:** the key. Raises if `x` holds a tracer or an object of any other type.
    """
    return _key(x, [])


def _key(x, stack: list) -> tuple:
    if isinstance(x, Tracer):
        raise _Unkeyable("a tracer has no value")
    if x is None or x is Ellipsis or isinstance(x, (bool, int, str, bytes)):
        return (type(x), x)
    if isinstance(x, float):  # hex: -0.0 ≠ 0.0, and nan equals itself
        return (type(x), x.hex())
    if isinstance(x, complex):
        return (type(x), x.real.hex(), x.imag.hex())
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return _array_key(x)
    if isinstance(x, np.dtype):
        return ("dtype", x.str, x)
    if isinstance(x, types.FunctionType):
        return _function_key(x, stack)
    if isinstance(x, functools.partial):
        return ("partial", _key(x.func, stack), _key(x.args, stack), _key(x.keywords, stack))
    if isinstance(x, types.MethodType):
        return ("method", _key(x.__func__, stack), _key(x.__self__, stack))
    if _is_fixed(x):
        return ("fixed", _Identity(x))
    return _tree_key(x, stack)


def _array_key(x) -> tuple:
    a = np.asarray(x)
    if a.dtype.hasobject:
        raise _Unkeyable("an object array")
    flat = np.ascontiguousarray(a).reshape(-1)  # (ascontiguousarray makes 0-d arrays 1-d)
    digest = hashlib.blake2b(flat.view(np.uint8).data, digest_size=16).digest()
    return ("array", type(x), a.dtype, a.shape, bool(getattr(x, "weak_type", False)), digest)


def _function_key(f: types.FunctionType, stack: list) -> tuple:
    for i, g in enumerate(stack):
        if g is f:  # recursion: a marker for "the function that many levels up"
            return ("cycle", len(stack) - i)
    if len(stack) >= _MAX_DEPTH:
        raise _Unkeyable("functions nested too deeply")
    stack.append(f)
    try:
        return (
            "function",
            f.__code__,
            _key(f.__defaults__, stack),
            _key(f.__kwdefaults__, stack),
            tuple(_cell_key(c, stack) for c in f.__closure__ or ()),
            _globals_key(f, stack),
            _key(f.__dict__, stack),
        )
    finally:
        stack.pop()


def _cell_key(cell, stack: list) -> tuple:
    try:
        value = cell.cell_contents
    except ValueError:  # a cell not yet filled
        return ("empty cell",)
    return _key(value, stack)


def _globals_key(f: types.FunctionType, stack: list) -> tuple:
    """The values of the module globals that `f`'s code names (read when it is traced).
    Functions, modules and classes there count by identity (a redefinition is a new object),
    values by value: `lambda t: lam * t` with a global `lam` changes key when `lam` does, and
    `lambda t: config.lam` when the module or class `config` gets a new `lam`."""
    names = _names(f.__code__)
    found = []
    for name in names:
        if name in f.__globals__:
            value = f.__globals__[name]
            if isinstance(value, types.FunctionType) or _is_fixed(value):
                found.append((name, _Identity(value), _attributes_key(value, names, stack)))
            else:
                found.append((name, _key(value, stack)))
    return tuple(found)


_VALUES = (bool, int, float, complex, str, bytes, tuple, list, dict, np.ndarray, np.generic)


def _attributes_key(obj, names: tuple[str, ...], stack: list) -> tuple:
    """The plain values (numbers, strings, arrays, containers) among the attributes of a module
    or class that `names` could read. Read from its `__dict__`, so no module `__getattr__`
    runs; other attributes (functions, objects) count by identity, one level deep."""
    if not isinstance(obj, (types.ModuleType, type)):
        return ()
    own = vars(obj)
    return tuple(
        (name, _key(own[name], stack))
        for name in names
        if isinstance(own.get(name), (*_VALUES, jax.Array))
    )


@functools.lru_cache(maxsize=4096)
def _names(code: types.CodeType) -> tuple[str, ...]:
    """The global (and attribute) names that `code` and the code nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_names(const))
    return tuple(sorted(names))


def _is_fixed(x) -> bool:
    """Objects that count by identity: modules, classes, builtins, enum members, and JAX's own
    function wrappers (`jax.jit`, `custom_jvp`: e.g. `jnp.sin`, `jax.nn.relu`)."""
    if isinstance(x, (types.ModuleType, type, types.BuiltinFunctionType, np.ufunc, enum.Enum)):
        return True
    return callable(x) and type(x).__module__.split(".")[0] in ("jax", "jaxlib")


def _tree_key(x, stack: list) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(x)
    if jax.tree_util.treedef_is_leaf(treedef) and len(leaves) == 1 and leaves[0] is x:
        raise _Unkeyable(f"no structural key for a {type(x).__name__}")
    return ("tree", treedef, tuple(_key(leaf, stack) for leaf in leaves))
