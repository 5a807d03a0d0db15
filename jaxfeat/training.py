"""One training loop for every procedure (DESIGN §7): `train(key, net, objective, optimizer, ...)`.

Written for one network and one seed; `jax.vmap` adds seeds, widths and hyperparameters, and the
scan engine adds chunks and devices. The loop is a `lax.scan` over log points around a `lax.scan`
over the steps between them, so the compiled program does not grow with `steps` and memory holds
only the logged points (the PureJaxRL/gymnax layering, DESIGN §6.5).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from . import _checks
from ._checks import InputError, InputTypeError
from ._static_key import Static
from .nets import TwoLayer, check_single
from .objectives import Objective, as_objective

__all__ = ["train", "log_steps", "TRAINABLE"]

TRAINABLE = ("W", "b", "a")
_BUILTIN = ("step", "loss", "test_loss", "error", "test_error", "penalty", "a_norm", "W_norm")


# λ: a number, a scalar array, an optax schedule t ↦ λ(t), or a dict of those by leaf name
WeightDecay = ArrayLike | Callable[..., Any] | Mapping[str, Any]


def train(
    key: PRNGKeyArray,
    net: TwoLayer,
    objective: Objective,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    log_every: int | None = None,
    trainable=None,
    weight_decay: WeightDecay = 0.0,
    metrics: Callable | None = None,
) -> tuple[TwoLayer, dict[str, Array]]:
    """Train `net` on `objective` with an optax `optimizer` for `steps` steps.

    Step t minimises `objective`'s step loss plus the weight decay (λ(t)/2)|θ|² on the trainable
    leaves θ (the regularised objective L_λ of Zhou–Ge, MATH §5.1; Shi et al.'s λ of Algorithm 1,
    §6.1): the decay λ(t)θ is added to the gradient by `optax.add_decayed_weights` before
    `optimizer`, so with `optax.sgd(η)` a step is θ ← θ − η(t)(∇L(θ) + λ(t)θ).

    **Arguments:**

    - `key`: split once into `(bind_key, step_key)`: `objective.bind(bind_key)` draws its held-out
      sample, and step t's sampling key is `fold_in(step_key, t)`.
    - `net`: one `TwoLayer` (vmap for ensembles). Masked (padded) neurons contribute nothing and
      never move, bit for bit.
    - `objective`: `jaxfeat.objectives.Population | Online | Dataset`.
    - `optimizer`: any `optax.GradientTransformation`; learning-rate schedules are optax's.
      The compiled program is kept by the optimizer's structure and hyperparameters (and the
      weight-decay schedules' and `metrics`' code and values), not by object: a fresh
      `optax.sgd(0.05)` reuses it, `optax.sgd(0.1)` compiles its own (`_static_key`).
    - `steps`: number of steps; `log_every` (default `steps`): the history holds the states after
      0, log_every, 2·log_every, … steps, and after `steps` if log_every does not divide it.
    - `trainable`: the leaves that move, a subset of ("W", "b", "a"): ("a",) is random features,
      ("W",) a first-layer-only run. Other leaves are bitwise unchanged. Default: every leaf the
      objective differentiates (("W", "a") for the closed-form `Population`, which has no bias).
    - `weight_decay`: λ as a number, a scalar array (vmappable), an optax schedule t ↦ λ(t), or a
      mapping {leaf: λ} for per-leaf values (leaves missing from it are not decayed).
    - `metrics`: optional `fn(net) -> dict of arrays`, recorded at log points.

    **Returns:** `(net, history)`. `history` maps names to arrays with a leading log-point axis:
    `step`, the objective's `loss` (and `test_loss`, and `error`/`test_error` for margin losses),
    `penalty` = Σ_leaf λ_leaf(t)/2·|θ_leaf|², `a_norm` = |a|, `W_norm` = |W|_F (active neurons),
    `diverged`, and the user's metrics. A run whose step loss or parameters turn NaN/Inf stops
    at its last state with a finite loss and reports `diverged=True` from then on.
    """
    _checks.check_key(key)
    cfg = _check(net, objective, optimizer, steps, log_every, trainable, weight_decay, metrics)
    # Callables reach the compiled program as static arguments compared by structure, not
    # identity: a fresh `optax.sgd(0.05)` (or a lambda pasted again) reuses the program, and
    # `optax.sgd(0.1)` does not (`_static_key`).
    decay = {
        k: Static(v) if callable(v) else jnp.asarray(v, net.W.dtype)
        for k, v in cfg.pop("decay").items()
    }
    cfg["metrics"] = None if metrics is None else Static(metrics)
    return _train(key, net, objective, Static(optimizer), decay, tuple(sorted(cfg.items())))


def log_steps(steps: int, log_every: int | None = None) -> np.ndarray:
    """The steps at which `train` logs: 0, log_every, 2·log_every, …, and `steps`."""
    steps = _checks.check_positive_int("steps", steps)
    log_every = steps if log_every is None else _checks.check_positive_int("log_every", log_every)
    points = np.arange(0, steps + 1, log_every)
    return points if points[-1] == steps else np.append(points, steps)


def _check(net, objective, optimizer, steps, log_every, trainable, weight_decay, metrics) -> dict:
    """Every argument, in Python, before anything is traced: errors name the argument."""
    check_single("net", net)
    as_objective(objective).check(net)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise InputTypeError(
            "optimizer must be an optax.GradientTransformation (e.g. optax.sgd(0.1)), got "
            f"{type(optimizer).__name__}"
        )
    steps = _checks.check_positive_int("steps", steps)
    log_every = steps if log_every is None else _checks.check_positive_int("log_every", log_every)
    if log_every > steps:
        raise InputError(f"log_every must be <= steps = {steps}, got {log_every}")
    allowed = objective.trainable(net)
    trainable = allowed if trainable is None else _check_trainable(trainable)
    if not set(trainable) <= set(allowed):
        raise InputError(
            f"trainable: {type(objective).__name__} gives no gradient for "
            f"{sorted(set(trainable) - set(allowed))} (the closed-form population loss assumes "
            "zero biases); train ('W', 'a'), or use Population(teacher, degree=K) for biases"
        )
    decay = _check_decay(weight_decay, trainable)
    if metrics is not None:
        _check_metrics(metrics, net)
    return dict(steps=steps, log_every=log_every, trainable=trainable, metrics=metrics, decay=decay)


def _check_trainable(trainable) -> tuple[str, ...]:
    names = (trainable,) if isinstance(trainable, str) else trainable
    try:
        names = tuple(names)
    except TypeError:
        raise InputTypeError(
            f"trainable must be a tuple of leaf names, got {trainable!r}"
        ) from None
    bad = [n for n in names if n not in TRAINABLE]
    if bad or not names or len(set(names)) != len(names):
        raise InputError(
            f"trainable must name distinct leaves of TwoLayer among {TRAINABLE}, got {trainable!r}"
        )
    return tuple(n for n in TRAINABLE if n in names)


def _check_decay(weight_decay, trainable) -> dict:
    if isinstance(weight_decay, Mapping):
        bad = sorted(set(weight_decay) - set(trainable))
        if bad:
            raise InputError(f"weight_decay names leaves {bad} that are not trainable {trainable}")
        return {k: _check_rate(f"weight_decay[{k!r}]", v) for k, v in weight_decay.items()}
    value = _check_rate("weight_decay", weight_decay)
    return {k: value for k in trainable}


def _check_rate(name, value):
    if callable(value):  # an optax schedule: checked where it is evaluated (traced step)
        return value
    if _checks.shape_of(name, value) != ():
        raise InputError(
            f"{name} must be a scalar or an optax schedule, got shape {np.shape(value)}"
        )
    if _checks.is_concrete(value):
        _checks.check_nonneg_float(name, value)
    return value


def _check_metrics(metrics, net) -> None:
    if not callable(metrics):
        raise InputTypeError(f"metrics must be a callable fn(net) -> dict, got {metrics!r}")
    shapes = jax.eval_shape(metrics, net)
    if not isinstance(shapes, Mapping):
        raise InputTypeError(f"metrics must return a dict of arrays, got {type(shapes).__name__}")
    clash = sorted(set(shapes) & set(_BUILTIN + ("diverged",)))
    if clash:
        raise InputError(f"metrics returns names {clash} that the history already records")


@eqx.filter_jit
def _train(key, net, objective, optimizer: Static, decay, static):
    """`train` after its checks: one trace for a network's shapes, config and leaf choice, and
    the optimizer's, schedules' and metrics' structure (`Static`)."""
    cfg = dict(static)
    decay = {k: lam.value if isinstance(lam, Static) else lam for k, lam in decay.items()}
    metrics = None if cfg["metrics"] is None else cfg["metrics"].value
    bind_key, step_key = jax.random.split(key)
    objective = objective.bind(bind_key)
    params, frozen = eqx.partition(net, _filter_spec(net, cfg["trainable"]))
    tx = optax.chain(
        *(optax.add_decayed_weights(lam, mask=_leaf_mask(params, k)) for k, lam in decay.items()),
        optimizer.value,
    )

    def loss_at(p, t):  # step t's loss: its sampling key is fold_in(step_key, t)
        return objective.step_loss(eqx.combine(p, frozen), jax.random.fold_in(step_key, t))

    step = functools.partial(_step, loss_at=loss_at, tx=tx, mask=net.mask)
    record = functools.partial(
        _record, objective=objective, frozen=frozen, decay=decay, metrics=metrics
    )
    log = functools.partial(_checked_log, record)
    carry = (params, params, tx.init(params), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    carry, history = _scan_logged(step, log, carry, cfg["steps"], cfg["log_every"])
    return eqx.combine(carry[0], frozen), history


# The loop's carry: (params, prev, opt_state, t, diverged); `prev` is the state before `params`.


def _step(carry, _, *, loss_at, tx, mask):
    """One optimizer step. A step whose loss or new parameters are not finite stops the run at
    its last state with a finite loss (and keeps it, and the optimizer state, from then on)."""
    params, prev, opt_state, t, diverged = carry
    loss, grads = jax.value_and_grad(lambda p: loss_at(p, t))(params)
    updates, new_state = tx.update(grads, opt_state, params)
    new = _keep_padding(optax.apply_updates(params, updates), params, mask)
    loss_ok, new_ok = jnp.isfinite(loss), _all_finite(new)
    # Last state with a finite loss: `params` if its loss is finite, else `prev`.
    last_good = _select(loss_ok, params, prev)
    stop = diverged | ~loss_ok | ~new_ok
    nxt = _select(diverged, params, _select(stop, last_good, new))
    nxt_prev = _select(stop, prev, params)
    nxt_state = _select(stop, opt_state, new_state)
    return (nxt, nxt_prev, nxt_state, t + 1, stop), None


def _record(carry, *, objective, frozen, decay, metrics) -> dict[str, Array]:
    """The history at one log point: step, the objective's metrics, penalty, norms, diverged
    and the user's metrics."""
    params, _, _, t, diverged = carry
    trained: TwoLayer = eqx.combine(params, frozen)
    out = {"step": t, **objective.evaluate(trained)}
    out["penalty"] = _penalty(trained, decay, t)
    a = jnp.where(trained.mask, trained.a, 0.0)
    out["a_norm"] = jnp.sqrt(jnp.sum(a**2))
    out["W_norm"] = jnp.sqrt(jnp.sum(jnp.where(trained.mask[:, None], trained.W, 0.0) ** 2))
    out["diverged"] = diverged
    if metrics is not None:
        out |= dict(metrics(trained))
    return out


def _checked_log(record, carry):
    """Log a state; one whose logged loss is not finite is rolled back to the previous state
    (whose step loss was finite) and the run is marked diverged."""
    out = record(carry)
    params, prev, opt_state, t, diverged = carry
    bad = ~jnp.isfinite(out["loss"]) & ~diverged
    rolled = (prev, prev, opt_state, t, jnp.ones((), bool))
    carry = _select(bad, rolled, carry)
    return carry, _select(bad, record(rolled), out)


def _scan_logged(step, log, carry, steps: int, log_every: int):
    """`steps` steps as a scan over log points around a scan of `log_every` steps (and the
    `steps mod log_every` left over), logging at 0, log_every, …, steps."""

    def block(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=log_every)
        return log(carry)

    carry, first = log(carry)
    n_blocks, rest = divmod(steps, log_every)
    carry, history = jax.lax.scan(block, carry, None, length=n_blocks)
    parts = [_lead(first), history]
    if rest:
        carry, _ = jax.lax.scan(step, carry, None, length=rest)
        carry, last = log(carry)
        parts.append(_lead(last))
    return carry, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)


def _filter_spec(net: TwoLayer, trainable: tuple[str, ...]):
    spec = jax.tree_util.tree_map(lambda _: False, net)
    leaves = tuple(lambda m, k=k: getattr(m, k) for k in trainable)
    return eqx.tree_at(lambda m: tuple(f(m) for f in leaves), spec, (True,) * len(trainable))


def _leaf_mask(params, name: str):
    mask = jax.tree_util.tree_map(lambda _: False, params)
    return eqx.tree_at(lambda m: getattr(m, name), mask, True)


def _keep_padding(new, old, mask):
    """Masked neurons keep their old values exactly, whatever the optimizer proposes (a bare
    `new` would turn a padded −0.0 into +0.0 and let decoupled decays move padding)."""
    out = new
    for name in TRAINABLE:
        n = getattr(new, name)
        if n is not None:
            m = mask.reshape(mask.shape + (1,) * (n.ndim - 1))
            kept = jnp.where(m, n, getattr(old, name))
            out = eqx.tree_at(lambda t, k=name: getattr(t, k), out, kept)
    return out


def _select(pred, on_true, on_false):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def _penalty(net: TwoLayer, decay: dict, t) -> Array:
    """Σ_leaf λ_leaf(t)/2 · |θ_leaf|² over the active neurons."""
    total = jnp.zeros((), net.W.dtype)
    for name, lam in decay.items():
        x: Array = getattr(net, name)
        m = net.mask.reshape(net.mask.shape + (1,) * (x.ndim - 1))
        lam_t = jnp.asarray(lam(t) if callable(lam) else lam, net.W.dtype)
        total = total + 0.5 * lam_t * jnp.sum(jnp.where(m, x, 0.0) ** 2)
    return total


def _lead(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)
