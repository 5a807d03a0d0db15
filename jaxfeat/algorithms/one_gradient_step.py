"""Moniri, Lee, Hassani, Dobriban (2023): one large gradient step on W, then ridge on the features.

`one_step` takes the step; `one_step_spikes` is the whole per-seed experiment (step, spikes of
the updated features, ridge readout). N below is Moniri et al.'s width (`width=` in signatures).

MATH §4.1 (the [R] normalisations are parameters): x ~ N(0, I_d), y = f*(β·x) + ε; W₀ rows
uniform on the sphere (or Gaussian, Ba et al. 2022), a ~ N(0, I/N) fixed;
f_W(x) = scale · aᵀσ(Wx) with scale 1 (default, the convention of MATH §10), 1/√N or 1/N;
L(W) = |y − f_W(X)|²/(2n); one step W₁ = W₀ − (η/scale) ∇_W L(W₀) with η = c·n^α, which for
scale = 1/√N is MATH §4.1's W₀ − η√N ∇L and for either scale equals
W₀ + (η/n) diag(a)[σ'(W₀Xᵀ) ⊙ 1rᵀ] X with r = y − f_{W₀}(X).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import _checks, _vocabulary, activations as _act
from .._checks import InputError
from ..data import Distribution, SingleIndex
from ..nets import TwoLayer, unit_rows
from ..ridge import ridge_path
from ..rows import ArrayRows, SampledRows, fold_rows
from ..spectrum import LazyFeatures, count_spikes, hermite_features

__all__ = ["OneStepResult", "one_step", "one_step_spikes"]


class OneStepResult(eqx.Module):
    """W₀, W₁ (width, dim); a (width,); ζ = Xᵀr/n (dim,), whose direction ζ̂ carries the spikes;
    η; scale."""

    W0: Float[Array, "width dim"]
    W1: Float[Array, "width dim"]
    a: Float[Array, " width"]
    zeta: Float[Array, " dim"]
    eta: Float[Array, ""]
    scale: Float[Array, ""]


_SCALES = {  # output scale of a width-N network (the arithmetic of 0.1, so draws are unchanged)
    "1": lambda N: 1.0,
    "1/sqrt(width)": lambda N: 1.0 / np.sqrt(N),
    "1/width": lambda N: 1.0 / N,
}


def _check_width(where, width, N):
    """`width` (or its deprecated name `N`) as a positive int; the error names the one given."""
    name, width = _vocabulary.renamed(where, "width", width, "N", N, stacklevel=5)
    if width is None:
        raise InputError(f"{where}: width= (the number of neurons) is required")
    return _checks.check_positive_int(name, width)


def _check_scheme(where, scheme, init):
    """`scheme` (or its deprecated name `init`), one of "sphere" (default) and "gaussian"."""
    name, scheme = _vocabulary.renamed(where, "scheme", scheme, "init", init, stacklevel=5)
    scheme = "sphere" if scheme is None else scheme
    if scheme not in ("sphere", "gaussian"):
        raise InputError(f"{name} must be 'sphere' or 'gaussian', got {scheme!r}")
    return scheme


def _check_alpha(alpha):
    if _checks.is_concrete(alpha):
        try:
            a = float(alpha)
        except (TypeError, ValueError):
            raise _checks.InputTypeError(f"alpha must be a number, got {alpha!r}") from None
        if not 0.0 <= a <= 0.5:  # ½: Dandi et al.'s giant step η = c·√n
            raise InputError(f"alpha must be in [0, 1/2], got {alpha}")


def _check_positive_scalar(name, x):
    if _checks.is_concrete(x):
        try:
            v = float(x)
        except (TypeError, ValueError):
            raise _checks.InputTypeError(f"{name} must be a number, got {x!r}") from None
        if not (np.isfinite(v) and v > 0):
            raise InputError(f"{name} must be finite and > 0, got {x!r}")


def one_step(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    n: int,
    width: int | None = None,
    activation: str | _act.Activation = "shifted_relu",
    alpha=0.3,
    c=1.0,
    eta=None,
    scheme: str | None = None,
    output_scale: str = "1",
    remove_low_order: bool = False,
    tile: int | None = None,
    N: int | None = None,
    init: str | None = None,
) -> OneStepResult:
    """One gradient step of the first layer on n fresh samples of `dist` (one seed).

    **Arguments:** `n` step samples, `width` (Moniri et al.'s N) neurons (static ints); `alpha`
    ∈ [0, ½] (½ is Dandi et al.'s giant step; `jaxfeat.theory`'s ℓ(α) holds for α < ½),
    `c` (η = c·n^α) or `eta` directly, all dynamic scalars, so the function vmaps over them
    without recompiling; `scheme` `"sphere"` (default) | `"gaussian"` for W₀ (rows uniform on the
    unit sphere or N(0, I/dim), `jaxfeat.nets.unit_rows`); `output_scale` `"1"` |
    `"1/sqrt(width)"` | `"1/width"`;
    `remove_low_order` subtracts the labels' estimated He₀ and He₁ parts (mean and the least-
    squares linear part Xζ_lin, ζ_lin = Xᵀ(y − ȳ)/n) before the step (Dandi et al. 2023);
    `tile` streams the step: the n samples are drawn `tile` rows at a time
    (`jaxfeat.rows.SampledRows`) and ∇L and ζ are accumulated over the tiles, so memory is
    O(N·d + tile·(N + d)) whatever n is (the samples then differ from `tile=None`'s draw).
    `N=` and `init=` are the deprecated 0.1 names of `width=` and `scheme=`.

    **Returns:** a `OneStepResult`.
    """
    _check_step_args(key, dist, alpha, c, eta)
    n = _checks.check_positive_int("n", n)
    N = _check_width("one_step", width, N)
    scheme = _check_scheme("one_step", scheme, init)
    output_scale = _vocabulary.output_scale("one_step", output_scale)
    act = _act.get(activation)
    tile = None if tile is None else _checks.check_positive_int("tile", tile)
    k_data, k_w, k_a = jax.random.split(key, 3)
    d = dist.dim
    rows = _step_rows(k_data, dist, n, tile)
    dtype = jnp.zeros(()).dtype
    W0 = unit_rows(k_w, N, d, scheme, dtype, tile)
    a = jax.random.normal(k_a, (N,), dtype) / np.sqrt(N)
    scale = jnp.asarray(_SCALES[output_scale](N), dtype)
    eta = c * jnp.asarray(n, dtype) ** alpha if eta is None else jnp.asarray(eta, dtype)
    adjust = _low_order_remover(rows) if remove_low_order else (lambda X, y: y)
    # centred homogeneous neurons (sigma_ge2) depend on |w_i| too: ∂L/∂w_i gets ∂L/∂|w_i|·w_i/|w_i|
    norms = TwoLayer(W0, jnp.zeros(N, dtype), a, act).norms() if act.removed else jnp.ones(N, dtype)
    tile_terms = functools.partial(_tile_terms, W0, a, norms, act, scale, adjust, n)
    block = d if tile is None else min(d, max(tile, 1024))  # columns of DᵀX added at a time
    W1, zeta = _gradient_step(rows, W0, norms, tile_terms, eta / scale, act.removed, block)
    return OneStepResult(W0, W1, a, zeta, jnp.asarray(eta, dtype), scale)


def _step_rows(key, dist, n, tile):
    """The step's n samples: drawn at once, or (`tile`) tile by tile and never stored."""
    if tile is None:
        return ArrayRows(*dist.sample(key, n), tile=n)
    return SampledRows(dist, n, key=key, tile=tile)


def _tile_terms(W0, a, norms, act, scale, adjust, n, X, y, valid):
    """One tile's D = ∂L/∂(XW₀ᵀ) (tile, N), ∂L/∂|w| (N,) and its part of ζ = Xᵀr/n, for the
    squared loss L = Σ r²/(2n), r = y − scale·σ(XW₀ᵀ)a over the tile's valid rows."""

    def tile_loss(pre, norm):
        residual: Array = adjust(X, y) - scale * (act.neuron(pre, norm) @ a)
        r = jnp.where(valid, residual, 0.0)
        return jnp.sum(r**2) / (2 * n), r

    (D, g_norm), r = jax.grad(tile_loss, (0, 1), has_aux=True)(X @ W0.T, norms)
    return D, g_norm, X.T @ r / n


def _check_step_args(key, dist, alpha, c, eta) -> None:
    _checks.check_key(key)
    if not isinstance(dist, Distribution):
        raise InputError(f"dist must be a jaxfeat.data distribution, got {type(dist).__name__}")
    _check_alpha(alpha)
    _check_positive_scalar("c", c)
    if eta is not None:
        _check_positive_scalar("eta", eta)


def _gradient_step(rows, W0, norms, tile_terms, step, has_norm_term, block):
    """W₀ − step·∇_W L(W₀), ∇_W L = Σ_t D_tᵀX_t + diag(∂L/∂|w|/|w|) W₀, and ζ, over the row
    tiles. The sum starts from W₀ and −step·D_tᵀX_t is added `block` columns at a time in place,
    so the only (N, d) buffers are W₀ and W₁ (a separate gradient would be a third)."""
    N, d = W0.shape

    def body(carry, t):
        W, g_norm, zeta = carry
        X, y = rows.tile_at(t)
        D, gn, z = tile_terms(X, y, rows.valid(t))
        return (_add_DtX(W, -step * D, X, block), g_norm + gn, zeta + z), None

    init = (W0, jnp.zeros(N, W0.dtype), jnp.zeros(d, W0.dtype))
    W1, g_norm, zeta = jax.lax.scan(body, init, jnp.arange(rows.n_tiles))[0]
    if has_norm_term:  # centred homogeneous neurons only; zero otherwise
        W1 = W1 - step * (g_norm / norms)[:, None] * W0
    return W1, zeta


def _add_DtX(G, D, X, block):
    """G + DᵀX, computed `block` columns at a time (the last block's start is clamped, and the
    columns it shares with the previous block are masked, so each column is added once)."""
    d = X.shape[1]
    if block >= d:
        return G + D.T @ X

    def add(j, G):
        start = jnp.minimum(j * block, d - block)
        fresh = (start + jnp.arange(block)) >= j * block
        DtX: Array = D.T @ jax.lax.dynamic_slice_in_dim(X, start, block, 1)
        part = jnp.where(fresh[None, :], DtX, 0.0)
        old = jax.lax.dynamic_slice_in_dim(G, start, block, 1)
        return jax.lax.dynamic_update_slice_in_dim(G, old + part, start, 1)

    return jax.lax.fori_loop(0, -(-d // block), add, G)


def _low_order_remover(rows):
    """y ↦ y − ȳ − Xζ_lin with ζ_lin = Xᵀ(y − ȳ)/n: the labels' estimated He₀ and He₁ parts,
    from one pass over the rows (Σy, Xᵀy, Σx)."""
    n, d = rows.n, rows.dim
    dtype = jnp.zeros(()).dtype

    def sums(X: Array, y: Array, v):  # traced tiles (`fold_rows` scans over them)
        y, X = jnp.where(v, y, 0.0), jnp.where(v[:, None], X, 0.0)
        return jnp.sum(y), X.T @ y, jnp.sum(X, 0)

    zeros = (jnp.zeros((), dtype), jnp.zeros(d, dtype), jnp.zeros(d, dtype))
    sy, Xty, sx = fold_rows(rows, sums, zeros)
    ybar = sy / n
    zeta_lin = (Xty - ybar * sx) / n
    return lambda X, y: y - ybar - X @ zeta_lin


def one_step_spikes(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    n: int,
    n_tilde: int,
    width: int | None = None,
    n_test: int = 2000,
    activation="shifted_relu",
    alpha=0.3,
    c=1.0,
    k: int = 10,
    degree: int = 8,
    margin: float = 1.02,
    lambdas=None,
    tile: int | None = None,
    iters: int = 8,
    N: int | None = None,
    **step_kwargs,
) -> dict[str, Array]:
    """The whole per-seed experiment: step, fresh (X̃, ỹ) of size ñ for features and ridge, spike
    statistics of F₁ = σ(X̃W₁ᵀ) against the deflated edge (MATH §4.3), the F₀ edge, and ridge
    test errors for W₀ and W₁ features over `lambdas` (default 10⁻⁷..1) on `n_test` fresh points.
    Returns a dict of small arrays, ready to vmap over seeds, α and c.

    With `tile`, the scale path: the step is streamed (`one_step(tile=…)`), X̃ is drawn tile
    by tile and never stored, and the spike statistics come from the matrix-free Krylov path
    (`iters` blocks) on `LazyFeatures`, so memory is O(N·d + tile·(N + d)) whatever n and ñ
    are. The ridge readout and the F₀ edge (which need F or another Krylov run) are NaN there
    (`NOT_ON_THE_STREAMED_PATH`): both paths return the same keys.

    `width` is the number of neurons (`N=` its deprecated name); `step_kwargs` (`scheme`,
    `output_scale`, `eta`, `remove_low_order`) go to `one_step`.
    """
    N = _check_width("one_step_spikes", width, N)
    act = _act.get(activation)
    n = _checks.check_positive_int("n", n)
    n_tilde = _checks.check_positive_int("n_tilde", n_tilde)
    spikes = _check_spike_args(degree, k, margin)
    k_step, k_feat, k_test = jax.random.split(key, 3)
    res = one_step(
        k_step, dist, n=n, width=N, activation=act, alpha=alpha, c=c, tile=tile, **step_kwargs
    )
    info = {
        "eta": res.eta,
        "zeta_norm": jnp.linalg.norm(res.zeta),
        "cos_zeta_beta": jnp.abs(res.zeta @ _direction(dist)) / jnp.linalg.norm(res.zeta),
    }
    if tile is not None:
        return _streamed_spikes(k_feat, dist, res, act, n_tilde, tile, iters, spikes) | info
    n_test = _checks.check_positive_int("n_test", n_test)
    return _dense_spikes(k_feat, k_test, dist, res, act, n_tilde, n_test, lambdas, spikes) | info


def _check_spike_args(degree, k, margin) -> dict:
    """`count_spikes`' arguments, checked."""
    degree = _checks.check_positive_int("degree", degree)
    k = _checks.check_positive_int("k", k)
    if not 1.0 <= _checks.check_nonneg_float("margin", margin):
        raise InputError(f"margin must be >= 1 (outliers lie above margin × edge), got {margin}")
    return dict(degree=degree, k=k, margin=margin)


# outputs the matrix-free path (`tile=`) has no value for: NaN there, on purpose. An experiment
# that runs that path declares them `not_applicable`, so NaN keeps meaning "diverged" (DESIGN §8)
NOT_ON_THE_STREAMED_PATH = ("f0_edge", "test_mse_w1", "test_mse_w0")


def _streamed_spikes(key, dist, res, act, n_tilde, tile, iters, spikes) -> dict[str, Array]:
    """Spike statistics of F₁ on ñ rows drawn tile by tile (Krylov, `iters` blocks)."""
    k_rows, k_spec = jax.random.split(key)
    F1 = LazyFeatures(SampledRows(dist, n_tilde, key=k_rows, tile=tile), res.W1, act)
    stats: dict[str, Array] = count_spikes(
        F1, direction=res.zeta, key=k_spec, iters=iters, **spikes
    )
    nan = jnp.full((), jnp.nan, res.W1.dtype)
    return stats | dict.fromkeys(NOT_ON_THE_STREAMED_PATH, nan)


def _dense_spikes(k_feat, k_test, dist, res, act, n_tilde, n_test, lambdas, spikes):
    """Spike statistics of the dense F₁, the F₀ edge, and the ridge test errors of W₀ and W₁
    features over `lambdas` (default 10⁻⁷..1) on `n_test` fresh points."""
    Xt, yt = dist.sample(k_feat, n_tilde)
    Xs, ys = dist.sample(k_test, n_test)
    zeros = jnp.zeros(res.W1.shape[0], Xt.dtype)
    feats = lambda W, X: TwoLayer(W, zeros, res.a, act).features(X)  # noqa: E731
    F1, F0 = feats(res.W1, Xt), feats(res.W0, Xt)
    degree = spikes["degree"]
    stats = count_spikes(
        F1, hermite_features(Xt, res.zeta, degree), k=spikes["k"], margin=spikes["margin"]
    )
    lambdas = jnp.logspace(-7, 0, 15) if lambdas is None else jnp.asarray(lambdas)
    r1 = ridge_path(F1, yt, lambdas, feats(res.W1, Xs), ys)
    r0 = ridge_path(F0, yt, lambdas, feats(res.W0, Xs), ys)
    return stats | {
        # top singular value of F₀c, from the ridge fit's eigendecomposition of F₀cᵀF₀c/ñ
        "f0_edge": jnp.sqrt(n_tilde * jnp.maximum(r0["gram_eigenvalues"][-1], 0.0)),
        "test_mse_w1": jnp.min(r1["test_mse"]),
        "test_mse_w0": jnp.min(r0["test_mse"]),
    }


def _direction(dist):
    """β for single-index data; NaN (no single direction) otherwise, so cos(ζ, β) reads NaN."""
    return dist.beta if isinstance(dist, SingleIndex) else jnp.full(dist.dim, jnp.nan)
