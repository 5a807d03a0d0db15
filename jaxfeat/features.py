"""Gradient-feature statistics of Shi, Wei, Liang (2023), Def. 3.x (MATH §6.1).

For unit directions D_j and an initialisation distribution of (w, b), the fraction of neurons
whose gradient G(w, b) lies in the γ-cone of D_j with |G| ≥ B_G, split by the sign of b; the
gradient feature set S_{p,γ,B_G} keeps the (D_j, s) reached by at least a fraction p.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from . import _checks
from ._checks import InputError
from .data import Distribution
from .population import population_gradient

__all__ = ["gradient_feature_fractions", "gradient_feature_set", "in_cone"]


def in_cone(G: ArrayLike, directions: ArrayLike, gamma, B_G) -> Bool[Array, "width r"]:
    """[i, j]: cos(G_i, D_j) ≥ 1 − γ and |G_i| ≥ B_G (directions need not be unit vectors)."""
    G, D = jnp.asarray(G), jnp.asarray(directions)
    norms: Array = jnp.linalg.norm(G, axis=1)
    Dhat = D / jnp.linalg.norm(D, axis=1, keepdims=True)
    cos = (G @ Dhat.T) / jnp.where(norms == 0, 1.0, norms)[:, None]
    return (cos >= 1.0 - gamma) & (norms >= B_G)[:, None]


def gradient_feature_fractions(
    G: ArrayLike,
    b: ArrayLike,
    directions: ArrayLike,
    *,
    gamma: float,
    B_G: float,
) -> Float[Array, "r 2"]:
    """p[j, s] = Pr_i[cos(G_i, D_j) ≥ 1 − γ, |G_i| ≥ B_G, sign(b_i) = s], s = (+1, −1).

    The neuron fractions behind the gradient feature set of Shi, Wei & Liang (arXiv 2310.12408,
    Def. 3.x; MATH §6.1). Neurons with b_i = 0 count as s = +1. Directions need not be unit
    vectors (they are normalised). Averages over the m neurons given, i.e. over the
    initialisation they were drawn from.

    **Arguments:**

    - `G`: the gradients G_i (m, dim), e.g. `population_gradient` or `empirical_gradient` at
      the neurons. A zero G_i has cosine 0 with every direction.
    - `b`: the neurons' biases (m,); only their signs are used.
    - `directions`: the directions D_j (r, dim), one per row.
    - `gamma`: the cone width γ, in [0, 2] (else `InputError`).
    - `B_G`: the norm threshold, ≥ 0.

    **Returns:** p (r, 2): column 0 the fraction of all m neurons in D_j's cone with b_i ≥ 0,
    column 1 with b_i < 0.
    """
    m, d = _checks.check_ndim("G", G, 2, "(m, dim)")
    _checks.check_shape("b", b, (m,), "(m,)")
    r = _checks.check_ndim("directions", directions, 2, f"(r, dim) = (r, {d})")[0]
    _checks.check_shape("directions", directions, (r, d), "(r, dim)")
    gamma = _checks.check_nonneg_float("gamma", gamma)
    B_G = _checks.check_nonneg_float("B_G", B_G)
    if gamma > 2:
        raise InputError(f"gamma must be in [0, 2] (cosine ≥ 1 − γ), got {gamma}")
    ok = in_cone(G, directions, gamma, B_G)  # (m, r)
    pos = (jnp.asarray(b) >= 0)[:, None]
    return jnp.stack([jnp.mean(ok & pos, axis=0), jnp.mean(ok & ~pos, axis=0)], axis=-1)


def gradient_feature_set(
    dist: Distribution,
    W: ArrayLike,
    b: ArrayLike,
    directions: ArrayLike,
    *,
    gamma: float,
    B_G: float,
    p: float,
) -> tuple[Float[Array, "r 2"], Bool[Array, "r 2"]]:
    """The fractions of `gradient_feature_fractions` for the exact G of `dist` at the neurons
    (W, b) drawn from an initialisation, and the membership of (D_j, s) in S_{p,γ,B_G}.

    G(w, b) = E[y x 1{w·x > b}] (`population_gradient`, MATH §3), and (D_j, s) ∈ S_{p,γ,B_G}
    when p[j, s] = Pr_i[cos(G_i, D_j) ≥ 1 − γ, |G_i| ≥ B_G, sign(b_i) = s] ≥ p, a fraction of
    all m neurons (Shi, Wei & Liang, arXiv 2310.12408, Def. 3.x; MATH §6.1).

    **Arguments:**

    - `dist`: a `jaxfeat.data` distribution with an exact G (else `InputError`: see
      `has_exact_gradient`).
    - `W`: the neurons' weights (m, dim), dim = `dist.dim`.
    - `b`: their biases (m,).
    - `directions`: the directions D_j (r, dim), one per row, unit or not.
    - `gamma`: the cone width γ, in [0, 2].
    - `B_G`: the norm threshold, ≥ 0.
    - `p`: the fraction threshold, in [0, 1] (a larger one would select nothing: refused).

    **Returns:** `(fractions, member)`, both (r, 2) with columns s = (+1, −1): the fractions
    p[j, s] of `gradient_feature_fractions` (over all m neurons), and the boolean
    `fractions >= p`.
    """
    p = _checks.check_nonneg_float("p", p)
    if p > 1:
        raise _checks.InputError(f"p must be a fraction in [0, 1], got {p}")
    fractions = gradient_feature_fractions(
        population_gradient(dist, W, b), b, directions, gamma=gamma, B_G=B_G
    )
    return fractions, fractions >= p
