"""Teacher–student training on the exact population loss: loss curves over width × learning rate
(the example experiment of `jaxfeat.train`, DESIGN §7).

The teacher is f*(x) = Σ_j a*_j σ(e_j·x) with orthonormal directions; the student, of `width`
neurons drawn with `scheme`, is trained by SGD on E_x(f − f*)², x ~ N(0, I_d) (MATH §2.2), with
optional weight decay (λ/2)|θ|². Width (padded), learning rate and weight decay are dynamic grid
axes: a sweep over them is one compiled program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import _checks, plotting
from ..algorithms.local_convergence import neuron_statistics
from ..nets import TwoLayer
from ..objectives import Population
from ..training import log_steps, train
from ._experiment import Experiment

_TEACHER = (1.0, 0.8, 1.2, -0.9)  # a* of MATH §5.3


def _check_numbers(dim, **rates) -> None:
    """dim a positive int; the rates (each when concrete: a grid may vmap them) numbers ≥ 0."""
    _checks.check_positive_int("dim", dim)
    for name, v in rates.items():
        if _checks.is_concrete(v) and not isinstance(v, jax.Array):
            _checks.check_nonneg_float(name, v)


def run(
    key,
    *,
    width=50,
    max_width=None,
    dim=20,
    teacher=_TEACHER,
    activation="sigma_ge2",
    scheme="gaussian",
    w_std=1.0,
    lr=0.05,
    weight_decay=0.0,
    steps=2000,
    log_every=100,
    near=0.15,
):
    """One seed: train a width-`width` student (padded to `max_width`) for `steps` SGD steps.

    Returns the trajectories `loss`, `a_norm`, `W_norm` over the logged steps, the final loss, the
    best |cos| between each teacher direction and the student's neurons at the end, and how many
    neurons lie within angle `near` (radians) of ±w*_j (σ≥2 is even, so signs do not matter).
    """
    _check_numbers(dim, lr=lr, near=near, weight_decay=weight_decay)
    teacher_net = _teacher(teacher, int(dim), activation)
    net = TwoLayer.init(
        key, width, int(dim), activation, scheme, max_width=max_width or width, w_std=w_std
    )
    trained, hist = train(
        key,
        net,
        Population(teacher_net),
        optax.sgd(lr),
        steps=steps,
        log_every=log_every,
        weight_decay=weight_decay,
    )
    stats = neuron_statistics(
        trained.W, trained.a, trained.mask, teacher_net.W, teacher_net.a, near
    )
    return {k: hist[k] for k in ("loss", "a_norm", "W_norm")} | {
        "final_loss": hist["loss"][-1],
        "best_cosine": jnp.cos(stats["best_angle"]),
        "n_near": stats["n_near"],
        "diverged": hist["diverged"][-1],
    }


def _teacher(a_star, dim: int, activation) -> TwoLayer:
    """f*(x) = Σ_j a*_j σ(e_j·x): orthonormal teacher directions, the first coordinate axes."""
    a_star = jnp.asarray(a_star, dtype=jnp.zeros(()).dtype)
    k = a_star.shape[0]
    return TwoLayer(np.eye(k, dim), np.zeros(k), a_star, activation)


teacher_student_experiment = Experiment(
    name="teacher_student",
    fn=run,
    description="SGD on the exact population loss: loss curves over width × learning rate",
    dynamic=frozenset({"width", "lr", "weight_decay"}),
    padded={"width": "max_width"},
    dims={
        "loss": ("step",),
        "a_norm": ("step",),
        "W_norm": ("step",),
        "best_cosine": ("teacher",),
        "n_near": ("teacher",),
    },
    coords={
        "step": lambda p: log_steps(p["steps"], p["log_every"]),
        "teacher": lambda p: np.arange(len(p["teacher"])),
    },
    presets={
        "quick": {
            "grid": {"width": [4, 8, 16, 64], "lr": [0.02, 0.05, 0.2, 1.0]},
            "seeds": 16,
            "set": {"steps": 2000, "log_every": 50},
        },
        "paper": {
            "grid": {
                "width": [4, 8, 16, 32, 64, 128],
                "lr": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            },
            "seeds": 256,
            "set": {"steps": 10_000, "log_every": 100},
        },
    },
    plot=plotting.training_curves,
)
