"""Figures and panels of the `spikes` scan (Moniri et al.): the spike phase diagram."""

from __future__ import annotations

import numpy as np

from .. import theory
from .._checks import InputError
from ..analysis import summarize
from ._style import (
    _axes_or_new,
    _cell_numbers,
    _facets,
    _fs,
    _over,
    _panels,
    _plain_log_ticks,
    _save,
    _seeds_label,
    _with_axes,
    json_attrs,
)


def spike_phase_diagram(ds, path: str, *, width=None) -> str:
    """Three panels from a `spikes` scan: the seed-averaged spike count over α × n with ℓ(α) and
    its thresholds drawn (`spike_count_heatmap`), the top singular values against the deflated
    edge, largest n (`singular_value_panel`), and the ridge test error of W₁ against W₀
    features versus α (`test_error_panel`). α and n fixed in the scan are drawn as one-value
    axes; every other grid axis (activation, c, …) gets its own row of panels (at most
    `_MAX_ROWS`; the title says which rows are shown). Only finished seeds that did not diverge
    are used. `width=` (`figure_width`): the figure's width; at "column" width the panels are
    stacked."""

    ds = _with_axes(ds, ("alpha", "n"))
    rows, note = _facets(ds, ("alpha", "n"))
    with _panels([[1, 1, 1]] * len(rows), 3, (5, 4.2), width, dpi=110) as (fig, axes):
        for k, (label, sel) in enumerate(rows):
            sub = ds.isel(sel, drop=True)
            sm = summarize(sub)
            _spike_heatmap(axes[3 * k], sub, sm, label)
            _spectra_panel(axes[3 * k + 1], sub, sm)
            _error_panel(axes[3 * k + 2], sm)
        if note:
            fig.suptitle(note, fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def spike_count_heatmap(ds, ax=None):
    """The spike-count panel of `spike_phase_diagram`: the seed mean of `n_outliers` (the spikes
    of F₁'s spectrum) over α (across) × n (up) as a heat map with a colour bar, "mean ± se" in
    each cell, colours from 0 to the largest predicted ℓ(α) (`spike_colour_limits`), ℓ(α)
    under each α and the thresholds between its values dotted.

    **Arguments:**

    - `ds`: a `spikes` scan; α and n are grid axes or fixed parameters, any other grid axis
      has one value (select one first: `ds.sel(activation="relu")`).
    - `ax`: the matplotlib axes to draw on; None: those of a new `Figure`.

    **Returns:** the axes.
    """
    ds = _one_spike_facet(ds)
    ax = _axes_or_new(ax, (5, 4.2))
    _spike_heatmap(ax, ds, summarize(ds), "")
    return ax


def singular_value_panel(ds, ax=None):
    """The singular-values panel of `spike_phase_diagram`: the top four singular values of F₁
    (seed means) divided by the deflated bulk edge, against α, at the scan's largest n (log
    scale; the edge dashed at 1: a spike is above it).

    **Arguments:** `ds` and `ax` as in `spike_count_heatmap`.

    **Returns:** the axes.
    """
    ds = _one_spike_facet(ds)
    ax = _axes_or_new(ax, (5, 4.2))
    _spectra_panel(ax, ds, summarize(ds))
    return ax


def test_error_panel(ds, ax=None):
    """The test-error panel of `spike_phase_diagram`: the ridge readout's test MSE (best λ; seed
    mean ± se) on the features after the step, F₁ (solid), and before it, F₀ (dashed),
    against α, one line per n.

    **Arguments:** `ds` and `ax` as in `spike_count_heatmap`.

    **Returns:** the axes.
    """
    ds = _one_spike_facet(ds)
    ax = _axes_or_new(ax, (5, 4.2))
    _error_panel(ax, summarize(ds))
    return ax


def _one_spike_facet(ds):
    """A `spikes` scan with α and n as axes and no other grid axis (InputError naming `ds` if
    one has several values)."""
    ds = _with_axes(ds, ("alpha", "n"))
    others = [d for d in ds["diverged"].dims if d not in ("alpha", "n", "seed")]
    several = [d for d in others if ds.sizes[d] > 1]
    if several:
        raise InputError(
            f"ds has several values of {', '.join(several)}: a panel draws one; select it first, "
            f"e.g. ds.isel({several[0]}=0)"
        )
    return ds.isel({d: 0 for d in others}, drop=True)


def spike_colour_limits(alphas, counts) -> dict:
    """Colour limits of the spike-count heat map fixed by the theory, not by the data: 0 to the
    largest ℓ(α) predicted on the α axis (at least 1), widened only if a measured mean exceeds
    it, so a figure's colours mean the same spike counts in every scan and panel."""
    finite_alphas = [float(a) for a in alphas if float(a) < 0.5]  # ℓ(½) = ∞: no finite limit
    predicted = max((theory.predicted_spike_count(a) for a in finite_alphas), default=1)
    finite = np.asarray(counts, float)[np.isfinite(counts)]
    top = max(1, predicted, int(np.ceil(finite.max())) if finite.size else 0)
    return {"vmin": 0, "vmax": top}


def _predicted_label(alpha: float) -> str:
    """ℓ(α) as a tick label; "∞" at the giant step α = ½, where the theory has no finite ℓ."""
    return "∞" if alpha >= 0.5 else str(theory.predicted_spike_count(alpha))


def _spike_heatmap(ax, ds, sm, label) -> None:
    """`spike_count_heatmap` from `ds`'s summary `sm`; `label` names the row in the title. A
    one-point scan is drawn as a point with error bars (`_spike_point`)."""
    if ds["alpha"].size == 1 and ds["n"].size == 1:
        return _spike_point(ax, ds, sm, label)
    alphas = np.asarray(ds["alpha"].values, float)
    ns = np.asarray(ds["n"].values)
    counts = _over(sm["n_outliers"].sel(stat="mean"), ("n", "alpha"))
    se = _over(sm["n_outliers"].sel(stat="se"), ("n", "alpha"))
    im = ax.imshow(
        counts,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        extent=(-0.5, len(alphas) - 0.5, -0.5, len(ns) - 0.5),
        **spike_colour_limits(alphas, counts),
    )
    ax.figure.colorbar(im, ax=ax, label="mean spike count")
    top = im.get_clim()[1]
    dark = lambda v: "k" if v > 0.6 * top else "w"  # noqa: E731 - text readable on the colour
    _cell_numbers(ax, counts, se, ".2f", fontsize=_fs(7), color=dark)
    finite = "predicted_spikes" in sm  # stores before 0.2 do not have it
    if finite:
        pred = _over(sm["predicted_spikes"].sel(stat="mean"), ("n", "alpha"))
        for (i, j), v in np.ndenumerate(pred):
            if np.isfinite(v):
                ax.text(j, i - 0.32, f"θ: {v:.1f}", ha="center", va="center",
                        fontsize=_fs(6), color=dark(counts[i, j]))  # fmt: skip
    ticks = [f"{a:g}\nℓ={_predicted_label(float(a))}" for a in alphas]
    ax.set_xticks(range(len(alphas)), ticks)
    ax.set_yticks(range(len(ns)), [str(n) for n in ns])
    for t in theory.spike_thresholds(6):  # theory boundaries, interpolated on the α ticks
        t = float(t)
        if len(alphas) > 1 and alphas.min() < t < alphas.max():
            x = np.interp(t, alphas, np.arange(len(alphas)))
            ax.axvline(x, color="w", ls=":", lw=1)
    ax.set_xlabel(r"$\alpha$   ($\eta = c\,n^{\alpha}$)")
    ax.set_ylabel("n = ñ")
    ax.set_title(_heatmap_title(ds, label, finite), fontsize=_fs(9))


def _heatmap_title(ds, label: str, finite: bool) -> str:
    title = (f"{label}: " if label else "") + f"spikes of F₁, {_seeds_label(ds)}"
    title += " (dotted: ℓ(α) thresholds)"
    if finite:
        title += "\nθ: the finite-size prediction (spike-part singular values > 0.75 × F₀ edge)"
    return title


def _lambda_rule(sm) -> str:
    """How the ridge λ behind `test_mse_w1` was set: fixed (one λ), by leave-one-out, or best on
    the test set (stores before 0.2 hold that oracle alone)."""
    lambdas = json_attrs(sm).get("lambdas")
    if isinstance(lambdas, (int, float)) or (isinstance(lambdas, list) and len(lambdas) == 1):
        value = lambdas if isinstance(lambdas, (int, float)) else lambdas[0]
        return f"λ = {value:g}"
    return "λ by leave-one-out" if "test_mse_w1_oracle" in sm else "λ best on test set"


def _spike_point(ax, ds, sm, label) -> None:
    """A one-point scan: the mean spike count ± se as a point at its α, ℓ(α) and the
    finite-size prediction beside it (a 1×1 heat map says less)."""
    alpha, n = float(ds["alpha"].values.ravel()[0]), int(ds["n"].values.ravel()[0])
    mean = float(np.ravel(sm["n_outliers"].sel(stat="mean").values)[0])
    se = float(np.ravel(sm["n_outliers"].sel(stat="se").values)[0])
    ax.errorbar([alpha], [mean], [se], fmt="o", capsize=3, label="measured (mean ± se)")
    ax.axhline(theory.predicted_spike_count(alpha), color="k", ls=":", label="ℓ(α), n → ∞")
    if "predicted_spikes" in sm:
        pred = float(np.ravel(sm["predicted_spikes"].sel(stat="mean").values)[0])
        ax.axhline(pred, color="C1", ls="--", label="finite-size prediction θ")
    ax.set_xlabel(r"$\alpha$   ($\eta = c\,n^{\alpha}$)")
    ax.set_ylabel("spike count")
    ax.set_ylim(bottom=-0.2)
    prefix = f"{label}: " if label else ""
    ax.set_title(f"{prefix}spikes of F₁ at n = ñ = {n}, {_seeds_label(ds)}", fontsize=_fs(9))
    ax.legend(fontsize=_fs(7))


def _spectra_panel(ax, ds, sm) -> None:
    """Top singular values of F₁ over the deflated edge at the largest n: seed mean ± se."""
    alphas = np.asarray(ds["alpha"].values, float)
    sel = {"n": -1}
    sv = _over(sm["singular_values"].sel(stat="mean").isel(sel), ("alpha", "k"))
    sv_se = _over(sm["singular_values"].sel(stat="se").isel(sel), ("alpha", "k"))
    edge = sm["deflated_edge"].sel(stat="mean").isel(sel)
    edge = _over(edge, ("alpha",))[:, 0] if edge.ndim > 1 else np.asarray(edge.values, float)
    for i in range(min(4, sv.shape[1])):
        ax.errorbar(
            alphas, sv[:, i] / edge, sv_se[:, i] / edge, fmt="o-", ms=3, capsize=2,
            label=rf"$s_{{{i + 1}}}$",
        )  # fmt: skip
    ax.axhline(1.0, color="k", ls="--", lw=1, label="deflated bulk edge")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel("singular value / edge (mean ± se)")
    ax.set_title(f"top singular values of F₁ (n = {ds['n'].values[-1]})")
    _plain_log_ticks(ax)
    ax.legend(fontsize=_fs(8))


def _error_panel(ax, sm) -> None:
    """Ridge test error of F₁ against α (mean ± se over seeds), one curve per n; F₀ does not
    depend on α, so it is one dashed level per n (mean over α and seeds, ± se band) in the
    colour of that n's F₁ curve."""
    alphas = np.asarray(sm["alpha"].values, float)
    m1, se1 = sm["test_mse_w1"].sel(stat="mean"), sm["test_mse_w1"].sel(stat="se")
    m0, se0 = sm["test_mse_w0"].sel(stat="mean"), sm["test_mse_w0"].sel(stat="se")
    ns = m1["n"].values if "n" in m1.dims else [None]
    for i, n in enumerate(ns):
        sel = {"n": i} if n is not None else {}
        y, e = (np.ravel(_over(v.isel(sel), ("alpha",))) for v in (m1, se1))
        line = ax.errorbar(alphas, y, e, marker="o", ms=3, capsize=2, label=f"F₁, n={n}")
        y0, e0 = (np.ravel(_over(v.isel(sel), ("alpha",))) for v in (m0, se0))
        if not np.isfinite(y0).any():  # no W₀ baseline in this scan (init_readout=False)
            continue
        level, band = np.nanmean(y0), np.sqrt(np.nanmean(e0**2))
        colour = line.lines[0].get_color()
        ax.axhline(level, color=colour, ls="--", lw=1, label=f"F₀, n={n}")
        ax.axhspan(level - band, level + band, color=colour, alpha=0.12, lw=0)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(f"test MSE ({_lambda_rule(sm)})")
    ax.set_title("ridge readout: after the step (F₁) and at init (F₀)")
    ax.legend(fontsize=_fs(7), ncol=2)
