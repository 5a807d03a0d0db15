"""Zhou–Ge local convergence (MATH §5): the three stages with and without weight decay, seed by
seed; `decay` is a grid axis (on = the procedure, off = the control)."""

from __future__ import annotations

import numpy as np

from ..algorithms.local_convergence import local_convergence
from ..experiment import Experiment
from ..training import log_steps


def run(
    key,
    *,
    decay=1.0,
    width=50,
    max_width=None,
    dim=20,
    teacher=(1.0, 0.8, 1.2, -0.9),
    min_angle=None,
    init_scale=0.01,
    eta1=1.0,
    ridge=1e-3,
    lr=0.05,
    lambda0=1e-2,
    phases=6,
    steps_per_phase=4000,
    log_every=None,
    rebalance=False,
    near=0.15,
    n=None,
    per_neuron=True,
):
    """One seed; `decay` is 1 (λ₀ 2^{−p}) or 0 (the no-decay control)."""
    return local_convergence(
        key,
        dim=dim,
        teacher=tuple(teacher),
        min_angle=min_angle,
        width=width,
        max_width=max_width,
        init_scale=init_scale,
        eta1=eta1,
        ridge=ridge,
        lr=lr,
        decay=decay,
        lambda0=lambda0,
        phases=phases,
        steps_per_phase=steps_per_phase,
        log_every=log_every,
        rebalance=rebalance,
        near=near,
        n=n,
        per_neuron=per_neuron,
    )


def _steps(p):
    return log_steps(p["phases"] * p["steps_per_phase"], p["log_every"] or p["steps_per_phase"])


local_convergence_experiment = Experiment(
    name="local_convergence",
    fn=run,
    description="Zhou–Ge: one step, convex readout, GD with halving weight decay vs no decay",
    dynamic=frozenset({"decay", "width", "lr", "lambda0", "eta1", "ridge"}),
    padded={"width": "max_width"},
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
        # 414 s in float32 on 2 CPU cores, so 256 would take ≈ 28 min; n = 100 recovered no
        # seed of 16 at any width 4–32
        "paper_n": {
            "grid": {"decay": [1.0], "width": [4, 6, 8, 12, 16], "n": [250, 500, 1000]},
            "seeds": 256,
            "set": {"lr": 0.6, "steps_per_phase": 1000, "per_neuron": False},
        },
    },
    plot="local_convergence_figure",
)


def recovery_probability(ds, fixed=None):
    """P(recovered) per grid point of a `local_convergence` scan, with its seed standard error
    √(p(1−p)/(S−1)); diverged seeds count as not recovered. `decay` (if an axis) is taken at its
    non-zero value, and `fixed` selects values of other axes ({axis: value}).

    **Returns:** an xarray Dataset with `p`, `se` and `seeds` over the remaining grid axes.
    """
    rec = _recovered(ds, fixed)
    s = rec.count("seed")
    p = rec.mean("seed")
    out = p.to_dataset(name="p")
    out["se"] = np.sqrt(p * (1 - p) / np.maximum(s - 1, 1))
    out["seeds"] = s
    return out


def _recovered(ds, fixed):
    """1.0 (recovered) / 0.0 (not, or diverged) per finished seed, NaN for unfinished seeds of a
    partial store (`jaxfeat.open_scan`), at the decay axis's non-zero value and `fixed`."""
    import xarray as xr

    hit = (ds["recovered"] == 1) & ~ds["diverged"].astype(bool)
    fin = ds["finished"] if "finished" in ds else xr.ones_like(hit)
    rec = hit.astype(float).where(fin)
    sel = dict(fixed or {})
    if "decay" in rec.dims and "decay" not in sel:
        sel["decay"] = [v for v in ds["decay"].values if v != 0][0]
    return rec.sel(sel)


def recovery_threshold(ds, level=0.5, axis="width", fixed=None, boot=1000, seed=0):
    """The smallest value of `axis` (interpolated linearly in log₂ between grid points) at which
    P(recovered) first reaches `level`, per value of the other grid axes, with a bootstrap over
    seeds: median and the 16–84 % interval of `boot` resamples (NaN where the level is never
    reached; a resample that never reaches it counts as beyond the largest grid value).

    **Returns:** dict {other-axis value (or None): (estimate, low, high, fraction of resamples
    that reach the level)}.
    """
    rec = _recovered(ds, fixed)
    others = [d for d in rec.dims if d not in (axis, "seed")]
    if len(others) > 1:
        raise ValueError(f"fix all but one of {others} with `fixed`")
    x = np.log2(np.asarray(ds[axis].values, float))
    rng = np.random.default_rng(seed)
    out = {}
    for v in ds[others[0]].values if others else [None]:
        r = np.asarray((rec.sel({others[0]: v}) if others else rec).transpose(axis, "seed"))
        r = r[:, np.all(np.isfinite(r), axis=0)]  # seeds finished at every point of the curve
        est = _crossing(x, r.mean(1), level)
        idx = rng.integers(0, r.shape[1], (boot, r.shape[1]))
        bs = np.array([_crossing(x, r[:, i].mean(1), level) for i in idx])
        reached = np.isfinite(bs)
        lo, hi = np.quantile(np.where(reached, bs, np.inf), [0.16, 0.84], method="inverted_cdf")
        key = v.item() if hasattr(v, "item") else v
        out[key] = (2.0**est, 2.0**lo, 2.0**hi, reached.mean())
    return out


def _crossing(x, p, level):
    """First x where the piecewise-linear p(x) reaches `level` (NaN if it never does)."""
    hit = np.nonzero(p >= level)[0]
    if not hit.size:
        return np.nan
    i = hit[0]
    if i == 0:
        return x[0]
    return x[i - 1] + (level - p[i - 1]) / (p[i] - p[i - 1]) * (x[i] - x[i - 1])
