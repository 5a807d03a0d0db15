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
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import (
    _checks,
    _sized,
    _vocabulary,
    activations as _act,
    labels as _labels,
    protocol as _protocol,
)
from .._checks import InputError, InputTypeError
from .._quadrature import hermite_polynomials
from .._sized import Capacity
from ..data import Distribution, MultiIndex, SingleIndex
from ..nets import TwoLayer, unit_rows
from ..ridge import RIDGE_LOSSES, ridge_fit, ridge_path
from ..rows import ArrayRows, Rows, SampledRows, fold_rows
from ..spectrum import (
    DenseFeatures,
    LazyFeatures,
    centred_gram_eigh,
    count_spikes,
    hermite_features,
)

__all__ = ["OneStepResult", "init_weights", "one_step", "one_step_spikes"]


class OneStepResult(eqx.Module):
    """W₀, W₁ (width, dim); a (width,); ζ = Xᵀr/n (dim,), whose direction ζ̂ carries the spikes;
    η; scale; with `return_data=True` the step's samples X (n, dim) and raw labels y (n,)."""

    W0: Float[Array, "width dim"]
    W1: Float[Array, "width dim"]
    a: Float[Array, " width"]
    zeta: Float[Array, " dim"]
    eta: Float[Array, ""]
    scale: Float[Array, ""]
    X: Float[Array, "n dim"] | None = None
    y: Float[Array, " n"] | None = None


_SCALES = {  # output scale of a width-N network (the arithmetic of 0.1, so draws are unchanged)
    "1": lambda N: 1.0,
    "1/sqrt(width)": lambda N: 1.0 / np.sqrt(N),
    "1/width": lambda N: 1.0 / N,
}


def _check_width(where, width, N, stacklevel=5, capacity=None):
    """(`width` (or its deprecated name `N`), its capacity): a positive int and itself, or
    with a `capacity` a possibly traced live width below it; the error names the one given.
    `stacklevel` points the deprecation warning at the user's call (5: called from the public
    function itself)."""
    name, width = _vocabulary.renamed(where, "width", width, "N", N, stacklevel=stacklevel)
    if width is None:
        raise InputError(f"{where}: width= (the number of neurons) is required")
    return _sized.check_size(name, width, capacity)


def _check_scheme(where, scheme, init, stacklevel=5):
    """`scheme` (or its deprecated name `init`), one of "sphere" (default) and "gaussian"."""
    name, scheme = _vocabulary.renamed(where, "scheme", scheme, "init", init, stacklevel=stacklevel)
    scheme = "sphere" if scheme is None else scheme
    if scheme not in ("sphere", "gaussian"):
        raise InputError(f"{name} must be 'sphere' or 'gaussian', got {scheme!r}")
    return scheme


_check_alpha = _protocol.check_alpha


def _check_positive_scalar(name, x):
    _checks.check_in_range(name, x, 0.0, closed=False)


def _jitted_entry(fn, protocol_keywords=_protocol.KEYWORDS):
    """`fn` behind a module-level `eqx.filter_jit`, so that a second eager call with the same
    shapes and static configuration compiles nothing (DESIGN §4: notebook calls). Arrays are
    traced and everything else is static, so the dynamic scalars (α, c, η, one λ) given as
    Python numbers become arrays first (a new value must not be a new program). The 0.1
    spellings are resolved here, outside the trace, so their warnings point at the caller.
    A `protocol=` (`jaxfeat.protocol.OneStepProtocol`) becomes the keywords it holds that `fn`
    takes (`protocol_keywords`), under those given explicitly."""
    jitted = eqx.filter_jit(fn)

    @functools.wraps(fn)
    def entry(key, dist, **kw):
        where = fn.__name__.lstrip("_")
        protocol = kw.pop("protocol", None)
        for old, new in (("N", "width"), ("init", "scheme")):
            if kw.get(old) is not None:
                name, kw[new] = _vocabulary.renamed(where, new, kw.get(new), old, kw.pop(old))
                if new == "width":  # checked here, so an error names it as typed
                    cap = getattr(kw.get("capacity"), "width", None)
                    _sized.check_size(name, kw[new], cap)
        if kw.get("remove_low_order"):
            kw["labels"] = _check_labels(kw.get("labels"), kw.pop("remove_low_order"), None)
        if protocol is not None:  # under the keywords given, old spellings included
            kw = _protocol_keywords(where, protocol, protocol_keywords, kw) | kw
        if "alpha" in kw:  # values: inside the trace they are arrays, unchecked
            _check_alpha(kw["alpha"])
        for name in ("c", "eta"):
            if kw.get(name) is not None:
                _check_positive_scalar(name, kw[name])
        if kw.get("lambdas") is not None:
            _check_lambdas(kw["lambdas"])
        for name in ("alpha", "c", "eta", "lambdas"):
            if isinstance(kw.get(name), (int, float)) and not isinstance(kw[name], bool):
                kw[name] = jnp.asarray(kw[name], jnp.zeros(()).dtype)
        return jitted(key, dist, **kw)

    return entry


def _protocol_keywords(where, protocol, accepted, given) -> dict:
    """The keywords of `protocol` that `where` takes; not W₀'s scheme when `W0=` is given (W₀
    is then given, not drawn; `init_seed` and `a_law` still draw `a` unless it is given)."""
    if not isinstance(protocol, _protocol.OneStepProtocol):
        raise InputTypeError(
            f"{where}: protocol must be a jaxfeat.protocol.OneStepProtocol, got {protocol!r}"
        )
    skip = ("scheme",) if given.get("W0") is not None else ()
    return {k: v for k, v in protocol.keywords().items() if k in accepted and k not in skip}


# long: one signature line per protocol knob (each checked in a helper)
def _step_once(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    n: int | Array | None = None,
    width: int | Array | None = None,
    activation: str | _act.Activation = "shifted_relu",
    alpha=0.3,
    c=1.0,
    eta=None,
    scheme: str | None = None,
    output_scale: str = "1",
    labels: str | Callable | None = None,
    data: tuple[ArrayLike, ArrayLike] | None = None,
    W0: ArrayLike | None = None,
    a: ArrayLike | None = None,
    a_law: str = "gaussian",
    return_data: bool = False,
    tile: int | None = None,
    remove_low_order: bool = False,
    capacity: Capacity | None = None,
    init_seed: int | None = None,
    N: int | None = None,
    init: str | None = None,
) -> OneStepResult:
    """One gradient step of the first layer on n samples of `dist` (one seed).

    **Arguments:** `n` step samples, `width` (Moniri et al.'s N) neurons (static ints); `alpha`
    ∈ [0, ½] (½ is Dandi et al.'s giant step; `jaxfeat.theory`'s ℓ(α) holds for α < ½),
    `c` (η = c·n^α) or `eta` directly, all dynamic scalars, so the function vmaps over them
    without recompiling; `scheme` `"sphere"` (default) | `"gaussian"` for W₀ (rows uniform on the
    unit sphere or N(0, I/dim), `jaxfeat.nets.unit_rows`); `output_scale` `"1"` |
    `"1/sqrt(width)"` | `"1/width"`.

    The protocol's pieces, each replaceable: `W0=` (width, dim) and `a=` (width,) fix the
    initialisation (otherwise drawn from `key`, or with `init_seed` (an int) from
    `jax.random.key(init_seed)`: the same W₀ and a for every seed, as `init_weights` draws
    them without `tile`; `a_law` `"gaussian"` a ~ N(0, I/width) or `"sign"` a ~ Unif{±1/√width});
    `data=(X, y)` gives the step's samples (n = len(X); otherwise n fresh samples of `dist`),
    and `return_data=True` returns them in the result's `X`, `y`;
    `labels` pre-processes the step's labels (`jaxfeat.labels`: None, `"moments"` (Dandi et
    al. 2023's code: y − ȳ − X·Xᵀy/n), `"centred"` (y − ȳ − X·Xᵀ(y − ȳ)/n) or a callable
    (X, y) -> y′). `remove_low_order=True` is the deprecated spelling of `labels="centred"`.
    `tile` streams the step: the n samples are drawn `tile` rows at a time
    (`jaxfeat.rows.SampledRows`) and ∇L and ζ are accumulated over the tiles, so memory is
    O(N·d + tile·(N + d)) whatever n is (the samples then differ from `tile=None`'s draw).
    `N=` and `init=` are the deprecated 0.1 names of `width=` and `scheme=`.

    **A protocol value**: `protocol=jf.protocol.OneStepProtocol(…)` (or a published one,
    `jf.protocol.DANDI`) passes the activation, the initialisation and the step whole; keywords
    given beside it override its fields (`protocol=MONIRI, alpha=0.4`).

    **Dynamic sizes** (DESIGN §4): with `capacity=jf.Capacity(n=…, width=…)`, `n` (and
    `width`) may be traced values up to those static capacities, and a sweep over them
    compiles once. The step then runs on capacity rows and neurons of which the first n and
    width are live (the same draws as the exact sizes, `jaxfeat._sized`); padding contributes
    nothing, and W₀, W₁, a hold zeros in their padding rows. A `dist` with `live_dim` pads the
    dimension the same way. Not with `tile` or `data`.

    **Returns:** a `OneStepResult`.
    """
    _check_step_args(key, dist, alpha, c, eta)
    cap = _check_capacity(capacity, tile, data)
    labels = _check_labels(labels, remove_low_order, tile or cap.n)
    tile = None if tile is None else _checks.check_positive_int("tile", tile)
    n, data = _check_data(data, n, dist.dim, tile, return_data, cap.n)
    init_key = key if init_seed is None else _init_key(init_seed)
    W0, a, live_width = _initial_weights(
        init_key, dist, width, N, scheme, init, W0, a, a_law, tile, cap.width
    )
    output_scale = _vocabulary.output_scale("one_step", output_scale)
    act = _act.get(activation)
    dtype = W0.dtype
    rows = _step_rows(jax.random.split(key, 3)[0], dist, n, tile, data, cap.n)
    scale = _output_scale(output_scale, live_width, dtype)
    eta = c * jnp.asarray(n, dtype) ** alpha if eta is None else jnp.asarray(eta, dtype)
    adjust = _labels.label_adjuster(rows, labels)
    # centred homogeneous neurons (sigma_ge2) depend on |w_i| too: ∂L/∂w_i gets ∂L/∂|w_i|·w_i/|w_i|
    width_cap = W0.shape[0]
    zeros = jnp.zeros(width_cap, dtype)
    norms = TwoLayer(W0, zeros, a, act).norms() if act.removed else jnp.ones(width_cap, dtype)
    tile_terms = functools.partial(_tile_terms, W0, a, norms, act, scale, adjust, n)
    block = dist.dim if tile is None else min(dist.dim, max(tile, 1024))  # DᵀX columns at a time
    W1, zeta = _gradient_step(rows, W0, norms, tile_terms, eta / scale, act.removed, block)
    X, y = (rows.X, rows.y) if return_data else (None, None)  # pyright: ignore[reportAttributeAccessIssue]
    return OneStepResult(W0, W1, a, zeta, jnp.asarray(eta, dtype), scale, X, y)


def _one_step(key: PRNGKeyArray, dist: Distribution, *, steps: int = 1, **kw) -> OneStepResult:
    steps = _checks.check_positive_int("steps", steps)
    first = _step_once(key, dist, **kw)
    if steps == 1:
        return first
    if kw.get("data") is not None:
        raise InputError("steps > 1 draws fresh samples at every step: not with data=")
    later = {k: v for k, v in kw.items() if k not in ("W0", "a", "scheme", "init", "init_seed")}

    def body(carry, s):  # step s on fresh samples from fold_in(key, s), the same η
        r = _step_once(jax.random.fold_in(key, s), dist, **later, W0=carry[0], a=first.a)
        return (r.W1, r.zeta, r.X, r.y), None

    init = (first.W1, first.zeta, first.X, first.y)
    (W, zeta, X, y), _ = jax.lax.scan(body, init, jnp.arange(1, steps))
    return OneStepResult(first.W0, W, first.a, zeta, first.eta, first.scale, X, y)


_one_step.__doc__ = (_step_once.__doc__ or "").replace(
    "    **Returns:** a `OneStepResult`.",
    """    **t giant steps** (MATH §4.5): `steps=t` (static) chains t steps with the same η, step s
    on fresh samples: exactly `res = one_step(key, …)`, then for s = 1..t−1
    `res = one_step(fold_in(key, s), …, W0=res.W1, a=res.a)`, except that the result's `W0`
    is the initial W₀ (the random-features baseline); `zeta` (and with `return_data` the
    samples) are the last step's. Compiles once whatever t is (a `lax.scan` over steps).

    **Returns:** a `OneStepResult`.""",
)

one_step = _jitted_entry(_one_step, _protocol.STEP_KEYWORDS)


_A_LAWS = ("gaussian", "sign")


def _init_key(init_seed) -> PRNGKeyArray:
    """The key of a fixed initialisation (`init_weights(jax.random.key(init_seed), …)`)."""
    return jax.random.key(_checks.check_nonneg_int("init_seed", init_seed))


def _check_capacity(capacity, tile, data) -> Capacity:
    """The capacities of the dynamic sizes (an empty `Capacity` when none is given)."""
    if capacity is None:
        return Capacity()
    if not isinstance(capacity, Capacity):
        raise InputTypeError(f"capacity must be a jaxfeat.Capacity, got {capacity!r}")
    if capacity.n is not None and (tile is not None or data is not None):
        raise InputError("capacity.n (a dynamic sample size) is not for tile= or data=")
    return capacity


def _output_scale(output_scale, N, dtype):
    """The network's output scale for N neurons (N may be traced)."""
    if _sized.is_static(N):
        return jnp.asarray(_SCALES[output_scale](N), dtype)
    dtype = dtype or jnp.zeros(()).dtype
    Nf = jnp.asarray(N, dtype)
    return {"1": jnp.ones((), dtype), "1/sqrt(width)": 1.0 / jnp.sqrt(Nf), "1/width": 1.0 / Nf}[
        output_scale
    ]


def _check_labels(labels, remove_low_order, streamed):
    """The label rule; the deprecated `remove_low_order=True` is `labels="centred"`."""
    if remove_low_order:
        if labels is not None:
            raise InputError("one_step: give labels= only (remove_low_order= is its old name)")
        _vocabulary.deprecated("one_step", "remove_low_order=True", "labels='centred'", 4)
        labels = "centred"
    return _labels.check_rule(labels, streamed=streamed is not None)


def _check_data(data, n, dim, tile, return_data, capacity=None):
    """(n, (X, y) or None): the step's own samples when given (n = len(X)); n may be traced
    below a `capacity`."""
    if return_data and tile is not None:
        raise InputError("return_data=True keeps all n samples; not with tile= (streamed)")
    if data is None:
        if n is None:
            raise InputError("one_step: n= (the number of step samples) is required")
        return _sized.check_size("n", n, capacity)[0], None
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise InputTypeError("data must be a pair (X, y) of arrays of shape (n, dim) and (n,)")
    X, y = data
    m = _checks.check_ndim("data[0] (X)", X, 2, f"(n, {dim})")[0]
    _checks.check_shape("data[0] (X)", X, (m, dim), "(n, dim)")
    _checks.check_shape("data[1] (y)", y, (m,), "(n,)")
    if n is not None and n != m:
        raise InputError(f"n={n} but data holds {m} samples: give one of them")
    dtype = jnp.zeros(()).dtype
    return m, (jnp.asarray(X, dtype), jnp.asarray(y, dtype))


def _initial_weights(
    key, dist, width, N, scheme, init, W0, a, a_law, tile, capacity=None
) -> tuple[Array, Array, int | Array]:
    """(W₀, a, live width): given, or drawn from the second and third of `key`'s three parts;
    with a width `capacity`, drawn at the capacity with the first `width` rows live (and the
    dimension's live part, `dist.live_dim`); given ones then hold `capacity` rows, zero
    beyond the live width."""
    d = dist.dim
    if W0 is not None:
        if scheme is not None or init is not None:
            raise InputError("one_step: give W0= or scheme=, not both")
        n_rows = _checks.check_ndim("W0", W0, 2, f"(width, {d})")[0]
        width = n_rows if width is None and N is None else width
    N, cap = _check_width("one_step", width, N, stacklevel=6, capacity=capacity)
    scheme = _check_scheme("one_step", scheme, init, stacklevel=6)
    live_dim = getattr(dist, "live_dim", None)
    live = (N, d if live_dim is None else live_dim)
    W0_drawn, a_drawn = _draw_init(key, cap, d, scheme, a_law, tile, W0 is None, a is None, live)
    dtype = jnp.zeros(()).dtype
    W0 = W0_drawn if W0 is None else jnp.asarray(W0, dtype)
    a = a_drawn if a is None else jnp.asarray(a, dtype)
    _checks.check_shape("W0", W0, (cap, d), "(width, dim)")
    _checks.check_shape("a", a, (cap,), "(width,)")
    assert W0 is not None and a is not None
    return W0, a, N


def init_weights(
    key: PRNGKeyArray, *, width: int, dim: int, scheme: str = "sphere", a_law: str = "gaussian"
) -> tuple[Float[Array, "width dim"], Float[Array, " width"]]:
    """(W₀, a) as `one_step(key, …)` draws them: W₀ by `scheme` (`jaxfeat.nets.unit_rows`), a by
    `a_law` (`"gaussian"`: N(0, I/width); `"sign"`: Unif{±1/√width}). Pass them to `one_step`'s
    `W0=`, `a=` to hold the initialisation fixed while the data are re-sampled."""
    width = _checks.check_positive_int("width", width)
    dim = _checks.check_positive_int("dim", dim)
    scheme = _check_scheme("init_weights", scheme, None)
    W0, a = _draw_init(key, width, dim, scheme, a_law, None)
    assert W0 is not None and a is not None
    return W0, a


def _draw_init(key, N, d, scheme, a_law, tile, draw_W=True, draw_a=True, live=None):
    """W₀ and a (None where not `draw_…`) from the second and third of `key`'s three parts
    (the first draws the data); `live` = (live width, live dim) below (N, d) (`_sized`)."""
    _checks.check_choice("a_law", a_law, _A_LAWS)
    _, k_w, k_a = jax.random.split(key, 3)
    dtype = jnp.zeros(()).dtype
    live = (N, d) if live is None else live
    W0 = unit_rows(k_w, N, d, scheme, dtype, tile, live) if draw_W else None
    if not draw_a:
        return W0, None
    a = (jax.random.normal if a_law == "gaussian" else jax.random.rademacher)(k_a, (N,))
    if _sized.is_static(live[0]) and live[0] == N:
        return W0, a.astype(dtype) / np.sqrt(N)
    a = a.astype(dtype) / jnp.sqrt(jnp.asarray(live[0], dtype))
    return W0, _sized.where(_sized.live_mask(N, live[0]), a, 0.0)


def _step_rows(key, dist, n, tile, data=None, capacity=None):
    """The step's n samples: given, drawn at once, or (`tile`) tile by tile and never stored;
    with a `capacity`, drawn at the capacity with the first n rows live."""
    if data is not None:
        return ArrayRows(*data, tile=n if tile is None else tile)
    if tile is None:
        if capacity is not None:
            return ArrayRows(*dist.sample(key, n, capacity=capacity), tile=capacity, live=n)
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


# long: one signature line per protocol knob (each checked in a helper)
def _one_step_spikes(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    n: int | Array,
    n_tilde: int | Array | None = None,
    width: int | Array | None = None,
    n_test: int = 2000,
    activation="shifted_relu",
    alpha=0.3,
    c=1.0,
    k: int = 10,
    degree: int = 8,
    margin: float = 1.02,
    lambdas=None,
    labels: str | Callable | None = None,
    readout: str = "fresh",
    ridge_loss: str = "mean",
    intercept: bool = True,
    ridge_scale: str = "1",
    test_tile: int | None = None,
    init_readout: bool = True,
    tile: int | None = None,
    iters: int = 8,
    capacity: Capacity | None = None,
    N: int | None = None,
    **step_kwargs,
) -> dict[str, Array]:
    """The whole per-seed experiment: step, a readout sample (X̃, ỹ) for the features and the
    ridge, spike statistics of F₁ = σ(X̃W₁ᵀ) against the deflated edge (MATH §4.3), the F₀ edge,
    and ridge test errors for W₀ and W₁ features on `n_test` fresh points. Returns a dict of
    small arrays, ready to vmap over seeds, α and c.

    The protocol's knobs: `readout` `"fresh"` (X̃ an independent sample of size ñ = `n_tilde`,
    Moniri et al., Ba et al.) or `"step"` (the step's own n samples, Dandi et al.'s code);
    `labels` (`jaxfeat.labels`) pre-processes the step's labels, and those of the readout and
    the test set, each rule fitted on its own sample as Dandi et al.'s code does (the test
    labels' own fit adds about (d/n_test)·E[y²] of estimation noise to the test error: small at
    Dandi et al.'s n_test = 10⁵, d = 512); `lambdas` a
    grid (default 10⁻⁷..1, one eigendecomposition; the test error reported at the λ chosen by
    leave-one-out on the readout sample, the best over the grid as `…_oracle`) or one λ (a
    0-d value: one solve); `ridge_loss` `"mean"` | `"sum"`, `intercept`, `ridge_scale` (the
    features' scale s in ŷ = s·F a + b, the output-scale strings) as in `jaxfeat.ridge`;
    `test_tile` forms the test features `test_tile` rows at a time (memory n_test·d for the
    test points, which do not depend on the tiling, plus test_tile·N); `init_readout=False`
    skips the random-features baseline on W₀ (its ridge, test error and the F₀ edge: about half
    the readout's cost at a large test set), returning NaN for `NO_INIT_READOUT` outputs.

    With `tile`, the scale path: the step is streamed (`one_step(tile=…)`), X̃ is drawn tile
    by tile and never stored, and the spike statistics come from the matrix-free Krylov path
    (`iters` blocks) on `LazyFeatures`, so memory is O(N·d + tile·(N + d)) whatever n and ñ
    are. The ridge readout and the F₀ edge (which need F or another Krylov run) are NaN there
    (`NOT_ON_THE_STREAMED_PATH`): both paths return the same keys.

    `width` is the number of neurons (`N=` its deprecated name); `step_kwargs` (`scheme`,
    `output_scale`, `eta`, `W0`, `a`, `a_law`, `init_seed`, `steps`) go to `one_step`.

    **A protocol value**: `protocol=jf.protocol.OneStepProtocol(…)` passes every knob above
    whole (the activation, `init`, `step`, `readout`, `spikes`; the published ones are
    `jf.protocol.MONIRI`, `DANDI`, `BA`); keywords given beside it override its fields, so a
    sweep reads `one_step_spikes(key, dist, n=…, n_tilde=…, width=…, protocol=P, alpha=a)`.

    **Dynamic sizes**: with `capacity=jf.Capacity(n=…, n_tilde=…, width=…)` those sizes may be
    traced values up to the static capacities (`one_step`'s docstring): a sweep over n, ñ and
    the width compiles one program per capacity, and every output equals the exact-size run's
    to rounding (the same draws; spike counts identical). Dense path only.
    """
    cap = _check_capacity(capacity, tile, None)
    live_width, _ = _check_width("one_step_spikes", width, N, capacity=cap.width)
    act = _act.get(activation)
    n, _ = _sized.check_size("n", n, cap.n)
    n_tilde, tilde_cap = _check_readout(readout, n, n_tilde, tile, cap)
    spikes = _check_spike_args(degree, k, margin)
    ridge = _check_ridge(lambdas, ridge_loss, intercept, ridge_scale, n_test, test_tile, live_width)
    padded = cap != Capacity()  # a callable label rule sees whole sets and knows no padding
    _labels.check_rule(labels, streamed=test_tile is not None or padded)
    _checks.check_bool("init_readout", init_readout)
    ridge["init_readout"] = init_readout
    k_step, k_feat, k_test = jax.random.split(key, 3)
    step_cap = Capacity(n=cap.n, width=cap.width) if padded else None
    res = one_step(
        k_step, dist, n=n, width=live_width, activation=act, alpha=alpha, c=c, tile=tile,
        labels=labels, return_data=readout == "step", capacity=step_cap, **step_kwargs,
    )  # fmt: skip
    info = {
        "eta": res.eta,
        "zeta_norm": jnp.linalg.norm(res.zeta),
        "cos_zeta_beta": _cos_to_index_space(res.zeta, dist),
    }
    if tile is not None:
        return _streamed_spikes(k_feat, dist, res, act, n_tilde, tile, iters, spikes) | info
    if readout == "step":
        assert res.X is not None and res.y is not None
        train = res.X, res.y
    else:
        train = dist.sample(k_feat, n_tilde, capacity=tilde_cap)
    test = _test_rows(dist, k_test, ridge)
    live = (n_tilde if padded else None, live_width if cap.width is not None else None)
    direction = _index_direction(dist)
    return _dense_spikes(train, test, res, act, labels, ridge, spikes, live, direction) | info


one_step_spikes = _jitted_entry(_one_step_spikes)


_READOUTS = ("fresh", "step")


def _check_readout(readout, n, n_tilde, tile, cap: Capacity):
    """(ñ, its capacity or None): `n_tilde` for a fresh readout sample, n for the step's own."""
    _checks.check_choice("readout", readout, _READOUTS)
    if readout == "fresh":
        if n_tilde is None:
            raise InputError("n_tilde= (the readout sample size) is required with readout='fresh'")
        return _sized.check_size("n_tilde", n_tilde, cap.n_tilde)[0], cap.n_tilde
    if tile is not None:
        raise InputError("readout='step' reuses the step's samples; not with tile= (streamed)")
    if cap.n_tilde is not None:
        raise InputError("readout='step' reuses the step's samples: give capacity.n, not n_tilde")
    if n_tilde is not None and not (_sized.is_static(n_tilde) and n_tilde == n):
        raise InputError(f"readout='step' uses the step's n={n} samples; got n_tilde={n_tilde}")
    return n, cap.n


def _check_ridge(lambdas, loss, intercept, scale, n_test, test_tile, N) -> dict:
    """The readout's conventions, checked: λ grid or one λ, loss, intercept, feature scale."""
    lambdas = jnp.logspace(-7, 0, 15) if lambdas is None else _check_lambdas(lambdas)
    _checks.check_choice("ridge_loss", loss, RIDGE_LOSSES)
    _checks.check_bool("intercept", intercept)
    scale = _vocabulary.output_scale("one_step_spikes", scale)
    n_test = _checks.check_positive_int("n_test", n_test)
    test_tile = None if test_tile is None else _checks.check_positive_int("test_tile", test_tile)
    feature_scale = _SCALES[scale](N) if _sized.is_static(N) else _output_scale(scale, N, None)
    return dict(
        lambdas=lambdas, loss=loss, intercept=intercept, scale=feature_scale,
        unit_scale=scale == "1", n_test=n_test, test_tile=test_tile,
    )  # fmt: skip


def _check_lambdas(lambdas) -> Array:
    """`lambdas` as an array: one λ or a 1-D grid, all > 0 (when concrete)."""
    try:
        lambdas = jnp.asarray(lambdas)
    except TypeError:
        raise InputTypeError(f"lambdas must be numbers, got {lambdas!r}") from None
    if lambdas.ndim > 1 or lambdas.size == 0:
        raise InputError(f"lambdas must be one λ or a 1-D grid, got shape {lambdas.shape}")
    if _checks.is_concrete(lambdas) and not np.all(np.asarray(lambdas) > 0):
        raise InputError(f"lambdas must all be > 0, got {np.asarray(lambdas)}")
    return lambdas


def _check_spike_args(degree, k, margin) -> dict:
    """`count_spikes`' arguments, checked."""
    degree = _checks.check_positive_int("degree", degree)
    k = _checks.check_positive_int("k", k)
    if not 1.0 <= _checks.check_nonneg_float("margin", margin):
        raise InputError(f"margin must be >= 1 (outliers lie above margin × edge), got {margin}")
    return dict(degree=degree, k=k, margin=margin)


# outputs the matrix-free path (`tile=`) has no value for: NaN there, on purpose. An experiment
# that runs that path declares them `not_applicable`, so NaN keeps meaning "diverged" (DESIGN §8)
NOT_ON_THE_STREAMED_PATH = (
    "f0_edge", "test_mse_w1", "test_mse_w0", "test_mse_w1_oracle", "test_mse_w0_oracle",
    "lambda_w1", "hermite_projection", "predicted_spikes",
)  # fmt: skip
# and those `init_readout=False` skips (the W₀ random-features baseline)
NO_INIT_READOUT = ("f0_edge", "test_mse_w0", "test_mse_w0_oracle", "predicted_spikes")
#: ĉ_k = E[f̂(x) h_k(u·x)] of W₁'s readout for k = 0..PROJECTION_DEGREE (`hermite_projection`)
PROJECTION_DEGREE = 4


def _streamed_spikes(key, dist, res, act, n_tilde, tile, iters, spikes) -> dict[str, Array]:
    """Spike statistics of F₁ on ñ rows drawn tile by tile (Krylov, `iters` blocks)."""
    k_rows, k_spec = jax.random.split(key)
    F1 = LazyFeatures(SampledRows(dist, n_tilde, key=k_rows, tile=tile), res.W1, act)
    stats: dict[str, Array] = count_spikes(
        F1, direction=res.zeta, key=k_spec, iters=iters, **spikes
    )
    nan = jnp.full((), jnp.nan, res.W1.dtype)
    out = stats | dict.fromkeys(NOT_ON_THE_STREAMED_PATH, nan)
    return out | {"hermite_projection": jnp.full(PROJECTION_DEGREE + 1, jnp.nan, nan.dtype)}


def _test_rows(dist, key, ridge) -> Rows:
    """The test set, `n_test` points drawn at once (the same points whatever `test_tile` is),
    visited `test_tile` rows at a time so that only one tile of features is ever formed."""
    X, y = dist.sample(key, ridge["n_test"])
    return ArrayRows(X, y, tile=ridge["test_tile"] or ridge["n_test"])


# long: one statistic after another, each a few lines
def _dense_spikes(
    train, test: Rows, res, act, labels, ridge, spikes, live, direction=None
) -> dict[str, Array]:
    """Spike statistics of the dense F₁ on the readout sample `train` = (X̃, ỹ), the F₀ edge,
    and the ridge test errors of W₀ and W₁ features on the `test` rows. `live` = (ñ, width)
    live below the arrays' capacities (None: all of it; `jaxfeat._sized`); `direction` the
    index direction of the Hermite projections (None: NaN)."""
    Xt, yt = train
    n_live, width_live = live
    yt = _labels.preprocess_labels(Xt, yt, labels, n=n_live)
    width_cap = res.W1.shape[0]
    zeros = jnp.zeros(width_cap, Xt.dtype)
    neurons = None if width_live is None else _sized.live_mask(width_cap, width_live)

    def feats(W, X):  # σ(XWᵀ); padding neurons' columns zero (σ(0) need not be)
        F = TwoLayer(W, zeros, res.a, act).features(X)
        return F if neurons is None else _sized.where(neurons[None, :], F, 0.0)

    F1 = DenseFeatures(feats(res.W1, Xt), n=n_live)
    H = hermite_features(Xt, res.zeta, spikes["degree"])
    # one eigendecomposition of F₁'s centred Gram matrix for the spike count and the ridge path
    # when the path's is the same matrix (a λ grid, an intercept, unit scale; the dual form,
    # N > ñ, decomposes F₁F₁ᵀ instead and leaves it to the spike count)
    shared = ridge["lambdas"].ndim == 1 and ridge["intercept"] and ridge["unit_scale"]
    eig = centred_gram_eigh(F1) if shared else None
    stats = count_spikes(F1, H, k=spikes["k"], margin=spikes["margin"], gram_eigh=eig)
    weights = (res.W1, res.W0) if ridge["init_readout"] else (res.W1,)
    Fs = [F1.F] + [feats(W, Xt) for W in weights[1:]]
    fits = [_readout_fit(F, yt, ridge, n_live, e) for F, e in zip(Fs, (eig, None))]
    adjust = _labels.label_adjuster(test, labels)
    errors = _test_errors(test, adjust, feats, weights, fits, ridge, direction)
    if not ridge["init_readout"]:
        nan = jnp.full((), jnp.nan, F1.dtype)
        return stats | errors | dict.fromkeys(NO_INIT_READOUT, nan)
    f0_edge = _centred_top_singular_value(DenseFeatures(Fs[1], n=n_live), fits[1], ridge)
    theta = spike_part_singular_values(Xt, res, act, spikes["degree"], n_live)
    predicted = jnp.sum(theta > SEPARATION * f0_edge).astype(f0_edge.dtype)
    return stats | errors | {"f0_edge": f0_edge, "predicted_spikes": predicted}


#: a spike term separates from the bulk once its singular value exceeds this fraction of F₀'s
#: edge: calibrated on the `equivalence` scan in notebooks/data (ReLU, d = N = n/4): θ/edge ≈
#: 0.67-0.71 never separated (α = 0.3, k = 2), 0.83-1.21 did (α = 0.2, k = 1); MATH §4.3 step 5
#: says about 0.6
SEPARATION = 0.75


def spike_factors(X, res, act, degree: int, n=None, *, centre: bool = True):
    """The factors of the spike part S = Σ_{k≤degree} c_k h_k(Xζ̂)(δ^{∘k})ᵀ of F₁ − F₀
    (MATH §4.2; `jaxfeat.spectrum.spike_expansion`): (C, P) with S = C P, C (rows, K) the
    columns c_k h_k(Xζ̂) (column-centred over the live rows when `centre`; padding rows zero)
    and P (K, width) the rows δ^{∘k}. `n` live rows of X (None: all)."""
    u = res.zeta / jnp.linalg.norm(res.zeta)
    c = jnp.asarray(act.hermite_coefficients(degree, 1.0, "auto")[1:], X.dtype)
    h = hermite_polynomials(X @ u, degree)[:, 1:]
    live = None if n is None else _sized.live_mask(X.shape[0], n)
    if live is not None:
        h = _sized.where(live[:, None], h, 0.0)
    if centre:
        count = X.shape[0] if n is None else jnp.asarray(n, X.dtype)
        h = h - jnp.sum(h, 0)[None, :] / count
        if live is not None:
            h = _sized.where(live[:, None], h, 0.0)
    delta = (res.W1 - res.W0) @ u
    powers = delta[None, :] ** jnp.arange(1, degree + 1, dtype=X.dtype)[:, None]  # (K, width)
    return h * c[None, :], powers


def spike_part_singular_values(X, res, act, degree: int, n=None) -> Array:
    """The singular values (descending, `degree` of them) of the column-centred spike part
    S = C P (`spike_factors`), from K×K matrices: same-parity terms share most of their right
    vectors (corr(δ², δ⁴) ≈ 0.85), so S has fewer strong directions than terms, which the
    per-term strengths θ_k = ‖C_k‖‖P_k‖ miss. `n` live rows of X (None: all)."""
    C, powers = spike_factors(X, res, act, degree, n)
    # S = H D Δᵀ: SᵀS has the nonzero eigenvalues of A^{1/2} B A^{1/2}, A = D HᵀH D, B = ΔᵀΔ
    # (K × K each; `eigh` only: with a QR and an SVD here, two chunks of a scan running their
    # batched LAPACK kernels at once hung jaxlib 0.9.2's CPU runtime, all threads in futex
    # waits, as batched eigh does on 0.10-0.11.0 (README))
    a, U = jnp.linalg.eigh(C.T @ C)
    half = (U * jnp.sqrt(jnp.maximum(a, 0.0))[None, :]) @ U.T
    ev = jnp.linalg.eigvalsh(half @ (powers @ powers.T) @ half)
    return jnp.sqrt(jnp.maximum(ev[::-1], 0.0))  # (K,), descending


def _readout_fit(F, y, ridge, n=None, gram_eigh=None) -> dict:
    """The ridge readout on features F (its first n rows live): a path over a λ grid (from
    `gram_eigh` when given), or one solve for one λ."""
    conv = dict(intercept=ridge["intercept"], loss=ridge["loss"], feature_scale=ridge["scale"])
    if ridge["lambdas"].ndim == 0:
        return ridge_fit(F, y, ridge["lambdas"], n=n, **conv)
    return ridge_path(F, y, ridge["lambdas"], n=n, gram_eigh=gram_eigh, **conv)


def _test_errors(test: Rows, adjust, feats, weights, fits, ridge, direction) -> dict[str, Array]:
    """Test MSE of the readouts on W₁'s (and W₀'s) features, summed tile by tile over `test`:
    at the λ chosen by exact leave-one-out on the training sample (`ridge_path`'s `best_loo`;
    the one λ when one is given), and the smallest over the grid (`…_oracle`: λ chosen on the
    test set, optimistic). Also `lambda_w1`, W₁'s chosen λ, and `hermite_projection`, the
    projections ĉ_k = mean over the test set of f̂(x)h_k(u·x), k = 0..`PROJECTION_DEGREE`, of
    W₁'s readout at that λ on the unit index direction u (NaN without one)."""
    chosen = [fit.get("best_loo") for fit in fits]
    dtype = fits[0]["intercept"].dtype
    u = jnp.zeros(test.dim, dtype) if direction is None else jnp.asarray(direction, dtype)

    def tile_sums(X: Array, y: Array, valid: Array):
        y = adjust(X, y)
        h = hermite_polynomials(X @ u, PROJECTION_DEGREE) * valid[:, None]
        sq = []
        for W, fit in zip(weights, fits):
            pred: Array = (feats(W, X) * ridge["scale"]) @ fit["coef"].T
            if pred.ndim == 2:  # a λ grid: predictions (tile, L)
                pred = pred + fit["intercept"][None, :]
                r = pred - y[:, None]
            else:
                pred = pred + fit["intercept"]
                r = pred - y
            mask = valid if r.ndim == 1 else valid[:, None]
            sq.append(jnp.sum(r * r * mask, 0))  # padding rows are finite draws or zeros
            if len(sq) == 1:  # W₁'s readout, at its chosen λ
                p = pred if pred.ndim == 1 else pred[:, chosen[0]]
                proj = jnp.sum(p[:, None] * h, 0)
        return tuple(sq), proj

    init = tuple(jnp.zeros_like(fit["intercept"]) for fit in fits)
    sq, proj = fold_rows(test, tile_sums, (init, jnp.zeros(PROJECTION_DEGREE + 1, dtype)))
    out = {}
    for name, s, j in zip(("test_mse_w1", "test_mse_w0"), sq, chosen):
        out[name] = (s if j is None else s[j]) / test.n
        out[name + "_oracle"] = jnp.min(s) / test.n
    lambdas = ridge["lambdas"]
    out["lambda_w1"] = jnp.asarray(lambdas if chosen[0] is None else lambdas[chosen[0]], dtype)
    nan = jnp.full(PROJECTION_DEGREE + 1, jnp.nan, dtype)
    out["hermite_projection"] = nan if direction is None else proj / test.n
    return out


def _index_direction(dist):
    """The unit index direction of single-index data (β), the first of multi-index data; None
    for data with no index space."""
    if isinstance(dist, SingleIndex):
        v = jnp.asarray(dist.beta)
    elif isinstance(dist, MultiIndex):
        v = jnp.asarray(dist.B)[0]
    else:
        return None
    return v / jnp.linalg.norm(v)


def _centred_top_singular_value(F0: DenseFeatures, fit0, ridge):
    """Top singular value of the column-centred F₀: from the ridge path's eigendecomposition when
    it is of the centred, unscaled F₀ (the default conventions), else from its own."""
    n = F0.shape[0] if F0.live is None else F0.live
    if "gram_eigenvalues" in fit0 and ridge["intercept"] and ridge["unit_scale"]:
        return jnp.sqrt(n * jnp.maximum(fit0["gram_eigenvalues"][-1], 0.0))
    Fc = F0.centred(F0.column_mean())
    gram = Fc.T @ Fc if F0.shape[1] <= F0.shape[0] else Fc @ Fc.T
    return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram)[-1], 0.0))


def _cos_to_index_space(zeta, dist):
    """|P ζ|/|ζ| with P the projector on the index space: |cos(ζ, β)| for single-index data,
    the row space of B for multi-index data; NaN for data with no index space."""
    if isinstance(dist, SingleIndex):
        return jnp.abs(zeta @ dist.beta) / jnp.linalg.norm(zeta)
    if isinstance(dist, MultiIndex):
        Q = jnp.linalg.qr(dist.B.T)[0]  # (dim, k), orthonormal columns spanning B's rows
        return jnp.linalg.norm(Q.T @ zeta) / jnp.linalg.norm(zeta)
    return jnp.full((), jnp.nan, zeta.dtype)
