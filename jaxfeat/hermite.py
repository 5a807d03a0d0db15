"""Hermite machinery: normalised probabilists' Hermite polynomials and Hermite coefficients.

`c_k(σ) = E[σ(z) h_k(z)]`, z ~ N(0,1), h_k = He_k/√(k!), so σ = Σ_k c_k h_k in L²(N(0,1)) and
E σ² = Σ_k c_k² (MATH §1).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from . import activations as _act
from ._checks import InputError, InputTypeError
from ._quadrature import (
    check_degree,
    check_scale,
    choose_rule,
    hermite_polynomials as hermite_polynomials,
    project,
)

__all__ = ["hermite_polynomials", "hermite_coefficients"]


def hermite_coefficients(
    fn: str | _act.Activation | Callable,
    degree: int,
    *,
    scale: float = 1.0,
    method: str = "auto",
    kinks: tuple[float, ...] = (),
) -> np.ndarray:
    """Hermite coefficients c_k = E[σ(s z) h_k(z)], k = 0..degree, in float64.

    **Arguments:**
    - `fn`: an activation name (`"relu"`, `"tanh"`, `"he3"`, ...), an `Activation`, or any
      callable that maps a float64 array elementwise (NumPy or JAX; JAX callables are evaluated
      with 64-bit enabled).
    - `degree`: highest order K ≥ 0.
    - `scale`: the weight norm s = |w|; for a named activation the coefficients are those of the
      neuron at |w| = s (see `jaxfeat.activations`), for a callable those of z ↦ fn(s z).
    - `method`: `"auto"` (closed form where MATH §1.1 has one; otherwise Gauss–Hermite for smooth
      functions at s ≤ 2 and Gauss–Legendre panels split at kinks, MATH §1.2), `"closed_form"`,
      `"gauss_hermite"` or `"legendre"`.
    - `kinks`: for a callable, the points z where it is not smooth (e.g. `(0.0,)` for a ReLU-like
      function); these switch `"auto"` to split Gauss–Legendre.

    **Returns:** NumPy float64 array of shape `(degree + 1,)`; accurate to ~1e-13 for degree ≤ 20.
    """
    degree = check_degree(degree)
    if isinstance(fn, (str, _act.Activation)):
        if kinks:
            raise InputError("kinks: only for plain callables; named activations know theirs")
        return _act.get(fn).hermite_coefficients(degree, scale, method)
    if not callable(fn):
        raise InputTypeError(
            f"fn must be an activation name, an Activation or a callable, got {fn!r}"
        )
    s = check_scale(scale)
    if method == "closed_form":
        raise InputError("method='closed_form' needs a named activation, not a plain callable")
    if method not in ("auto", "gauss_hermite", "legendre"):
        raise InputError(f"method must be 'auto', 'gauss_hermite' or 'legendre', got {method!r}")
    x, w = choose_rule(tuple(float(k) for k in kinks), s, method)
    with jax.enable_x64(True):
        values = np.asarray(fn(s * x), dtype=np.float64)
    if values.shape != x.shape:
        raise InputError(f"fn must act elementwise: got shape {values.shape} for input {x.shape}")
    return project(values, x, w, degree)
