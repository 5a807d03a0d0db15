"""Label pre-processing before a one-step experiment: remove the labels' estimated He₀ and He₁
parts, so that one giant step learns the higher-order directions (Dandi, Krzakala, Loureiro,
Pesce, Stephan 2023, "How two-layer neural networks learn, one (giant) step at a time").

For x ~ N(0, I_d) the target's He₀ and He₁ coefficients are E[y] and E[y x]; a rule estimates
them from a sample (X, y) and subtracts the fitted part, y ↦ y − m − X·ℓ:

- `"moments"`: the plug-in estimates m = ȳ, ℓ = Xᵀy/n (what Dandi et al.'s code does);
- `"centred"`: m = ȳ, ℓ = Xᵀ(y − ȳ)/n (jaxfeat 0.2's `remove_low_order=True`);
- `None`: no pre-processing; or a callable `(X, y) -> y′` of your own (needs the whole sample).

Each estimate is a fold over rows (Σy, Xᵀy, Σx), so the same rule serves the step's samples,
the ridge's and a test set drawn tile by tile (`jaxfeat.rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from . import _checks, _sized
from ._checks import InputError
from .rows import Rows, fold_rows

__all__ = ["LABEL_RULES", "LowOrder", "check_rule", "fit_low_order", "preprocess_labels"]

LABEL_RULES = ("moments", "centred")


class LowOrder(eqx.Module):
    """The fitted He₀ + He₁ part of the labels, x ↦ mean + x·linear; calling it on (X, y)
    returns the pre-processed labels y − mean − X·linear."""

    mean: Float[Array, ""]
    linear: Float[Array, " dim"]

    def __call__(self, X: Float[Array, "n dim"], y: Float[Array, " n"]) -> Float[Array, " n"]:
        return y - self.mean - X @ self.linear


def check_rule(rule: Any, *, streamed: bool = False) -> Any:
    """`rule` if it is None, one of `LABEL_RULES` or (not `streamed`) a callable; else an
    `InputError` naming `labels`."""
    if rule is None or (isinstance(rule, str) and rule in LABEL_RULES):
        return rule
    if callable(rule) and not isinstance(rule, str):
        if streamed:
            raise InputError(
                "labels: a callable rule needs the whole sample at once and knows no padding; "
                f"with tile= or a capacity use one of {LABEL_RULES} or None"
            )
        return rule
    raise InputError(f"labels must be None, one of {LABEL_RULES} or a callable, got {rule!r}")


def _sums(X: Array, y: Array, valid: Array):
    """(Σy, Xᵀy, Σx) over the valid rows of one tile."""
    y, X = jnp.where(valid, y, 0.0), jnp.where(valid[:, None], X, 0.0)
    return jnp.sum(y), X.T @ y, jnp.sum(X, 0)


def _from_sums(rule: str, n, sy, Xty, sx) -> LowOrder:
    ybar = sy / n
    linear = Xty / n if rule == "moments" else (Xty - ybar * sx) / n
    return LowOrder(ybar, linear)


def fit_low_order(
    X: ArrayLike | Rows, y: ArrayLike | None = None, rule: str = "moments", *, n=None
):
    """The He₀ + He₁ part of the labels estimated by `rule` (`"moments"` | `"centred"`, module
    docstring) from X (n, d) and y (n,), or from a `jaxfeat.rows.Rows` (one pass over its
    tiles, y=None). `n` (arrays only, may be traced): only the first n rows are live, the rest
    padding (`jaxfeat._sized`). **Returns:** a `LowOrder`."""
    if rule not in LABEL_RULES:
        raise InputError(f"rule must be one of {LABEL_RULES}, got {rule!r}")
    if isinstance(X, Rows):
        dtype = jnp.zeros(()).dtype
        zeros = (jnp.zeros((), dtype), jnp.zeros(X.dim, dtype), jnp.zeros(X.dim, dtype))
        return _from_sums(rule, X.count, *fold_rows(X, _sums, zeros))
    rows, _ = _checks.check_ndim("X", X, 2, "(n, dim)")
    _checks.check_shape("y", y, (rows,), "(n,)")
    X, y = jnp.asarray(X), jnp.asarray(y)
    n, _ = _sized.check_size("n", rows if n is None else n, rows)
    return _from_sums(rule, n, *_sums(X, y, _sized.live_mask(rows, n)))


def preprocess_labels(
    X: ArrayLike, y: ArrayLike, rule: str | Callable | None, *, n=None
) -> Float[Array, " n"]:
    """y pre-processed by `rule` on its own sample (X, y): y − m − X·ℓ for a named rule (module
    docstring), `rule(X, y)` for a callable, y itself for None. With `n` (live rows, the rest
    padding) a named rule is fitted on the live rows and the padding rows stay zero."""
    rule = check_rule(rule, streamed=n is not None)
    if rule is None:
        return jnp.asarray(y)
    if callable(rule):
        return jnp.asarray(rule(jnp.asarray(X), jnp.asarray(y)))
    y_new = fit_low_order(X, y, rule, n=n)(jnp.asarray(X), jnp.asarray(y))
    return _sized.mask_rows(y_new, n)


def label_adjuster(rows: Rows, rule) -> Callable:
    """(X, y) ↦ pre-processed y for tiles of `rows`: the rule's `LowOrder` fitted on all of
    `rows`, a callable applied as it is, or the identity."""
    if rule is None:
        return lambda X, y: y
    if callable(rule):
        return rule
    return fit_low_order(rows, rule=rule)
