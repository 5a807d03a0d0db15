"""Shi, Wei & Liang (arXiv 2310.12408), Algorithm 1: a two-layer ReLU network learns from the
gradient features G(w, b) = E[y x 1{w·x > b}] of its first step (MATH §3, §6; the [R] choices
are parameters).

Network g(x) = Σ_i a_i relu(w_i·x − b_i), symmetric init (pairs (w, b, a) and (w, b, −a), so
g ≡ 0), margin loss ℓ(y g) with ℓ'(0) < 0 (hinge: −1):

1. one step with learning rate η⁽¹⁾ and weight decay λ⁽¹⁾ = 1/η⁽¹⁾ on W, which cancels the init:
   w_i⁽¹⁾ = −ℓ'(0) η⁽¹⁾ a_i Ĝ(w_i⁽⁰⁾, b_i), Ĝ the empirical G of the n training samples
   (optionally a moves too, with the same decay: `decay_a`);
2. T steps with a small learning rate and weight decay through `jaxfeat.train`, on a only (the
   paper's online-convex-optimisation phase) or on every leaf (`trainable="all"`).

Against it, on the same data: random features (the same init, first layer frozen, the readout
fitted exactly by kernel ridge regression, ridge by leave-one-out) and the network's NTK and NNGP
at that init (`jaxfeat.kernel_baselines`), and the Bayes error where it is known.
`gradient_features(key, dist, ...)` runs one seed and returns a flat dict of small arrays.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _checks, _sized, population
from .._checks import InputError
from ..data import Distribution, GaussianMixture, SparseParity
from ..features import in_cone
from ..kernel_baselines import RIDGES, feature_ridge, kernel_ridge, relu_nngp, relu_ntk
from ..nets import TwoLayer
from ..objectives import Dataset, Online, get_loss
from ..population import empirical_gradient, population_gradient
from ..training import train

__all__ = [
    "gradient_features",
    "step_one",
    "later_steps",
    "aligned_fraction",
    "bayes_error",
    "LEARNERS",
    "QUANTILES",
    "has_exact_gradient",
]

LEARNERS = ("network", "random_features", "ntk", "nngp")
QUANTILES = (0.1, 0.5, 0.9)
# exact parity G enumerates 2^dim inputs per pattern: cheap per seed up to here
_PARITY_EXACT_MAX_DIM = 16


def step_one(
    key: PRNGKeyArray, net: TwoLayer, objective, eta1, *, decay_a: bool = False
) -> TwoLayer:
    """Algorithm 1's first step: SGD(η⁽¹⁾) on W (and a if `decay_a`) with weight decay 1/η⁽¹⁾,
    through `jaxfeat.train`, so w_i⁽¹⁾ = −η⁽¹⁾ ∇_{w_i}L = −ℓ'(0) η⁽¹⁾ a_i Ĝ(w_i⁽⁰⁾, b_i) at a
    symmetric init (g ≡ 0); b does not move."""
    leaves = ("W", "a") if decay_a else ("W",)
    out, _ = train(
        key,
        net,
        objective,
        optax.sgd(eta1),
        steps=1,
        trainable=leaves,
        weight_decay={k: 1.0 / eta1 for k in leaves},
    )
    return out


def aligned_fraction(
    G: Float[ArrayLike, "width dim"],
    directions: Float[ArrayLike, "r dim"],
    mask,
    gamma,
    B_G,
) -> Float[Array, ""]:
    """The fraction of active neurons whose G_i lies in the γ-cone of some ground-truth direction
    D_j (cos(G_i, D_j) ≥ 1 − γ) with |G_i| ≥ B_G: the p of the gradient feature set S_{p,γ,B_G}
    (MATH §6.1), both signs of b together."""
    ok = jnp.any(in_cone(G, directions, gamma, B_G), axis=1) & mask
    return jnp.sum(ok) / jnp.sum(mask)


def bayes_error(dist: Distribution, X: Array, y: Array) -> Array:
    """Error of the Bayes classifier on the sample (X, y): for a `GaussianMixture` the sign of
    log Σ_{j: y_j=+1} p_j N(x; μ_j, s_j²I) − log Σ_{j: y_j=−1} (…), an unbiased estimate of the
    Bayes error; 0 for a `SparseParity` without label noise (y is a function of x)."""
    if isinstance(dist, SparseParity):
        return jnp.asarray(dist.flip, X.dtype)
    if not isinstance(dist, GaussianMixture):
        return jnp.asarray(jnp.nan, X.dtype)
    d = X.shape[1]
    M = dist.means
    sq = jnp.sum(X * X, axis=1)[:, None] - 2.0 * X @ M.T + jnp.sum(M * M, axis=1)[None, :]
    logp = (jnp.log(dist.weights) - d * jnp.log(dist.scales))[None, :] - sq / (
        2 * dist.scales[None, :] ** 2
    )
    labels = dist.labels[None, :]
    pos = jax.nn.logsumexp(jnp.where(labels > 0, logp, -jnp.inf), axis=1)
    neg = jax.nn.logsumexp(jnp.where(labels < 0, logp, -jnp.inf), axis=1)
    return jnp.mean(jnp.sign(pos - neg) != jnp.sign(y)).astype(X.dtype)


def has_exact_gradient(dist: Distribution) -> bool:
    """Whether this procedure computes the exact G for `dist`: the law has one
    (`jaxfeat.population.has_exact_gradient`, the single source of truth) and it is affordable
    per seed (sparse parity's enumeration only up to dim 16 here, 20 in `population_gradient`)."""
    if not population.has_exact_gradient(dist):
        return False
    return not isinstance(dist, SparseParity) or dist.dim <= _PARITY_EXACT_MAX_DIM


def check_config(
    dist,
    *,
    width,
    max_width,
    n,
    n_capacity=None,
    n_test,
    eta1,
    lr,
    steps,
    log_every,
    weight_decay,
    trainable,
    loss,
    w_std,
    b_std,
    a_std,
    directions,
    gamma,
    B_G,
) -> None:
    """Every argument in Python before anything is traced; errors name the argument. Dynamic
    grid values (`width`, `eta1`, `lr`, `weight_decay`) are checked when concrete."""
    _check_dist(dist)
    _check_widths(width, max_width)
    _check_schedule(n, n_capacity, n_test, steps, log_every)
    _check_rates(eta1, lr, weight_decay)
    _check_training(trainable, loss)
    _check_init(w_std, b_std, a_std)
    _check_feature_set(dist, directions, gamma, B_G)


def _check_dist(dist) -> None:
    if not isinstance(dist, Distribution):
        raise _checks.InputTypeError(
            f"dist must be a jaxfeat.data distribution, got {type(dist).__name__}"
        )


def _check_widths(width, max_width) -> None:
    """Even widths: the symmetric init pairs (w, b, a) with (w, b, −a)."""
    if _concrete(width):
        w = _checks.check_positive_int("width", width)
        if w % 2:
            raise InputError(f"width must be even for the symmetric init (pairs ±a), got {w}")
    if max_width is not None and _checks.check_positive_int("max_width", max_width) % 2:
        raise InputError(f"max_width must be even for the symmetric init, got {max_width}")


def _check_schedule(n, n_capacity, n_test, steps, log_every) -> None:
    """Positive sample sizes (n ≤ n_capacity when given), step count and log interval."""
    _sized.check_size("n", n, n_capacity)
    _checks.check_positive_int("n_test", n_test)
    _checks.check_positive_int("steps", steps)
    if log_every is not None:
        _checks.check_positive_int("log_every", log_every)


def _check_rates(eta1, lr, weight_decay) -> None:
    """Step sizes > 0 and weight decay ≥ 0, each when concrete."""
    for name, v in (("eta1", eta1), ("lr", lr)):
        if _concrete(v) and _checks.check_nonneg_float(name, v) == 0:
            raise InputError(f"{name} must be > 0, got {v!r}")
    if _concrete(weight_decay):
        _checks.check_nonneg_float("weight_decay", weight_decay)


def _check_training(trainable, loss) -> None:
    """The leaves of steps t ≥ 2 and a margin loss (ℓ'(0) < 0 makes step 1's features)."""
    if trainable not in ("a", "all"):
        raise InputError(f"trainable must be 'a' (the paper's t ≥ 2) or 'all', got {trainable!r}")
    if not get_loss(loss).margin:
        raise InputError(f"loss must be a margin loss ('hinge' or 'logistic'), got {loss!r}")


def _check_init(w_std, b_std, a_std) -> None:
    """Init scales ≥ 0, and w, a not identically zero (then G = 0)."""
    for name, v in (("w_std", w_std), ("b_std", b_std), ("a_std", a_std)):
        _checks.check_nonneg_float(name, v)
    if a_std == 0 or w_std == 0:
        raise InputError("w_std and a_std must be > 0 (a zero init has no gradient feature)")


def _check_feature_set(dist, directions, gamma, B_G) -> None:
    """The gradient feature set S_{p,γ,B_G}: non-zero directions D_j in R^dim, γ in [0, 2]."""
    r, d = _checks.check_ndim("directions", directions, 2, "(r, dim)")
    if d != dist.dim or r == 0 or not np.all(np.linalg.norm(np.asarray(directions), axis=1) > 0):
        raise InputError(
            f"directions must have shape (r, dim) = (r, {dist.dim}) with non-zero rows"
        )
    g = _checks.check_nonneg_float("gamma", gamma)
    if g > 2:
        raise InputError(f"gamma must be in [0, 2] (cosine ≥ 1 − γ), got {gamma}")
    _checks.check_nonneg_float("B_G", B_G)


def _concrete(x) -> bool:
    return _checks.is_concrete(x) and not isinstance(x, (jax.Array, np.ndarray))


# long: one signature line per procedure knob, each documented below
def gradient_features(
    key: PRNGKeyArray,
    dist: Distribution,
    *,
    directions: Float[ArrayLike, "r dim"],
    width=128,
    max_width: int | None = None,
    n=500,
    n_capacity: int | None = None,
    n_test: int = 2048,
    eta1=1.0,
    decay_a: bool = False,
    lr=1.0,
    steps: int = 300,
    log_every: int | None = None,
    weight_decay=1e-4,
    trainable: str = "a",
    train_bias: bool = False,
    loss: str = "hinge",
    online: bool = False,
    w_std: float = 1.0,
    b_std: float = 0.1,
    a_std: float = 1.0,
    gamma: float = 0.1,
    B_G: float = 0.0,
    ridges=RIDGES,
) -> dict[str, Array]:
    """One seed of Algorithm 1 and its fixed-feature baselines on the same samples (defaults:
    the `gradient_features` experiment's `quick` preset).

    **Arguments:** `dist`: the data (labels ±1); `directions`: the ground-truth directions D_j
    (rows) of the gradient feature set (e.g. ±μ_j of an XOR mixture, 1_A of a parity);
    `width` (even; may be traced, then padded to `max_width`); `n` training and `n_test` test
    samples; `n_capacity`: a static capacity that makes `n` a dynamic size (traced under a
    scan: the seed runs on `n_capacity` rows of which the first n are live, with the numbers of
    the exact-size run, `jaxfeat._sized`; with `online`, the batches too); `eta1`: η⁽¹⁾
    (decay 1/η⁽¹⁾); `decay_a`: step 1 also moves a with that decay;
    `lr`, `steps`, `weight_decay`, `log_every`: the t ≥ 2 phase (SGD); `trainable`: `"a"` (the
    paper) or `"all"` (W, a, and b if `train_bias`); `loss`: `"hinge"` or `"logistic"`;
    `online`: fresh batches of n samples every step at t ≥ 2 instead of the fixed training set
    (the network's test error is then measured on its own fresh `n_test` samples);
    `w_std`, `b_std`, `a_std`: init w ~ N(0, w_std² I/d), b ~ N(0, b_std²), a ~ N(0, a_std²);
    `gamma`, `B_G`: the cone and norm of the gradient feature set; `ridges`: the relative
    ridges the baselines choose from by leave-one-out.

    **Returns:** `test_error` (learner: network, random_features, ntk, nngp), `train_error`
    (the network's), `bayes_error` (on the test sample), `network_test_error` (over the logged
    steps; step 0 is after step 1), `aligned_fraction` and `G_norm_quantiles` (10/50/90 %) from
    the exact G (NaN when `dist` has none), `aligned_fraction_empirical` from Ĝ, `G_error`
    (mean |Ĝ − G| over neurons, NaN without exact G), `baseline_ridge` (ρ chosen, per kernel
    method), `diverged`.
    """
    check_config(
        dist, width=width, max_width=max_width, n=n, n_capacity=n_capacity, n_test=n_test,
        eta1=eta1, lr=lr, steps=steps, log_every=log_every, weight_decay=weight_decay,
        trainable=trainable, loss=loss, w_std=w_std, b_std=b_std, a_std=a_std,
        directions=directions, gamma=gamma, B_G=B_G,
    )  # fmt: skip
    k_data, k_test, k_init, k_step1, k_train = jax.random.split(key, 5)
    live = None if n_capacity is None else n  # None: n is the static size itself
    X, y = dist.sample(k_data, n, capacity=n_capacity)
    data = Dataset(X, y, loss=loss, test=dist.sample(k_test, n_test), n=live)
    net0 = _symmetric_init(k_init, dist.dim, width, max_width, w_std, b_std, a_std)
    net1 = step_one(k_step1, net0, data, eta1, decay_a=decay_a)
    objective = Online(dist, n, loss, n_test=n_test, capacity=n_capacity) if online else data
    leaves = ("a",) if trainable == "a" else ("W", "b", "a") if train_bias else ("W", "a")
    net2, hist = later_steps(k_train, net1, objective, lr, steps, log_every, leaves, weight_decay)
    baselines = _baselines(net0, data, w_std, b_std, a_std, ridges)
    D = jnp.asarray(directions, X.dtype)
    features = _feature_statistics(dist, net0, data, D, gamma, B_G)
    return _outputs(dist, data, net2, hist, baselines, features)


def _symmetric_init(key, dim, width, max_width, w_std, b_std, a_std) -> TwoLayer:
    """Pairs (w, b, a), (w, b, −a) with w ~ N(0, w_std² I/d), b ~ N(0, b_std²), a ~ N(0, a_std²),
    so g ≡ 0 at init; padded to `max_width` (default `width`)."""
    return TwoLayer.init(
        key,
        width,
        dim,
        "relu",
        "symmetric",
        max_width=max_width or width,
        w_std=w_std,
        b_std=b_std,
        a_std=a_std,
    )


def later_steps(
    key: PRNGKeyArray, net: TwoLayer, objective, lr, steps: int, log_every, leaves, weight_decay
) -> tuple[TwoLayer, dict[str, Array]]:
    """Algorithm 1's steps t = 2, …, T: SGD(`lr`) with weight decay on `leaves` (("a",): the
    paper's online convex optimisation on the readout), through `jaxfeat.train`.

    **Returns:** `train`'s `(net, history)`."""
    return train(
        key,
        net,
        objective,
        optax.sgd(lr),
        steps=steps,
        log_every=log_every,
        trainable=leaves,
        weight_decay=weight_decay,
    )


def _outputs(dist, data: Dataset, net, hist, baselines, features) -> dict[str, Array]:
    """The flat dict `gradient_features` returns (its docstring lists the keys)."""
    errors, ridge = baselines
    assert data.test is not None  # gradient_features builds it with its test sample
    return {
        "test_error": jnp.stack([hist["test_error"][-1], *errors]),
        "train_error": data.evaluate(net)["error"],
        "bayes_error": bayes_error(dist, *data.test),
        "network_test_error": hist["test_error"],
        **features,
        "baseline_ridge": ridge,
        "diverged": hist["diverged"][-1],
    }


def _baselines(net0: TwoLayer, data: Dataset, w_std, b_std, a_std, ridges):
    """Test errors and chosen ridges of random features (net0's hidden layer, frozen), the NTK
    and the NNGP, each as kernel ridge regression on ±1 labels, trained on `data`'s live rows
    and tested on its test sample."""
    assert data.test is not None  # gradient_features builds it with its test sample
    X, y, (X_test, y_test) = data.X, data.y, data.test
    phi = jnp.where(net0.mask[None, :], net0.features(X), 0.0)
    phi_test = jnp.where(net0.mask[None, :], net0.features(X_test), 0.0)
    kernels = (
        (relu_ntk(X, X, w_std, b_std, a_std), relu_ntk(X_test, X, w_std, b_std, a_std)),
        (relu_nngp(X, X, w_std, b_std), relu_nngp(X_test, X, w_std, b_std)),
    )
    # random features: the kernel φφᵀ's ridge from the width×width side (width³, not n³)
    fits = [feature_ridge(phi, phi_test, y, ridges, data.n)]
    fits += [kernel_ridge(K, K_test, y, ridges, data.n) for K, K_test in kernels]
    errors = [jnp.mean(jnp.sign(pred) != jnp.sign(y_test)).astype(X.dtype) for pred, _ in fits]
    return errors, jnp.stack([rho for _, rho in fits])


def _feature_statistics(dist, net0, data: Dataset, D, gamma, B_G):
    """Step-1 gradient features at the init (w_i⁽⁰⁾, b_i): the aligned fraction from the exact
    G and from Ĝ (on `data`'s live rows), |G| quantiles over active neurons, and the mean
    |Ĝ − G|."""
    W, b, mask, X = net0.W, net0.b, net0.mask, data.X
    G_hat = empirical_gradient(X, data.y, W, b, data.n)
    out = {"aligned_fraction_empirical": aligned_fraction(G_hat, D, mask, gamma, B_G)}
    nan = jnp.asarray(jnp.nan, X.dtype)
    if not has_exact_gradient(dist):
        return out | {
            "aligned_fraction": nan,
            "G_norm_quantiles": jnp.full(len(QUANTILES), nan),
            "G_error": nan,
        }
    G = population_gradient(dist, W, b)
    G_norms: Array = jnp.linalg.norm(G, axis=1)
    norms = jnp.where(mask, G_norms, jnp.nan)
    G_errors: Array = jnp.linalg.norm(G_hat - G, axis=1)
    err = jnp.where(mask, G_errors, 0.0)
    return out | {
        "aligned_fraction": aligned_fraction(G, D, mask, gamma, B_G),
        "G_norm_quantiles": jnp.nanquantile(norms, jnp.asarray(QUANTILES, X.dtype)),
        "G_error": jnp.sum(err) / jnp.sum(mask),
    }


def xor_directions(dim: int, mu_norm: float = 1.0) -> np.ndarray:
    """The ground-truth directions of `GaussianMixture.xor(dim, mu_norm=...)`: its means
    ±μ_1, ±μ_2 (NumPy, so they are known in Python before anything is traced)."""
    e = mu_norm * np.eye(2, dim)
    return np.stack([e[0], -e[0], e[1], -e[1]])


def parity_directions(dim: int, support) -> np.ndarray:
    """±1_A/√k for a parity on support A: the direction its structured component's G takes."""
    v = np.zeros(dim)
    v[list(support)] = 1.0 / math.sqrt(len(support))
    return np.stack([v, -v])
