"""Zhou–Ge local convergence (MATH §5): the three stages with and without weight decay, seed by
seed; `decay` is a grid axis (on = the procedure, off = the control)."""

from __future__ import annotations

import numpy as np

from .. import plotting
from ..algorithms.local_convergence import local_convergence
from ..analysis import (  # noqa: F401  (re-exported: their home before 0.2)
    recovery_probability as recovery_probability,
    recovery_threshold as recovery_threshold,
)
from ..training import log_steps
from ._experiment import Experiment, keyword_defaults


def run(key, *, decay=1.0, **procedure):
    """One seed of `local_convergence(key, **procedure)`; `decay` is 1 (λ₀ 2^{−p}) or 0 (the
    no-decay control); a stored `teacher` (a JSON list) is passed as a tuple."""
    if "teacher" in procedure:
        procedure["teacher"] = tuple(procedure["teacher"])
    return local_convergence(key, decay=decay, **procedure)


def _steps(p):
    return log_steps(p["phases"] * p["steps_per_phase"], p["log_every"] or p["steps_per_phase"])


local_convergence_experiment = Experiment(
    name="local_convergence",
    fn=run,
    defaults=keyword_defaults(local_convergence) | keyword_defaults(run),
    description="Zhou–Ge: one step, convex readout, GD with halving weight decay vs no decay",
    dynamic=frozenset({"decay", "width", "lr", "lambda0", "eta1", "ridge"}),
    padded={"width": "max_width"},
    capacity={"n": "n_capacity"},
    dims={
        "loss": ("step",),
        "near_weight": ("teacher",),
        "n_near": ("teacher",),
        "best_angle": ("teacher",),
        **{f"neuron_{k}{s}": ("neuron",) for k in ("angle", "weight") for s in ("", "_stage2")},
    },
    coords={
        "step": _steps,
        "teacher": lambda p: np.arange(len(p["teacher"])),
        "neuron": lambda p: np.arange(p["max_width"] or p["width"]),
    },
    # padded neurons are NaN in the per-neuron outputs: only the losses flag a seed as diverged
    check=("final_loss", "loss_stage2"),
    presets={
        # MATH §5.3's size. Stage 3 needs lr × steps ≈ 600 a phase: MATH's 0.05 × 4,000 leaves
        # far mass ≈ 0.03 (5 % of 64 seeds recovered), 0.3 × 1,000 recovers 83 ± 5 %, and
        # 0.15 × 4,000, 0.3 × 2,000 and 0.6 × 1,000 all recover 64/64 (float32); the last is
        # the cheapest: `jaxfeat run` took 87 s (float32) and 113 s (--x64) on 2 CPU cores,
        # against 176 s (float32) at 0.15 × 4,000
        "quick": {
            "grid": {"decay": [1.0, 0.0]},
            "seeds": 64,
            "set": {"log_every": 125, "lr": 0.6, "steps_per_phase": 1000},
        },
        # P(recovered) over width × d with the exact population loss (decay only), 256 seeds
        # a point: 3,840 runs of 6,000 steps, 638 s in float32 on 2 CPU cores (widths up to
        # 12 only: every seed recovers from width 8 on)
        "paper_dim": {
            "grid": {"decay": [1.0], "width": [4, 5, 6, 8, 12], "dim": [10, 40, 160]},
            "seeds": 256,
            "set": {"lr": 0.6, "steps_per_phase": 1000, "per_neuron": False},
        },
        # P(recovered) over width × n fixed training samples at d = 20 (stage 1's gradient,
        # stage 2's ridge and stage 3's full-batch GD on the same n samples; final loss and
        # recovery measured in population). A step costs ∝ n·width·d: 64 seeds a point took
        # 414 s in float32 on 2 CPU cores, 256 (this preset) 4,495 s with the cores shared by
        # other jobs (≈ 28 min quiet); n = 100 recovered no seed of 16 at any width 4–32
        "paper_n": {
            "grid": {"decay": [1.0], "width": [4, 6, 8, 12, 16], "n": [250, 500, 1000]},
            "seeds": 256,
            "set": {"lr": 0.6, "steps_per_phase": 1000, "per_neuron": False},
        },
    },
    plot=plotting.local_convergence_figure,
)
