"""Figures and panels of the `random_features` scans: width sweeps and ensembles."""

from __future__ import annotations

import numpy as np

from ..analysis import summarize
from ._style import _axes_or_new, _fs, _panels, _save, _seeds_label, json_attrs


def ensemble_predictions(result: dict, widths, path: str, *, width=None) -> str:
    """Plot an ensemble's predictions along a line (mean ± sd over seeds, per width) and f*;
    `width=` as in `figure_width`."""
    with _panels([[1]], 1, (6, 4), width, dpi=120) as (fig, (ax,)):
        t = result["t"]
        ax.plot(t, result["target"], "k--", lw=2, label="target f*(t)")
        for i, w in enumerate(widths):
            pred = result["pred"][i]
            mean, sd = pred.mean(0), pred.std(0)
            mse = result["test_mse"][i]
            label = f"width {w}: excess MSE {mse.mean():.3f} ± {mse.std() / np.sqrt(len(mse)):.3f}"
            (line,) = ax.plot(t, mean, lw=1.5, label=label)
            ax.fill_between(t, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("t  (x = t·β)")
        ax.set_ylabel("f(x)")
        ax.set_title(f"random-features ridge ensemble, {result['pred'].shape[1]} seeds per width")
        ax.legend(fontsize=_fs(8))
        fig.tight_layout()
        _save(fig, path)
    return path


def width_sweep(ds, path: str, *, width=None) -> str:
    """Seed-averaged test error (± standard error) against width, one curve per other axis value
    (`width_sweep_panel`); `width=` the figure's width (`figure_width`)."""
    with _panels([[1]], 1, (6, 4), width, dpi=120) as (fig, (ax,)):
        width_sweep_panel(ds, ax)
        fig.tight_layout()
        _save(fig, path)
    return path


def width_sweep_panel(ds, ax=None):
    """The panel of `width_sweep`: a `random_features` scan's excess test MSE (seed mean ± se)
    against the network width m (log–log), one curve per combination of the other grid axes.

    **Arguments:**

    - `ds`: a scan with a `width` grid axis and a `test_mse` output.
    - `ax`: the matplotlib axes to draw on; None: those of a new `Figure`.

    **Returns:** the axes.
    """
    ax = _axes_or_new(ax, (6, 4))
    sm = summarize(ds)
    m, se = sm["test_mse"].sel(stat="mean"), sm["test_mse"].sel(stat="se")
    others = [d for d in m.dims if d != "width"]
    stacked = m.stack(curve=others) if others else m.expand_dims(curve=[0])
    stacked_se = se.stack(curve=others) if others else se.expand_dims(curve=[0])
    for i in range(stacked.sizes["curve"]):
        label = str(stacked["curve"].values[i]) if others else None
        ax.errorbar(
            ds["width"].values,
            stacked.isel(curve=i).values,
            stacked_se.isel(curve=i).values,
            marker="o",
            ms=3,
            capsize=2,
            label=label,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width m")
    ax.set_ylabel("excess test MSE  (test MSE − noise², mean ± se)")
    p = json_attrs(ds)
    setup = ", ".join(
        f"{sym} = {p[k]:g}" for k, sym in (("n_train", "n"), ("dim", "d"), ("ridge", "λ"))
        if isinstance(p.get(k), (int, float))
    )  # fmt: skip
    ax.set_title(f"random-features ridge ({setup}), {_seeds_label(ds)}")
    if others:
        ax.legend(fontsize=_fs(8), title=", ".join(map(str, others)))
    return ax
