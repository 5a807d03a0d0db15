"""Normalised Hermite polynomials and Gaussian quadrature rules (MATH §1, §1.2).

Everything here is host-side float64 NumPy, except `hermite_polynomials`, which is written with
array operators only and so works on NumPy and JAX arrays alike (inside `jit` too).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import InputError, InputTypeError

# Gauss-Legendre panels integrate against φ on [-_CUTOFF, _CUTOFF]; φ(16) ≈ 1e-56, so the tails
# are negligible even against h_k(16) for k ≤ 50.
_CUTOFF = 16.0
_NODES_PER_PANEL = 40


def hermite_polynomials(x, degree: int):
    """Normalised probabilists' Hermite polynomials h_k = He_k/√(k!), k = 0..degree.

    Uses the stable recurrence h_{k+1} = (x h_k − √k h_{k−1})/√(k+1) (MATH §1), which never forms
    a factorial. They are orthonormal: E[h_j(z) h_k(z)] = δ_jk for z ~ N(0, 1).

    **Arguments:**
    - `x`: NumPy or JAX array of any shape.
    - `degree`: highest degree K ≥ 0 (a Python int).

    **Returns:** array of shape `x.shape + (degree + 1,)`, of `x`'s array type.
    """
    degree = check_degree(degree)
    if isinstance(x, jax.Array):  # traced: a lax.scan over k, compile time flat in the degree
        ks = jnp.arange(1, degree + 1, dtype=x.dtype)
        _, rest = jax.lax.scan(_hermite_step, (jnp.zeros_like(x), jnp.ones_like(x), x), ks)
        return jnp.concatenate([jnp.ones_like(x)[..., None], jnp.moveaxis(rest, 0, -1)], axis=-1)
    x = np.asarray(x)
    polys = [np.ones_like(x)]
    if degree >= 1:
        polys.append(x)
    for k in range(1, degree):
        polys.append((x * polys[k] - math.sqrt(k) * polys[k - 1]) / math.sqrt(k + 1))
    return np.stack(polys, axis=-1)


def _hermite_step(carry, k):
    """h_k = (x h_{k−1} − √(k−1) h_{k−2})/√k (module level: eager calls reuse the scan)."""
    h_prev, h, x = carry
    nxt = (x * h - jnp.sqrt(k - 1) * h_prev) / jnp.sqrt(k)
    return (h, nxt, x), nxt


def check_degree(degree) -> int:
    """A Hermite degree K: a non-negative Python int (errors name `degree`)."""
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)):
        raise InputTypeError(f"degree must be a non-negative Python int, got {degree!r}")
    if degree < 0:
        raise InputError(f"degree must be >= 0, got {degree}")
    return int(degree)


def check_scale(scale) -> float:
    """A weight norm s = |w| for the coefficients c_k(s): a finite real number >= 0."""
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"scale must be a real number (the weight norm |w|), got {scale!r}"
        ) from None
    if not (s >= 0.0) or math.isinf(s):
        raise InputError(f"scale must be a finite number >= 0 (the weight norm |w|), got {scale!r}")
    return s


@functools.lru_cache(maxsize=32)
def gauss_hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite rule for E_{z~N(0,1)}[g(z)] ≈ Σ_i w_i g(x_i) (weights sum to 1).

    Exact for polynomials of degree ≤ 2n − 1. `hermegauss` returns NaN beyond n ≈ 350 (MATH §1.2),
    so n is capped at 300; use `legendre_panel_rule` for more resolution.
    """
    if not 1 <= n <= 300:
        raise InputError(f"Gauss-Hermite node count must be in [1, 300], got {n}")
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=64)
def legendre_panel_rule(
    breakpoints: tuple[float, ...] = (), panel_width: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre rule for E_{z~N(0,1)}[g(z)], split at `breakpoints` (MATH §1.2 (b)).

    [−16, 16] is cut at every breakpoint and into panels no wider than `panel_width`; each panel
    gets 40 Gauss–Legendre nodes and the weights carry the density φ. A function that is smooth on
    every panel (kinks only at breakpoints) is integrated to ~1e-14.
    """
    cuts = sorted({-_CUTOFF, _CUTOFF, *(b for b in breakpoints if abs(b) < _CUTOFF)})
    xs, ws = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        n_panels = max(1, math.ceil((hi - lo) / panel_width))
        x, w = gauss_legendre_panels(np.linspace(lo, hi, n_panels + 1), _NODES_PER_PANEL)
        xs.append(x.ravel())
        ws.append(w.ravel())
    x = np.concatenate(xs)
    w = np.concatenate(ws) * np.exp(-(x**2) / 2) / math.sqrt(2.0 * math.pi)
    return x, w


@functools.lru_cache(maxsize=16)
def _legendre_nodes(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)


def gauss_legendre_panels(edges, nodes: int):
    """Composite Gauss–Legendre rule: `nodes` points on each panel between consecutive `edges`.

    **Arguments:**
    - `edges`: NumPy or JAX array (..., panels + 1), increasing along the last axis; leading
      axes batch independent rules (e.g. one interval per neuron, inside `jit`).
    - `nodes`: points per panel (a Python int).

    **Returns:** `(x, w)` of shape (..., panels, nodes) with ∫ g over [edges[0], edges[-1]]
    ≈ Σ w g(x) (the plain Lebesgue measure: multiply `w` by a density to integrate against it).
    """
    t, v = _legendre_nodes(nodes)
    shape = (1,) * np.ndim(edges) + (nodes,)  # explicit ranks (no implicit rank promotion)
    half = (edges[..., 1:] - edges[..., :-1]) / 2
    mid = (edges[..., 1:] + edges[..., :-1]) / 2
    return mid[..., None] + half[..., None] * t.reshape(shape), half[..., None] * v.reshape(shape)


def project(
    values: np.ndarray | np.floating, nodes: np.ndarray, weights: np.ndarray, degree: int
) -> np.ndarray:
    """c_k = Σ_i w_i g(x_i) h_k(x_i): the Hermite coefficients of g from its values at the nodes."""
    # NumPy nodes give NumPy polynomials (hermite_polynomials keeps the array type)
    return hermite_polynomials(nodes, degree).T @ (weights * values)  # pyright: ignore[reportReturnType]


def choose_rule(
    kinks: tuple[float, ...], s: float, method: str, polynomial_nodes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The quadrature rule of MATH §1.2 for E[g(s z) h_k(z)] with g kinked at `kinks`.

    `"legendre"`, or `"auto"` with kinks or s > 2 (poles of smooth g move towards the real
    axis like 1/s): Gauss–Legendre panels of width 1/max(1, s) split at kinks/s. Otherwise
    Gauss–Hermite: `polynomial_nodes` nodes for a polynomial g (exact), else ⌈150·max(1, s)⌉.
    """
    if method == "legendre" or (method == "auto" and (kinks or s > 2.0)):
        scaled = tuple(float(k) / s for k in kinks) if s > 0 else ()
        return legendre_panel_rule(scaled, 1.0 / max(1.0, s))
    if polynomial_nodes is not None:
        return gauss_hermite_rule(min(300, polynomial_nodes))
    return gauss_hermite_rule(min(300, math.ceil(150 * max(1.0, s))))
