"""Width sweep: random-features ridge regression of a single-index target, test error vs width.

Widths are a dynamic grid axis padded to the largest width and masked, so the sweep is one
compiled program (DESIGN §4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _vocabulary, plotting
from ..data import SingleIndex
from ..nets import TwoLayer, fit_readout
from ._experiment import Experiment


def run(
    key,
    *,
    width=64,
    max_width=None,
    dim=16,
    n_train=2000,
    n_test=2000,
    activation="relu",
    scheme="sphere",
    b_std=1.0,
    ridge=1e-3,
    target=(0.0, 1.0, 0.7071067811865476),
    noise=0.1,
    init=None,
):
    """One seed: draw a width-`width` network with init `scheme` (padded to `max_width`), fit its
    readout by ridge on `n_train` samples, return the excess test MSE (test MSE − noise²) and the
    train MSE. `init` is the deprecated 0.1 name of `scheme` (`--set init=…` warns)."""
    if init is not None:
        _vocabulary.deprecated("random_features", "init=", "scheme=", stacklevel=3)
        scheme = init
    _checks.check_positive_int("dim", dim)
    _checks.check_positive_int("n_train", n_train)
    _checks.check_positive_int("n_test", n_test)
    if _checks.is_concrete(ridge) and not isinstance(ridge, jax.Array):
        _checks.check_nonneg_float("ridge", ridge)
    k_net, k_train, k_test = jax.random.split(key, 3)
    dist = SingleIndex(np.eye(1, dim)[0], list(target), noise=noise)
    net = TwoLayer.init(
        k_net, width, dim, activation, scheme, max_width=max_width or width, b_std=b_std
    )
    X, y = dist.sample(k_train, n_train)
    Xt, yt = dist.sample(k_test, n_test)
    net = fit_readout(net, X, y, ridge)
    return {
        "test_mse": jnp.mean((net(Xt) - yt) ** 2) - noise**2,
        "train_mse": jnp.mean((net(X) - y) ** 2),
    }


random_features_experiment = Experiment(
    name="random_features",
    fn=run,
    description="width sweep: random-features ridge test error vs width (padded, one compile)",
    dynamic=frozenset({"width", "ridge"}),
    padded={"width": "max_width"},
    presets={
        "quick": {"grid": {"width": [8, 16, 32, 64, 128, 256, 512]}, "seeds": 32, "set": {}},
        "paper": {
            "grid": {"width": [8, 16, 32, 64, 128, 256, 512, 1024, 2048], "ridge": [1e-4, 1e-2]},
            "seeds": 1000,
            "set": {"n_train": 4000},
        },
    },
    plot=plotting.width_sweep,
)
