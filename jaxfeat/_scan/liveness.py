"""Peak live bytes of a traced program, read from its jaxpr before XLA compiles it: the scan
engine sizes its chunks from this, so that a chunk sized by the memory budget is compiled once.

Walking the equations in order, a value is live from the equation that makes it to its last
use; the program's arguments and constants are live throughout. At each equation the peak is
what is live, plus its outputs, plus the working set of the sub-programs it runs (a `scan` or
`while` body, a `cond` branch, a nested `jit`, a custom-derivative rule) beyond their inputs.
XLA fuses elementwise chains and reuses buffers, so this usually overstates the temporaries of
the compiled program; it does not see XLA's own scratch (a LAPACK workspace, say). The engine
checks the compiled program's `memory_analysis` afterwards and shrinks the chunk (compiling
again) only when the estimate fell short of the budget's need.
"""

from __future__ import annotations

import numpy as np
from jax.extend import core


def peak_bytes(jaxpr: core.ClosedJaxpr | core.Jaxpr) -> int:
    """Peak bytes live at once while `jaxpr` runs, arguments and constants included."""
    inner = jaxpr.jaxpr if isinstance(jaxpr, core.ClosedJaxpr) else jaxpr
    return _peak(inner)


def _peak(jaxpr: core.Jaxpr) -> int:
    eqns = jaxpr.eqns
    last = {}
    for i, eqn in enumerate(eqns):
        for v in eqn.invars:
            if isinstance(v, core.Var):
                last[v] = i
    pinned = {v for v in (*jaxpr.invars, *jaxpr.constvars, *jaxpr.outvars) if _is_var(v)}
    live = sum(_bytes(v) for v in set(jaxpr.invars) | set(jaxpr.constvars))
    peak = live
    for i, eqn in enumerate(eqns):
        out = sum(_bytes(v) for v in eqn.outvars)
        work = max((_working_set(sub) for sub in _subjaxprs(eqn)), default=0)
        peak = max(peak, live + out + work)
        live += out
        for v in set(eqn.outvars):  # made and never read
            if isinstance(v, core.Var) and v not in last and v not in pinned:
                live -= _bytes(v)
        for v in {v for v in eqn.invars if isinstance(v, core.Var)}:
            if last[v] == i and v not in pinned:
                live -= _bytes(v)
    return peak


def _working_set(jaxpr: core.Jaxpr) -> int:
    """What a sub-program needs beyond its inputs (which the caller already holds) and its
    outputs (counted as the calling equation's)."""
    held = sum(_bytes(v) for v in {v for v in (*jaxpr.invars, *jaxpr.outvars) if _is_var(v)})
    return max(0, _peak(jaxpr) - held)


def _subjaxprs(eqn):
    for p in eqn.params.values():
        for x in p if isinstance(p, (tuple, list)) else (p,):
            if isinstance(x, core.ClosedJaxpr):
                yield x.jaxpr
            elif isinstance(x, core.Jaxpr):
                yield x


def _is_var(v) -> bool:
    return isinstance(v, core.Var)


def _bytes(v) -> int:
    aval = getattr(v, "aval", None)
    shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
    if shape is None or dtype is None:
        return 0
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:  # PRNG key arrays and other extended dtypes
        itemsize = getattr(dtype, "itemsize", 8) or 8
    return int(np.prod(shape, dtype=np.int64)) * int(itemsize)
