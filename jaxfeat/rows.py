"""Row sources that are visited in tiles, so no kernel ever holds an (n, d) or (n, N) matrix.

The matrix-free spectrum and the streamed one-step gradient (Moniri et al. at ñ = 10⁵,
d = N = 2.5·10⁴, where X̃ alone is 10 GB in float32) only ever need sums over rows,
Σ_j g(x_j, y_j). A `Rows` holds what it takes to produce row tile t on demand:

- `ArrayRows(X, y, tile=…)`: rows of a matrix held in memory (zero-padded to whole tiles);
- `SampledRows(dist, n, key=…, tile=…)`: tile t is `dist.sample(fold_in(key, t), tile)`, drawn
  again each time it is visited, so memory is one tile whatever n is; the same key gives the
  same rows on every pass.

`fold_rows(rows, fn, init)` is Σ_t fn(X_t, y_t, valid_t) by `lax.scan`; rows past n are padding
and `valid_t` is False there (`fn` must mask them).

`n` is the number of rows a source produces (a static shape). `ArrayRows(…, live=k)` marks only
the first k of them live (k may be traced: a sample size below a static capacity,
`jaxfeat._sized`); `count` is the live number, the divisor of every mean over the rows.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from . import _checks, _sized
from ._checks import InputError
from .data import Distribution

__all__ = ["Rows", "ArrayRows", "SampledRows", "fold_rows", "map_rows", "materialize"]


class Rows(eqx.Module):
    """n rows of dimension `dim`, produced `tile` at a time (`n_tiles` tiles, the last padded)."""

    n: int = eqx.field(static=True)
    tile: int = eqx.field(static=True)
    live: Array | None  # None: every row is live

    @property
    def count(self):
        """The number of live rows: `n`, or `live` when only the first `live` rows count."""
        return self.n if self.live is None else self.live

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Row dimension d."""

    @property
    def n_tiles(self) -> int:
        return -(-self.n // self.tile)

    def valid(self, t) -> Bool[Array, " tile"]:
        return t * self.tile + jnp.arange(self.tile) < self.count

    @abc.abstractmethod
    def tile_at(self, t) -> tuple[Float[Array, "tile dim"], Float[Array, " tile"]]:
        """Rows t·tile .. (t+1)·tile − 1 and their labels (padding rows are arbitrary)."""


class ArrayRows(Rows):
    """The rows of X (n, d), with labels y (n,) (zeros when not given), in tiles of `tile`;
    with `live=k` only the first k rows count (k may be traced, `jaxfeat._sized`)."""

    X: Float[Array, "n_pad dim"]
    y: Float[Array, " n_pad"]

    def __init__(self, X: ArrayLike, y: ArrayLike | None = None, *, tile: int = 2048, live=None):
        n, d = _checks.check_ndim("X", X, 2, "(n, d)")
        if n == 0:
            raise InputError("X must have at least one row")
        if y is not None:
            _checks.check_shape("y", y, (n,), f"(n,) = ({n},) like X")
        tile = min(_checks.check_positive_int("tile", tile), n)
        pad = -n % tile
        X = jnp.asarray(X)
        y = jnp.zeros(n, X.dtype) if y is None else jnp.asarray(y, X.dtype)
        self.X = jnp.concatenate([X, jnp.zeros((pad, d), X.dtype)]) if pad else X
        self.y = jnp.concatenate([y, jnp.zeros(pad, X.dtype)]) if pad else y
        self.n, self.tile = n, tile
        self.live = None if live is None else jnp.asarray(_sized.check_size("live", live, n)[0])

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    def tile_at(self, t):
        start = t * self.tile
        return (
            jax.lax.dynamic_slice_in_dim(self.X, start, self.tile),
            jax.lax.dynamic_slice_in_dim(self.y, start, self.tile),
        )


class SampledRows(Rows):
    """n i.i.d. rows of `dist`, tile t drawn as `dist.sample(fold_in(key, t), tile)`."""

    dist: Distribution
    key: PRNGKeyArray

    def __init__(self, dist: Distribution, n: int, *, key: PRNGKeyArray, tile: int = 2048):
        if not isinstance(dist, Distribution):
            raise InputError(f"dist must be a jaxfeat.data distribution, got {type(dist).__name__}")
        _checks.check_key(key)
        self.n = _checks.check_positive_int("n", n)
        self.tile = min(_checks.check_positive_int("tile", tile), self.n)
        self.dist, self.key, self.live = dist, key, None

    @property
    def dim(self) -> int:
        return self.dist.dim

    def tile_at(self, t):
        return self.dist.sample(jax.random.fold_in(self.key, t), self.tile)


def fold_rows(rows: Rows, fn, init):
    """Σ over tiles t of fn(X_t, y_t, valid_t), a pytree like `init`, by `lax.scan` (one tile
    in memory at a time)."""

    def body(acc, t):
        X, y = rows.tile_at(t)
        return jax.tree_util.tree_map(jnp.add, acc, fn(X, y, rows.valid(t))), None

    return jax.lax.scan(body, init, jnp.arange(rows.n_tiles))[0]


def map_rows(rows: Rows, fn):
    """fn(X_t, y_t, valid_t) for every tile, outputs of shape (tile, …) concatenated and cut
    to n rows, e.g. the left singular vectors (n, k)."""

    def body(_, t):
        X, y = rows.tile_at(t)
        return None, fn(X, y, rows.valid(t))

    out = jax.lax.scan(body, None, jnp.arange(rows.n_tiles))[1]
    return jax.tree_util.tree_map(lambda o: o.reshape(-1, *o.shape[2:])[: rows.n], out)


def materialize(rows: Rows) -> tuple[Float[Array, "n dim"], Float[Array, " n"]]:
    """All n rows as arrays (X, y): the reference that streamed kernels are tested against."""
    X, y = map_rows(rows, lambda X, y, v: (X, y))
    return X, y


def as_rows(X, tile: int) -> Rows:
    """`X` itself when it is a `Rows`, else `ArrayRows(X, tile=tile)`."""
    return X if isinstance(X, Rows) else ArrayRows(X, tile=tile)
