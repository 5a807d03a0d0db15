"""The figure of a training scan over width × learning rate (`teacher_student`)."""

from __future__ import annotations

import numpy as np

from ._style import (
    _MIN_WORDY_PANEL,
    _fs,
    _labels,
    _numeric,
    _ok,
    _over,
    _panels,
    _save,
    _seeds_label,
    json_attrs,
)


def training_curves(ds, path: str, *, width=None) -> str:
    """Three panels from a training scan over width × learning rate (`teacher_student`): loss
    curves (median over seeds, 10–90 % band) per width at the learning rate with the lowest
    final loss; the median final loss over width × lr with the fraction of diverged seeds; and
    the final loss against width (median and 10–90 % over the seeds that did not diverge), one
    line per lr. Every panel shows medians: final losses span orders of magnitude, and a few
    seeds stalled at a saddle would set a mean. Grid axes other than width and lr are fixed at
    their first value; the set-up (d, teacher, activation, steps) is stated in the title.
    `width=`: the figure's width (`figure_width`)."""
    ok = _ok(ds)
    extra = [d for d in ds["final_loss"].dims if d not in ("seed", "width", "lr")]
    fixed = {d: 0 for d in extra}
    note = ", ".join(f"{d}={ds[d].values[0]}" for d in extra)
    curves = _over(ds["loss"].where(ok).isel(fixed), ("width", "lr", "seed", "step"))
    final = _over(ds["final_loss"].where(ok).isel(fixed), ("width", "lr", "seed"))
    bad = _over(ds["diverged"].isel(fixed), ("width", "lr", "seed"))
    widths = _labels(ds, "width", curves.shape[0])
    lrs = _labels(ds, "lr", curves.shape[1])
    # L = aᵀKa − 2aᵀK*a* + a*ᵀK**a* cancels: below ~eps·L(0) a loss is round-off (even < 0)
    floor = 16 * np.finfo(ds["loss"].dtype).eps * np.nanmedian(curves[..., 0])
    curves, final = np.maximum(curves, floor), np.maximum(final, floor)
    with np.errstate(all="ignore"):
        med_final = np.nanmedian(final, axis=2)
    best = int(np.nanargmin(np.where(np.isnan(med_final[-1]), np.inf, med_final[-1])))
    steps = np.asarray(ds["step"].values, float)
    wordy = _MIN_WORDY_PANEL
    with _panels([[1, 1, 1]], 3, (16 / 3, 4.4), width, 110, wordy) as (fig, (ax, bx, cx)):
        _curves_panel(ax, steps, curves[:, best], widths, floor, ds["loss"].dtype)
        ax.set_title(f"lr = {lrs[best]}: median and 10–90 % of {_seeds_label(ds)}")
        _final_loss_panel(bx, med_final, bad.mean(axis=2), widths, lrs)
        _loss_against_width_panel(cx, final, widths, lrs, floor, ds["loss"].dtype)
        fig.suptitle(_setup(ds) + (f"; fixed: {note}" if note else ""), fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _setup(ds) -> str:
    """'student–teacher on the exact population loss: d = 20, 4 teachers, sigma_ge2, 2000 SGD
    steps' from the scan's parameters (what is swept is left out)."""
    p = json_attrs(ds)
    parts = []
    if "dim" in p:
        parts.append(f"d = {p['dim']}")
    if isinstance(p.get("teacher"), (list, tuple)):
        parts.append(f"{len(p['teacher'])} teachers")
    if "activation" in p:
        parts.append(str(p["activation"]))
    if "steps" in p:
        parts.append(f"{p['steps']} SGD steps")
    return "student–teacher on the exact population loss: " + ", ".join(parts)


def _curves_panel(ax, steps, curves, widths, floor, dtype) -> None:
    """Median and 10–90 % band over seeds of each width's loss curve (`curves`: width, seed,
    step), with the dtype's round-off floor."""
    for i, w in enumerate(widths):
        c = curves[i]
        if np.all(np.isnan(c)):
            continue
        lo, mid, hi = np.nanquantile(c, [0.1, 0.5, 0.9], axis=0)
        (line,) = ax.plot(steps, mid, lw=1.5, label=f"width {w}")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(floor, color="k", ls=":", lw=1, label=f"{dtype} round-off")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("population loss E(f − f*)²")
    ax.legend(fontsize=_fs(8))


def _final_loss_panel(bx, med_final, diverged, widths, lrs) -> None:
    """Heat map of the median final loss over width × lr, the diverged fraction in the cells."""
    im = bx.imshow(np.log10(med_final), origin="lower", aspect="auto", cmap="viridis")
    bx.figure.colorbar(im, ax=bx, label=r"$\log_{10}$ median final loss")
    bx.set_xticks(range(len(lrs)), [str(v) for v in lrs])
    bx.set_yticks(range(len(widths)), [str(v) for v in widths])
    for i in range(len(widths)):
        for j in range(len(lrs)):
            if diverged[i, j] > 0:
                text = f"{100 * diverged[i, j]:.0f}% div."
                bx.text(j, i, text, ha="center", color="w", fontsize=_fs(7))
    bx.set_xlabel("learning rate")
    bx.set_ylabel("width")
    bx.set_title("final loss (diverged seeds excluded)")


def _loss_against_width_panel(cx, final, widths, lrs, floor, dtype) -> None:
    """Final loss (median, bars 10–90 % over the seeds that did not diverge) against width,
    per lr."""
    with np.errstate(all="ignore"):
        lo, mid, hi = np.nanquantile(final, [0.1, 0.5, 0.9], axis=2)
    err = np.stack([mid - lo, hi - mid])
    numeric = np.ndim(widths) and _numeric(widths)
    x = np.asarray(widths, float) if numeric else np.arange(len(widths))
    for j, lr in enumerate(lrs):
        if np.all(np.isnan(mid[:, j])):
            continue
        e = err[:, :, j]
        cx.errorbar(x, mid[:, j], e, marker="o", ms=3, capsize=2, label=f"lr {lr}")
    cx.axhline(floor, color="k", ls=":", lw=1, label=f"{dtype} round-off")
    cx.set_xscale("log", base=2)
    cx.set_yscale("log")
    cx.set_xlabel("width")
    cx.set_ylabel("final loss, median (bars: 10–90 %)")
    cx.set_title("final loss against width")
    cx.legend(fontsize=_fs(7), loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the data
