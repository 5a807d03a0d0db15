"""Training objectives for `jaxfeat.train` (DESIGN §7): what a step differentiates, and what a log
point records.

Every objective is an `eqx.Module` written for one network and one seed:

- `Population(teacher, degree=None)`: the exact population loss E_x(f − f*)², x ~ N(0, I_d)
  (MATH §2.2), through `jaxfeat.population_loss`; its gradient is autodiff of the closed-form (or
  Mehler-series) kernel.
- `Online(dist, batch)`: one-pass SGD: a fresh batch of `dist` at every step.
- `Dataset(X, y, batch=None)`: a fixed training set, full batch or minibatches drawn by key.

Losses are named (`"square"`, `"hinge"`, `"logistic"`, see `LOSSES`); each states its derivative
ℓ'(0) at a zero margin, which fixes the size of Shi et al.'s first-step features (MATH §6.1).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from . import _checks, _sized, kernels
from ._checks import InputError, InputTypeError
from .data import Distribution
from .nets import TwoLayer
from .population import population_loss

__all__ = ["Loss", "LOSSES", "Objective", "Population", "Online", "Dataset"]


@dataclasses.dataclass(frozen=True)
class Loss:
    """A per-sample loss ℓ(f, y), averaged over a batch.

    **Fields:** `name`; `fn(pred, y)`; `derivative_at_zero`: ℓ'(0) for a margin loss ℓ(z),
    z = y·f, with labels y ∈ {±1} (Shi et al.'s step-1 identity w⁽¹⁾ = −ℓ'(0)·η a G needs it);
    `margin`: whether labels are ±1 classes (then the 0-1 error is recorded too).
    """

    name: str
    fn: Callable
    derivative_at_zero: float
    margin: bool

    def __call__(self, pred: Array, y: Array, n=None) -> Array:
        """The mean of ℓ over the batch, or over its first `n` rows (a live count, possibly
        traced: the rows after it are padding, `jaxfeat._sized`)."""
        return _sized.live_mean(self.fn(pred, y), n)


LOSSES = {
    # (f − y)², no ½ (the population loss's convention, MATH §0); for y = ±1 it is the margin
    # loss (1 − z)², whose derivative at z = 0 is −2.
    "square": Loss("square", lambda f, y: (f - y) ** 2, -2.0, False),
    # max(0, 1 − z) through relu, whose derivative at the kink is 0 (jnp.maximum's would be ½)
    "hinge": Loss("hinge", lambda f, y: jax.nn.relu(1.0 - y * f), -1.0, True),
    # log(1 + e^{−z}) = softplus(−z), stable for any z; ℓ'(0) = −½
    "logistic": Loss("logistic", lambda f, y: jax.nn.softplus(-y * f), -0.5, True),
}


def get_loss(loss: str | Loss) -> Loss:
    """The named loss; an unknown name raises `InputError` listing the known."""
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise InputError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    return LOSSES[loss]


class Objective(eqx.Module):
    """What `jaxfeat.train` minimises. Subclasses give the step loss and the log-point metrics.

    `bind(key)` draws what a run needs once (a held-out sample); `step_loss(net, key)` is the loss
    whose gradient makes one step (`key` is the step's, for sampling); `evaluate(net)` returns the
    metrics recorded at log points: `loss` (the training objective) and, where there is one, a
    `test_loss` (and `error`/`test_error`, the 0-1 errors of a margin loss).
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Input dimension d the network must have."""

    def check(self, net: TwoLayer) -> None:
        """Raise a clear error if `net` cannot be trained on this objective."""
        if net.dim != self.dim:
            raise InputError(
                f"objective has dim {self.dim} but the network has dim {net.dim} "
                f"(W of shape {tuple(net.W.shape)})"
            )

    def trainable(self, net: TwoLayer) -> tuple[str, ...]:
        """The leaves whose gradient this objective gives (the default of `train`)."""
        return ("W", "b", "a")

    def bind(self, key: PRNGKeyArray) -> Objective:
        return self

    @abc.abstractmethod
    def step_loss(self, net: TwoLayer, key: PRNGKeyArray) -> Float[Array, ""]:
        """The loss differentiated at one step."""

    @abc.abstractmethod
    def evaluate(self, net: TwoLayer) -> dict[str, Array]:
        """Metrics at a log point (`loss`, optional `test_loss`, `error`, `test_error`)."""


class Population(Objective):
    """The exact population loss L(f) = E_x(f(x) − f*(x))², x ~ N(0, I_d), against a teacher
    network f* with the student's activation (MATH §2.2; Zhou–Ge's objective without decay).

    `degree=None` uses the closed-form dual kernel when the activation has one (relu, abs, their
    centrings such as `sigma_ge2`, erf; zero biases), else the Mehler series at degree 50; an int
    forces the Mehler series at that degree. The population loss is its own test metric, so
    `test_loss` equals `loss`.
    """

    teacher: TwoLayer
    degree: int | None = eqx.field(static=True)

    def __init__(self, teacher: TwoLayer, degree: int | None = None):
        if not isinstance(teacher, TwoLayer) or teacher.W.ndim != 2:
            raise InputTypeError(
                f"teacher must be a single jaxfeat.TwoLayer, got {type(teacher).__name__}"
            )
        self.teacher = teacher
        self.degree = None if degree is None else _checks.check_positive_int("degree", degree)

    @property
    def dim(self) -> int:
        return self.teacher.dim

    def check(self, net: TwoLayer) -> None:
        super().check(net)
        if net.activation != self.teacher.activation:
            raise InputError(
                f"objective: the teacher's activation ({self.teacher.activation.name}) must be "
                f"the network's ({net.activation.name}) for the exact population loss"
            )

    def trainable(self, net):
        """("W", "a") when the closed-form kernel is used: it assumes zero biases, so it has no
        bias gradient; the Mehler series (`degree=K`) differentiates biases too."""
        if self.degree is None and kernels.has_closed_form(net.activation):
            return ("W", "a")
        return ("W", "b", "a")

    def _loss(self, net):
        if self.degree is None:
            return population_loss(net, self.teacher)
        return population_loss(net, self.teacher, method="hermite", degree=self.degree)

    def step_loss(self, net, key):
        return self._loss(net)

    def evaluate(self, net):
        loss = self._loss(net)
        return {"loss": loss, "test_loss": loss}


class Online(Objective):
    """One-pass SGD: a fresh batch of `batch` samples of `dist` at every step.

    Step t draws its batch with `fold_in(step_key, t)` (see `jaxfeat.train`). The training
    objective is the population risk E ℓ(f(x), y), estimated at log points on `n_test` held-out
    samples drawn once per run by `bind`; `loss` and `test_loss` are that estimate.

    With a static `capacity`, `batch` may be a traced size ≤ capacity: each step draws
    `capacity` rows of which the first `batch` are live (the same draws as `batch` alone,
    `Distribution.sample`), so a sweep over the batch size compiles once.
    """

    dist: Distribution
    capacity: int = eqx.field(static=True)
    loss: Loss = eqx.field(static=True)
    n_test: int = eqx.field(static=True)
    test: tuple | None = None
    live: Array | None = None

    def __init__(
        self,
        dist: Distribution,
        batch=256,
        loss: str | Loss = "square",
        *,
        n_test: int = 4096,
        test: tuple | None = None,
        capacity: int | None = None,
    ):
        if not isinstance(dist, Distribution):
            raise InputTypeError(
                f"dist must be a jaxfeat.data distribution, got {type(dist).__name__}"
            )
        self.dist = dist
        batch, self.capacity = _sized.check_size("batch", batch, capacity)
        self.live = None if capacity is None else jnp.asarray(batch, jnp.int32)
        self.loss = get_loss(loss)
        self.n_test = _checks.check_positive_int("n_test", n_test)
        self.test = test

    @property
    def dim(self) -> int:
        return self.dist.dim

    def bind(self, key):
        return eqx.tree_at(
            lambda o: o.test, self, self.dist.sample(key, self.n_test), is_leaf=_is_none
        )

    @property
    def batch(self) -> int | Array:
        """The live batch size (traced when a capacity was given)."""
        return self.capacity if self.live is None else self.live

    def step_loss(self, net, key):
        if self.live is None:
            X, y = self.dist.sample(key, self.capacity)
        else:
            X, y = self.dist.sample(key, self.live, capacity=self.capacity)
        return self.loss(net(X), y, self.live)

    def evaluate(self, net):
        if self.test is None:
            raise InputError("Online.evaluate needs a held-out sample: call bind(key) first")
        X_test, y_test = self.test
        out = _metrics(self.loss, net, X_test, y_test, "")
        return out | {f"test_{k}": v for k, v in out.items()}


class Dataset(Objective):
    """A fixed training set (X, y): full-batch GD (`batch=None`) or minibatch SGD, where step t
    draws `batch` distinct indices with `fold_in(step_key, t)`.

    `loss` at log points is the full training loss; `test=(X_test, y_test)` adds `test_loss` (and
    for margin losses the 0-1 errors `error`, `test_error`).

    `n` (optional, possibly traced): only the first n rows of X and y are the training set, the
    rest padding that no loss, gradient or metric sees (a sample size below the static capacity
    X.shape[0], `jaxfeat._sized`); full batch only.
    """

    X: Float[Array, "capacity dim"]
    y: Float[Array, " capacity"]
    batch: int | None = eqx.field(static=True)
    loss: Loss = eqx.field(static=True)
    test: tuple | None = None
    n: Array | None = None

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        batch: int | None = None,
        loss: str | Loss = "square",
        test: tuple | None = None,
        n=None,
    ):
        rows, d = _checks.check_ndim("X", X, 2, "(n, dim)")
        if rows == 0 or d == 0:
            raise InputError(f"X must have shape (n, dim) with n, dim >= 1, got {(rows, d)}")
        _checks.check_shape("y", y, (rows,), "(n,)")
        if n is not None:
            if batch is not None:
                raise InputError("batch must be None (full batch) when n (live rows) is given")
            n = jnp.asarray(_sized.check_size("n", n, rows)[0], jnp.int32)
        self.n = n
        self.batch = None if batch is None else _checks.check_positive_int("batch", batch)
        if self.batch is not None and self.batch > rows:
            raise InputError(f"batch must be <= n = {rows} (the training set's size), got {batch}")
        self.loss = get_loss(loss)
        if test is not None:
            if not isinstance(test, (tuple, list)) or len(test) != 2:
                raise InputTypeError("test must be a pair (X_test, y_test)")
            nt = _checks.check_ndim("test[0]", test[0], 2, f"(n_test, {d})")[0]
            _checks.check_shape("test[0]", test[0], (nt, d), f"(n_test, {d})")
            _checks.check_shape("test[1]", test[1], (nt,), "(n_test,)")
            test = (jnp.asarray(test[0]), jnp.asarray(test[1]))
        self.X, self.y, self.test = jnp.asarray(X), jnp.asarray(y), test

    @property
    def dim(self) -> int:
        return self.X.shape[-1]

    def step_loss(self, net, key):
        if self.batch is None:
            return self.loss(net(self.X), self.y, self.n)
        idx = jax.random.choice(key, self.X.shape[0], (self.batch,), replace=False)
        return self.loss(net(self.X[idx]), self.y[idx])

    def evaluate(self, net):
        out = _metrics(self.loss, net, self.X, self.y, "", self.n)
        if self.test is not None:
            X_test, y_test = self.test
            out |= _metrics(self.loss, net, X_test, y_test, "test_")
        return out


def _metrics(loss: Loss, net, X, y, prefix: str, n=None) -> dict:
    """The mean loss (and a margin loss's 0-1 error) over the rows of X, or their first `n`."""
    pred = net(X)
    out = {f"{prefix}loss": loss(pred, y, n)}
    if loss.margin:  # ties (f = 0) count as errors
        wrong = (jnp.sign(pred) != jnp.sign(y)).astype(pred.dtype)
        out[f"{prefix}error"] = _sized.live_mean(wrong, n)
    return out


def _is_none(x) -> bool:
    return x is None


def as_objective(objective) -> Objective:
    if not isinstance(objective, Objective):
        raise InputTypeError(
            "objective must be a jaxfeat.objectives objective (Population, Online, Dataset), "
            f"got {type(objective).__name__}"
        )
    return objective
