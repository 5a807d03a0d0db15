"""The embedded default job: Hermite coefficients and a random-features ensemble over widths.

An ensemble of `TwoLayer` networks (len(widths) × seeds, padded and masked to one shape) gets its
second layer fitted by ridge regression on a single-index target; everything after argument
checks is one jitted program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import activations as _act
from .data import SingleIndex
from .nets import apply_ensemble, fit_readout, init_ensemble

DEMO_ACTIVATIONS = ("relu", "sigma_ge2", "tanh", "erf", "gelu", "softplus", "elu", "he2")


def coefficient_table(names=DEMO_ACTIVATIONS, degree: int = 6) -> str:
    """A text table of c_0..c_degree for the named activations."""
    head = f"{'activation':>12} " + " ".join(f"{'c' + str(k):>9}" for k in range(degree + 1))
    rows = [head]
    for name in names:
        c = _act.get(name).hermite_coefficients(degree)
        c = np.where(np.abs(c) < 5e-13, 0.0, c)  # print quadrature round-off as 0, not -0.00000
        rows.append(f"{name:>12} " + " ".join(f"{v:9.5f}" for v in c))
    return "\n".join(rows)


def random_features_demo(
    key,
    widths=(16, 64, 256),
    seeds: int = 8,
    dim: int = 16,
    n_train: int = 2000,
    n_line: int = 101,
    activation="relu",
    ridge: float = 1e-3,
):
    """Fit the readout of every ensemble member on y = He_1(β·x) + ½He_2(β·x) + 0.1 ε.

    Returns a dict of NumPy arrays: `t` (n_line,) positions along β, `target` (n_line,),
    `pred` (n_widths, seeds, n_line) predictions at x = tβ, `test_mse` (n_widths, seeds).
    """
    dist = SingleIndex(jnp.eye(1, dim)[0], [0.0, 1.0, 0.5 * np.sqrt(2.0)], noise=0.1)
    k_net, k_train, k_test = jax.random.split(key, 3)
    nets = init_ensemble(k_net, list(widths), dim, activation, "sphere", seeds=seeds, b_std=1.0)
    out = _fit_and_predict(nets, dist, k_train, k_test, n_train, n_line, ridge)
    return {k: np.asarray(v) for k, v in out.items()}


@functools.partial(jax.jit, static_argnums=(4, 5))
def _fit_and_predict(nets, dist, k_train, k_test, n_train, n_line, ridge):
    X, y = dist.sample(k_train, n_train)
    Xt, yt = dist.sample(k_test, n_train)
    fit = jax.vmap(jax.vmap(fit_readout, (0, None, None, None)), (0, None, None, None))
    fitted = fit(nets, X, y, ridge)
    t = jnp.linspace(-3.0, 3.0, n_line)
    line = t[:, None] * dist.beta[None, :]
    mse = jnp.mean((apply_ensemble(fitted, Xt) - yt[None, None, :]) ** 2, axis=-1) - dist.noise**2
    return {"t": t, "target": dist.link(t), "pred": apply_ensemble(fitted, line), "test_mse": mse}
