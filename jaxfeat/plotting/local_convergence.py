"""Figures and panels of the Zhou–Ge `local_convergence` scan."""

from __future__ import annotations

import numpy as np

from ..analysis import recovery_probability
from ._style import (
    _MIN_WORDY_PANEL,
    _axes_or_new,
    _cell_numbers,
    _fs,
    _ok,
    _panels,
    _pow10,
    _save,
    _seeds_label,
    json_attrs,
)

_FAR_FLOOR = 1e-8


def local_convergence_figure(ds, path: str, *, width=None) -> str:
    """Zhou–Ge (`local_convergence` scan, arXiv 2406.01766), up to three rows. Row 1: the stage-3
    loss with and without decay (median and 10–90 % of seeds, phases marked, stage-1/2 losses as
    dashed lines); the far mass per seed; the effective weight near each teacher (mean ± se)
    against a*; `recovered` as a fraction ± se. Row 2 (scans with per-neuron outputs): neurons
    as points (`neuron_points_figure`). Row 3 (scans that sweep an axis other than `decay`):
    the recovery-probability heat map (`recovery_heatmap`). Rows 1–2 fix the other grid axes at
    their first value (named in the title). `width=`: the figure's width (`figure_width`); at
    "column" width the panels are stacked."""
    params = json_attrs(ds)
    extra = [d for d in ds["final_loss"].dims if d not in ("seed", "decay")]
    first = ds.isel({d: 0 for d in extra})
    sweep = _swept(ds)
    points = "neuron_angle" in ds
    layout = [[1, 1, 1]] * (1 + points) + [[2]] * bool(sweep)
    with _panels(layout, 3, (16 / 3, 4.6), width, 110, _MIN_WORDY_PANEL) as (fig, axes):
        _loss_row(axes[:3], first, params)
        if points:
            _neuron_panels(axes[3:6], first, params)
        if sweep:
            _recovery_panel(axes[-1], ds)
        if extra:
            fixed = ", ".join(f"{d}={first[d].values}" for d in extra)
            fig.suptitle(f"rows 1–2 fixed at: {fixed}", fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _loss_row(axes, ds, params):
    """Row 1 of `local_convergence_figure`: stage-3 loss curves, far mass per seed, and the
    effective weight at each teacher, with decay and the control side by side."""
    ax, bx, cx = axes
    decays = list(ds["decay"].values) if "decay" in ds.dims else [None]
    steps = np.asarray(ds["step"].values, float)
    # the loss is a difference of O(1) terms: below ~eps·L(0) it is round-off (even < 0)
    floor = 16 * np.finfo(ds["loss"].dtype).eps * float(np.nanmedian(ds["loss"].isel(step=0)))
    for i, dec in enumerate(decays):
        sub = ds if dec is None else ds.sel(decay=dec)
        ok = np.asarray(_ok(sub).values, bool)  # finished, not diverged
        label = "control (no decay)" if dec == 0 else r"weight decay $\lambda_0 2^{-p}$"
        curves = np.asarray(sub["loss"].values, float)[ok]
        if not len(curves):
            continue
        lo, mid, hi = np.nanquantile(np.maximum(curves, floor), [0.1, 0.5, 0.9], axis=0)
        (line,) = ax.plot(steps, mid, lw=1.5, label=label)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
        _far_mass_points(bx, sub, ok, i, line.get_color())
        near = np.asarray(sub["near_weight"].values, float)[ok]
        x = np.arange(near.shape[1]) + (i - 0.5 * (len(decays) - 1)) * 0.3
        se = near.std(0, ddof=1) / np.sqrt(len(near)) if len(near) > 1 else None
        cx.errorbar(
            x, near.mean(0), se, fmt="o", ms=4, capsize=3, color=line.get_color(), label=label
        )
    _stage_loss_axes(ax, ds, params, floor)
    _far_mass_axes(bx, decays)
    _near_weight_axes(cx, params, near.shape[1])


def _far_mass_points(bx, sub, ok, i, color) -> None:
    """Far mass of each seed (jittered around x = i) and the recovered fraction ± se."""
    far = np.asarray(sub["far_mass"].values, float)[ok]
    rng = np.random.default_rng(0)
    shown = np.maximum(far, _FAR_FLOOR)  # exact zeros would vanish from the log axis
    bx.scatter(i + 0.15 * rng.standard_normal(far.size), shown, s=6, color=color)
    rec = np.asarray(sub["recovered"].values, float)[ok]
    se = rec.std(ddof=1) / np.sqrt(rec.size) if rec.size > 1 else 0.0
    bx.text(i, 1e-9, f"recovered\n{rec.mean():.2f} ± {se:.2f}", ha="center", fontsize=_fs(8))


def _stage_loss_axes(ax, ds, params, floor) -> None:
    """Stage 1 and 2 loss levels, the round-off floor, phase marks and labels of the loss panel."""
    s2 = float(np.nanmedian(ds["loss_stage2"].values))
    s1 = float(np.nanmedian(ds["loss_stage1"].values))
    ax.axhline(
        s1, color="gray", ls="--", lw=1, label=f"population loss after stage 1 (median {s1:.2g})"
    )
    ax.axhline(
        s2, color="k", ls=":", lw=1, label=f"population loss after stage 2 (median {s2:.2g})"
    )
    ax.axhline(floor, color="r", ls=":", lw=1, label=f"{ds['loss'].dtype} round-off")
    spp = params.get("steps_per_phase")
    if spp:
        for p in range(1, int(params.get("phases", 1))):
            ax.axvline(p * spp, color="gray", lw=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("stage-3 step (thin lines: λ halves)")
    # stage 3's logged loss is the objective's: the training loss when trained on n samples
    sampled = "n" in ds.coords or params.get("n") is not None
    ax.set_ylabel("training loss on the n samples" if sampled else "population loss")
    ax.set_title(f"stage-3 loss, median and 10–90 % of {_seeds_label(ds)}")
    ax.legend(fontsize=_fs(7))


def _far_mass_axes(bx, decays) -> None:
    bx.axhline(1e-2, color="k", ls=":", lw=1)
    bx.axhline(_FAR_FLOOR, color="gray", lw=0.5)
    bx.set_yscale("log")
    bx.set_ylim(1e-10, None)
    bx.set_xticks(range(len(decays)), ["decay" if d else "control" for d in decays])
    bx.set_ylabel(r"far mass $\sum_i |\tilde a_i|$ (neurons far from every teacher)")
    bx.set_title(f"far mass per seed (dotted: {_pow10(1e-2)}; 0 drawn at {_pow10(_FAR_FLOOR)})")


def _near_weight_axes(cx, params, teachers) -> None:
    a_star = np.asarray(params.get("teacher", []), float)
    if a_star.size:
        cx.scatter(np.arange(a_star.size), a_star, marker="_", s=400, color="k", label=r"$a^*_j$")
    cx.set_xticks(range(teachers))
    cx.set_xlabel("teacher j")
    cx.set_ylabel(r"$\sum \tilde a_i$ within $\theta_{\rm near}$ of $\pm w^*_j$")
    cx.set_title("effective weight at each teacher (mean ± se)")
    cx.legend(fontsize=_fs(7))


_ANGLE_FLOOR, _WEIGHT_FLOOR = 1e-9, 1e-12


def neuron_points_figure(ds, path: str, *, width=None) -> str:
    """Zhou–Ge neurons as points (`local_convergence` scan with per-neuron outputs): angle to the
    nearest ±w*_j against |ã_i| = |a_i||w_i| for every neuron of every seed, before stage 3 and
    at the end with and without decay, θ_near drawn. Other grid axes at their first value.
    `width=`: the figure's width (`figure_width`)."""
    params = json_attrs(ds)
    extra = [d for d in ds["neuron_angle"].dims if d not in ("seed", "decay", "neuron")]
    with _panels([[1, 1, 1]], 3, (16 / 3, 4.6), width, 110, _MIN_WORDY_PANEL) as (fig, axes):
        _neuron_panels(axes, ds.isel({d: 0 for d in extra}), params)
        if extra:
            fixed = ", ".join(f"{d}={ds[d].values[0]}" for d in extra)
            fig.suptitle(f"fixed: {fixed}", fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _neuron_panels(axes, ds, params):
    """Three scatter panels: after stage 2 (stages 1–2 do not depend on `decay`: the decay runs'
    neurons), the end with decay, the end of the control; zeros drawn at the floors."""
    near = float(params.get("near", 0.15))
    decays = list(ds["decay"].values) if "decay" in ds.dims else [1.0]
    on = [d for d in decays if d != 0]
    off = [d for d in decays if d == 0]
    panels = [("_stage2", on[0] if on else decays[0], "before stage 3 (after the readout)")]
    panels += [("", d, r"end, weight decay $\lambda_0 2^{-p}$") for d in on[:1]]
    panels += [("", d, "end, control (no decay)") for d in off[:1]]
    for ax, (suffix, dec, title) in zip(axes, panels):
        sub = ds.sel(decay=dec) if "decay" in ds.dims else ds
        ok = np.asarray(_ok(sub).values, bool)  # finished, not diverged
        ang = np.asarray(sub[f"neuron_angle{suffix}"].values, float)[ok].ravel()
        wt = np.asarray(sub[f"neuron_weight{suffix}"].values, float)[ok].ravel()
        keep = np.isfinite(ang) & np.isfinite(wt)  # padded neurons are NaN
        ang, wt = ang[keep], wt[keep]
        alpha = float(np.clip(2000 / max(ang.size, 1), 0.15, 0.8))  # thousands of points
        x, y = np.maximum(ang, _ANGLE_FLOOR), np.maximum(wt, _WEIGHT_FLOOR)
        ax.scatter(x, y, s=5, alpha=alpha, lw=0)
        ax.axvline(near, color="k", ls=":", lw=1, label=rf"$\theta_{{\rm near}}$ = {near:g}")
        far = ang >= near
        ax.set_title(
            f"{title}\n{int(ok.sum())} seeds: far mass median "
            f"{np.median(_per_seed(sub, suffix, near, ok)):.2g}; "
            f"{np.mean(wt[far] > 1e-3) if far.any() else 0:.0%} of far neurons carry "
            r"$|\tilde a| > 10^{-3}$",
            fontsize=_fs(9),
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(rf"angle to nearest $\pm w^*_j$ (rad; 0 drawn at {_pow10(_ANGLE_FLOOR)})")
        ax.legend(fontsize=_fs(7), loc="lower left")
    axes[0].set_ylabel(rf"$|\tilde a_i| = |a_i|\,|w_i|$  (0 drawn at {_pow10(_WEIGHT_FLOOR)})")
    lo = np.array([[*ax.get_xlim(), *ax.get_ylim()] for ax in axes])
    for ax in axes:  # one scale for the three panels
        ax.set_xlim(lo[:, 0].min(), lo[:, 1].max())
        ax.set_ylim(lo[:, 2].min(), lo[:, 3].max())


def _per_seed(sub, suffix, near, ok):
    ang = np.asarray(sub[f"neuron_angle{suffix}"].values, float)[ok]
    wt = np.asarray(sub[f"neuron_weight{suffix}"].values, float)[ok]
    return np.nansum(np.where(ang >= near, wt, 0.0), axis=-1)


def _swept(ds) -> list:
    """Grid axes of a local_convergence scan with more than one value, other than `decay`."""
    dims = ds["recovered"].dims
    return [d for d in dims if d not in ("seed", "decay") and ds.sizes[d] > 1]


def recovery_heatmap(ds, path: str, axes=None, *, width=None) -> str:
    """P(recovered) of a `local_convergence` scan over two grid axes (`recovery_panel`), saved to
    `path`; `width=`: the figure's width (`figure_width`)."""
    with _panels([[1]], 1, (8, 4.6), width, dpi=110) as (fig, (ax,)):
        _recovery_panel(ax, ds, axes)
        fig.tight_layout()
        _save(fig, path)
    return path


def recovery_panel(ds, ax=None, axes=None):
    """The recovery-probability heat map of a `local_convergence` scan: P(recovered) per grid
    point over two grid axes, the estimate and its 95 % Wilson interval over the finished seeds
    in each cell (`jaxfeat.analysis.recovery_probability`), with a colour bar from 0 to 1. Swept
    axes beyond the two are fixed at their first value and named in the title.

    **Arguments:**

    - `ds`: a `local_convergence` scan that sweeps a grid axis other than `decay`.
    - `ax`: the matplotlib axes to draw on; None: those of a new `Figure`.
    - `axes`: the grid axes drawn across and up (default: width across and the next swept axis
      up); one axis gives a single row.

    **Returns:** the axes.
    """
    ax = _axes_or_new(ax, (8, 4.6))
    _recovery_panel(ax, ds, axes)
    return ax


def _heat_axes(ds, axes=None):
    swept = _swept(ds)
    if axes is None:
        x = "width" if "width" in swept else swept[0]
        ys = [d for d in swept if d != x]
        axes = (x, ys[0]) if ys else (x,)
    fixed = {d: ds[d].values[0] for d in swept if d not in axes}
    return tuple(axes), fixed


def _recovery_panel(ax, ds, axes=None):
    """The recovery-probability heat map of a Zhou–Ge scan, P ± se in the cells."""
    axes, fixed = _heat_axes(ds, axes)
    pr = recovery_probability(ds, fixed)
    rest = [d for d in pr["p"].dims if d not in axes]  # size-1 axes (e.g. a one-value n)
    pr = pr.isel({d: 0 for d in rest})
    x, y = axes[0], (axes[1] if len(axes) > 1 else None)
    order = (y, x) if y else (x,)
    p = np.atleast_2d(pr["p"].transpose(*order).values)
    lo, hi = (np.atleast_2d(pr[k].transpose(*order).values) for k in ("lo", "hi"))
    im = ax.imshow(p, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.figure.colorbar(im, ax=ax, label="P(recovered)")
    # P and its 95 % Wilson interval (not empty at 0 or 1, where ± se is)
    dark = lambda v: "k" if v > 0.6 else "w"  # noqa: E731 - text readable on the colour
    _cell_numbers(ax, p, hi, ".2f", fontsize=_fs(7), color=dark, low=lo)
    ax.set_xticks(range(p.shape[1]), [str(v) for v in ds[x].values])
    ax.set_xlabel(x)
    if y:
        ax.set_yticks(range(p.shape[0]), [str(v) for v in ds[y].values])
        ax.set_ylabel(y)
    else:
        ax.set_yticks([])
    lo, hi = int(pr["seeds"].min()), int(pr["seeds"].max())  # finished seeds per point
    n = str(lo) if lo == hi else f"{lo}–{hi}"
    title = f"P(recovered) with decay, 95 % Wilson interval over {n} seeds"
    swept = _swept(ds)
    if len(swept) > len(axes):
        title += f"\naxes {' × '.join(axes)} of {', '.join(swept)}; fixed " + ", ".join(
            f"{d}={v}" for d, v in fixed.items()
        )
    ax.set_title(title, fontsize=_fs(9))
    return title
