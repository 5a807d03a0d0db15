"""Figures users expect, and the panels they are made of.

Each figure function (`spike_phase_diagram`, `local_convergence_figure`, …) draws on a
`matplotlib.figure.Figure` of its own and saves it to `path`: no pyplot state, so importing
jaxfeat never changes a notebook's backend, and figures render without a screen. `width=`
sizes a figure for a paper: `"column"` (3.5 in, one column of a two-column paper), `"page"`
(7.0 in) or inches; the height follows, fonts shrink to at most 0.7× and panels that would be
too narrow side by side are stacked. PDFs embed TrueType fonts, never Type 3.

The panel functions (`spike_count_heatmap`, `singular_value_panel`, `test_error_panel`,
`recovery_panel`, `width_sweep_panel`) draw one panel onto a given matplotlib `ax` (a fresh
figure's when `ax` is None) and return it, to compose figures of one's own:

```python
fig = matplotlib.figure.Figure(figsize=(jf.plotting.figure_width("page"), 2.6))
ax, bx = fig.subplots(1, 2)
jf.plotting.spike_count_heatmap(ds.sel(activation="relu"), ax=ax)
jf.plotting.test_error_panel(ds.sel(activation="relu"), ax=bx)
fig.savefig("spikes.pdf")
```
"""

from __future__ import annotations

import contextlib

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from . import theory
from ._checks import InputError
from .analysis import recovery_probability, summarize

__all__ = [
    "bench_figure",
    "draw",
    "ensemble_predictions",
    "figure_width",
    "generic_scan",
    "gradient_features_figure",
    "local_convergence_figure",
    "neuron_points_figure",
    "recovery_heatmap",
    "recovery_panel",
    "singular_value_panel",
    "spike_colour_limits",
    "spike_count_heatmap",
    "spike_phase_diagram",
    "step_one_figure",
    "test_error_heatmap",
    "test_error_panel",
    "training_curves",
    "width_sweep",
    "width_sweep_panel",
]

# TrueType (42), not Type 3, fonts in PDF and PostScript: many venues reject Type 3
_SAVE_RC: dict = {"pdf.fonttype": 42, "ps.fonttype": 42}

_WIDTHS = {"column": 3.5, "page": 7.0}  # inches: one column of a two-column paper; the text width
_WIDTH_RANGE = (1.5, 50.0)
_MIN_PANEL = 2.2  # inches: narrower panels are stacked instead (tick labels and legends collide)
_MIN_WORDY_PANEL = 3.4  # the same for panels with long titles, labels and legends (Zhou–Ge)
_MIN_FONT_SCALE = 0.7  # 7 pt text at most shrunk: still readable in print
_MIN_POINTS = 5.5  # the smallest text (cell numbers, legends): smaller is unreadable in print
_PRINT_PIXELS = 2100  # a figure of given width is saved with at least this many pixels across


def figure_width(width) -> float | None:
    """The inches that a figure function's `width=` means.

    **Arguments:**

    - `width`: None (the figure's own size), `"column"` (3.5 in, one column of a two-column
      paper), `"page"` (7.0 in, the text width) or a number of inches (1.5 to 50).

    **Returns:** the width in inches, or None for None.

    **Raises:** `jaxfeat._checks.InputError` naming `width` for anything else.
    """
    if width is None:
        return None
    if isinstance(width, str) and width in _WIDTHS:
        return _WIDTHS[width]
    lo, hi = _WIDTH_RANGE
    real = (int, float, np.integer, np.floating)
    number = isinstance(width, real) and not isinstance(width, bool)
    if not number or not lo <= float(width) <= hi:  # NaN fails the comparison too
        raise InputError(
            f"width must be 'column' (3.5 in), 'page' (7.0 in) or inches from {lo:g} to {hi:g}, "
            f"got {width!r}"
        )
    return float(width)


def _save(fig: Figure, path: str, **kw) -> None:
    """`fig.savefig(path)` with embedded TrueType fonts (the figures go into papers)."""
    with matplotlib.rc_context(_SAVE_RC):
        fig.savefig(path, **kw)


def _subplots(*grid, figsize=None, dpi=None, **kw):
    """`plt.subplots` without pyplot: a fresh `Figure` and its axes."""
    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(*grid, **kw)


def _fs(points: float | int) -> float:
    """A font size of `points` at matplotlib's default 10 pt, scaled with the current font size
    (`_panels` shrinks it for narrow figures), never below `_MIN_POINTS`."""
    return max(_MIN_POINTS, points * matplotlib.rcParams["font.size"] / 10)


@contextlib.contextmanager
def _panels(rows, cols: int, panel, width=None, dpi=None, min_panel=_MIN_PANEL):
    """A fresh figure of panels and the style to draw it in: yields `(fig, axes)`, `axes` the
    panels in order. `rows` lists each row's panels as column spans (`[[1, 1, 1], [2]]`: three
    panels, then one two columns wide) on a grid of `cols` columns of `panel` = (w, h) inches.
    With `width` None the figure is cols·w wide, as drawn before `width=` existed; with a width
    (`figure_width`) the columns shrink to fit it, as many per row as are at least `min_panel`
    inches wide (the rest wrap below), the panels keep their proportions and fonts scale with
    them.
    Draw and save inside the block: fonts are fixed when text is created."""
    inches = figure_width(width)
    per_row = cols if inches is None else max(1, min(cols, int(inches // min_panel)))
    across = cols * panel[0] if inches is None else inches
    scale = across / per_row / panel[0]
    places = _place(rows, per_row)
    height = (1 + max(r for r, _, _ in places)) * panel[1] * scale
    rc = {}  # no width: the user's matplotlib style, as before `width=`
    if inches is not None:
        rc["font.size"] = 10 * min(1.0, max(_MIN_FONT_SCALE, scale))
        dpi = max(dpi or 100, min(300, _PRINT_PIXELS / inches))
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(across, height), dpi=dpi)
        grid = fig.add_gridspec(1 + max(r for r, _, _ in places), per_row)
        yield fig, [fig.add_subplot(grid[r, c : c + s]) for r, c, s in places]


def _place(rows, per_row: int) -> list[tuple[int, int, int]]:
    """(grid row, column, span) of each panel: rows of `_panels` wrapped at `per_row` columns."""
    places, r = [], -1
    for spans in rows:
        r, c = r + 1, 0
        for s in spans:
            s = min(s, per_row)
            if c + s > per_row:
                r, c = r + 1, 0
            places.append((r, c, s))
            c += s
    return places


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


def equivalence_figure(ds, path: str, *, width=None) -> str:
    """The `equivalence` scan (Moniri et al., Theorems 4.1–4.2): top row, one panel per α, the
    test-error gap |err(F₁) − err(F₀ + k terms)| against n (log–log, seed mean ± se of the
    per-seed gap), one line per k and F₀ itself, solid where the theory says the gap → 0
    (k ≥ ℓ(α)); bottom row, the test MSE of every feature map against α at the largest n, and
    the He₂ projection ĉ₂ of the learned predictor against α with the target's. λ is chosen by
    leave-one-out on the training sample."""
    ds = _with_axes(ds, ("alpha", "n"))
    facets, _ = _facets(ds, ("alpha", "n"))
    label, sel = facets[0]
    total = int(np.prod([ds.sizes[d] for d in sel])) if sel else 1
    ds = ds.isel(sel, drop=True)
    note = f"\nshowing {label} of {total} combinations (ds.sel(...) for others)" if sel else ""
    alphas = np.asarray(ds["alpha"].values, float)
    with _panels([[1] * len(alphas), [1, 1]], max(2, len(alphas)), (4.2, 3.6), width) as (
        fig,
        axes,
    ):
        for i, alpha in enumerate(alphas):
            _gap_vs_n_panel(axes[i], ds.isel(alpha=i), float(alpha))
        _errors_vs_alpha_panel(axes[len(alphas)], ds)
        _projection_panel(axes[len(alphas) + 1], ds, 2)
        for ax in axes[1 : len(alphas)]:  # one legend: the first panel's
            _drop_legend(ax)
        if len(alphas) > 2:  # the bottom row has room for it
            handles, labels = axes[0].get_legend_handles_labels()
            _drop_legend(axes[0])
            fig.legend(handles, labels, loc="lower right", ncol=2, fontsize=_fs(8), title="gap of")
        fig.suptitle(_equivalence_setup(ds) + note, fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _drop_legend(ax) -> None:
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()


def _equivalence_setup(ds) -> str:
    """The figure's title: what was run."""
    p = json_attrs(ds)
    size = "d = N = ratio·n" if p.get("dim") is None and p.get("width") is None else "d, N fixed"
    return (
        f"ridge readout on $F_1$ vs $F_0$ + k spike terms ({p.get('expansion')} basis); "
        f"{_seeds_label(ds)}\n{p.get('activation')}, f* Hermite coefficients "
        f"[{', '.join(f'{t:.3g}' for t in p.get('target') or ())}], noise "
        f"{p.get('noise')}, {size} (ratio {p.get('ratio')}), $\\eta = c\\,n^\\alpha$ with c = "
        f"{p.get('c')}, "
        + (f"{p['steps']} step(s), " if p.get("steps") else "")
        + "λ by leave-one-out"
    )


def _seed_gap(ds, name: str, feature: str):
    """Per-seed |err(F₁) − err(feature)| of output `name`, NaN where a seed is unusable."""
    gap = abs(ds[name].sel(features="F1") - ds[name].sel(features=feature))
    return gap.where(_ok(ds))


def _gap_vs_n_panel(ax, ds, alpha) -> None:
    ell, need = theory.predicted_spike_count(alpha), theory.vanishing_from(alpha)
    ns = np.asarray(ds["n"].values, float)
    for j, feature in enumerate(f for f in ds["features"].values if f != "F1"):
        k = 0 if feature == "F0" else int(str(feature).split("_")[1])
        g = _seed_gap(ds, "test_mse", str(feature))
        mean, se = g.mean("seed"), g.std("seed") / np.sqrt(g.count("seed"))
        label = "$F_0$" if k == 0 else f"$F_0$ + {k} term" + ("s" if k > 1 else "")
        ax.errorbar(
            ns, np.ravel(mean.values), np.ravel(se.values), marker="o", ms=3, capsize=2,
            ls="-" if k >= need else "--", label=label, color=f"C{j + 1}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ns, [f"{int(v)}" for v in ns])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("$n = \\tilde n$")
    ax.set_ylabel("$|\\mathrm{err}(F_1) - \\mathrm{err}(\\cdot)|$ (test, mean ± se)")
    edge = "" if need == ell else f" (+1: boundary, the term {need} is $O(1)$)"
    ax.set_title(
        f"$\\alpha$ = {alpha:g}: $\\ell(\\alpha)$ = {ell}{edge}\ntheory: gap → 0 for k ≥ {need} "
        "(solid), stays for k < " + str(need) + " (dashed)",
        fontsize=_fs(8),
    )
    ax.legend(fontsize=_fs(7), loc="best")


def _per_feature_against_alpha(ax, sub, values) -> None:
    """One line per feature map of `values(feature)` (per seed) against α: seed mean ± se over
    the finished seeds that did not diverge; colours as in the gap panels (F1 C0, F0 C1, …)."""
    ok = _ok(sub)
    alphas = np.asarray(sub["alpha"].values, float)
    for j, feature in enumerate(sub["features"].values):
        v = values(feature).where(ok)
        se = v.std("seed") / np.sqrt(v.count("seed"))
        ax.errorbar(
            alphas, np.ravel(v.mean("seed").values), np.ravel(se.values), marker="o", ms=3,
            capsize=2, label=str(feature).replace("spikes_", "F₀ + k="), color=f"C{j}",
        )  # fmt: skip
    ax.set_xlabel("α")


def _errors_vs_alpha_panel(ax, ds) -> None:
    sub = ds.isel(n=-1)
    _per_feature_against_alpha(ax, sub, lambda f: sub["test_mse"].sel(features=f))
    ax.set_ylabel("test MSE at the LOO λ (mean ± se)")
    ax.set_title(f"test error, n = {int(sub['n'])}", fontsize=_fs(9))
    ax.legend(fontsize=_fs(7), ncol=2)


def _projection_panel(ax, ds, k: int) -> None:
    sub = ds.isel(n=-1)
    proj = lambda f: sub["hermite_projection"].sel(features=f, degree=k)  # noqa: E731
    _per_feature_against_alpha(ax, sub, proj)
    target = float(sub["target_projection"].sel(degree=k).where(_ok(sub)).mean())
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target $c_{k}$ (test labels)")
    ax.set_ylabel(f"$\\hat c_{k} = E[\\hat f(x) h_{k}(\\beta\\cdot x)]$ (mean ± se)")
    ax.set_title(f"what the readout learned: degree {k}, n = {int(sub['n'])}", fontsize=_fs(9))
    ax.legend(fontsize=_fs(7), ncol=2, loc="center left")  # the target line is at the top


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


def _axes_or_new(ax, size):
    """`ax`, or the axes of a new `Figure` of `size` inches."""
    return ax if ax is not None else _subplots(figsize=size, dpi=110)[1]


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
    """`spike_count_heatmap` from `ds`'s summary `sm`; `label` names the row in the title."""
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
    ax.set_xlabel("α   (η = c·n^α)")
    ax.set_ylabel("n = ñ")
    prefix = f"{label}: " if label else ""
    title = f"{prefix}spikes of F₁, {_seeds_label(ds)} (dotted: ℓ(α) thresholds)"
    if finite:
        title += "\nθ: the finite-size prediction (spike-part singular values > 0.75 × F₀ edge)"
    ax.set_title(title, fontsize=_fs(9))


_MAX_ROWS = 4


def _with_axes(ds, names):
    """`ds` with each of `names` a dimension: a parameter fixed in the scan becomes an axis of
    length one holding its value (from the stored config)."""
    params = json_attrs(ds)
    for name in names:
        if name not in ds.dims:
            value = params.get(name)
            ds = ds.expand_dims({name: [value if value is not None else np.nan]})
    return ds


def _facets(ds, keep):
    """[(label, {dim: index})] over every combination of the grid axes not in `keep` (at most
    `_MAX_ROWS`), and a note naming what is shown."""
    import itertools

    others = [d for d in ds["diverged"].dims if d not in (*keep, "seed")]
    combos = list(itertools.product(*(range(ds.sizes[d]) for d in others)))
    rows = [
        (", ".join(f"{d}={ds[d].values[i]}" for d, i in zip(others, c)), dict(zip(others, c)))
        for c in combos
    ]
    note = ""
    if len(rows) > _MAX_ROWS:
        note = (
            f"showing {_MAX_ROWS} of {len(rows)} combinations of {', '.join(others)}; "
            "select with ds.sel(...) and call this function for the others"
        )
        rows = rows[:_MAX_ROWS]
    return rows, note


def _ok(ds):
    """Seeds to use: finished and not diverged."""
    ok = ~ds["diverged"]
    return ok & ds["finished"] if "finished" in ds else ok


def _seeds_label(ds) -> str:
    """'64 seeds', or for a partial scan '20 of 64 seeds (partial scan)' (the range over points
    when they differ)."""
    total = ds.sizes["seed"]
    if "finished" not in ds or bool(ds["finished"].all()):
        return f"{total} seeds"
    per = ds["finished"].sum("seed")
    lo, hi = int(per.min()), int(per.max())
    n = str(lo) if lo == hi else f"{lo}–{hi}"
    return f"{n} of {total} seeds (partial scan)"


def _over(da, order):
    """Values of `da` with dims ordered as `order` (missing dims of length 1 added)."""
    for d in order:
        if d not in da.dims:
            da = da.expand_dims(d)
    rest = [d for d in da.dims if d not in order]
    return np.asarray(da.isel({d: 0 for d in rest}).transpose(*order).values, float)


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
            label=f"s_{i + 1}",
        )  # fmt: skip
    ax.axhline(1.0, color="k", ls="--", lw=1, label="deflated bulk edge")
    ax.set_yscale("log")
    ax.set_xlabel("α")
    ax.set_ylabel("singular value / edge (mean ± se)")
    ax.set_title(f"top singular values of F₁ (n = {ds['n'].values[-1]})")
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
    ax.set_xlabel("α")
    honest = "test_mse_w1_oracle" in sm  # stores before 0.2 hold the oracle alone
    ax.set_ylabel("test MSE (λ by leave-one-out)" if honest else "test MSE (λ best on test set)")
    ax.set_title("ridge readout: after the step (F₁) and at init (F₀)")
    ax.legend(fontsize=_fs(7), ncol=2)


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
    ax.set_ylabel("excess test MSE")
    ax.set_title(f"random-features ridge, {_seeds_label(ds)}")
    if others:
        ax.legend(fontsize=_fs(8), title=", ".join(map(str, others)))
    return ax


def generic_scan(ds, path: str, *, width=None) -> str:
    """Fallback: each scalar output's seed mean (± se) against the first grid axis, one line per
    value of the second (other axes at their first value, named in the title); a scan of one
    point shows the means as points. `width=`: the figure's width (`figure_width`)."""

    sm = summarize(ds)
    grid = [d for d in ds["diverged"].dims if d != "seed"]
    names = [v for v in sm.data_vars if v != "n_seeds" and set(sm[v].dims) <= set(grid) | {"stat"}]
    count = max(1, len(names))
    fixed = {d: 0 for d in grid[2:]}
    with _panels([[1] * count], count, (4, 3.5), width, dpi=110) as (fig, axes):
        for ax, v in zip(axes, names):
            _generic_panel(ax, ds, sm[v].isel(fixed), grid)
            ax.set_title(str(v))
        note = ", ".join(f"{d}={ds[d].values[0]}" for d in fixed)
        fig.suptitle(f"mean ± se of {_seeds_label(ds)}" + (f"; fixed: {note}" if note else ""))
        fig.tight_layout()
        _save(fig, path)
    return path


def _generic_panel(ax, ds, stats, grid) -> None:
    """One output's seed mean ± se (`stats`, a summary) against `grid[0]`, a line per value of
    `grid[1]`; a point when there is no grid."""
    m, se = stats.sel(stat="mean"), stats.sel(stat="se")
    if not grid:
        ax.errorbar([0], [float(m)], [float(se)], marker="o", capsize=2)
        ax.set_xticks([])
        return
    lines = ds[grid[1]].values if len(grid) > 1 else [None]
    for i, val in enumerate(lines):
        sel = {grid[1]: i} if val is not None else {}
        ax.errorbar(
            ds[grid[0]].values,
            np.ravel(m.isel(sel).transpose(grid[0]).values),
            np.ravel(se.isel(sel).transpose(grid[0]).values),
            marker="o",
            ms=3,
            capsize=2,
            label=None if val is None else f"{grid[1]}={val}",
        )
    ax.set_xlabel(grid[0])
    if len(grid) > 1:
        ax.legend(fontsize=_fs(7))


def training_curves(ds, path: str, *, width=None) -> str:
    """Three panels from a training scan over width × learning rate (`teacher_student`): loss
    curves (median over seeds, 10–90 % band) per width at the learning rate with the lowest
    final loss; the median final loss over width × lr with the fraction of diverged seeds; and
    the final loss against width (mean ± se over the seeds that did not diverge), one line per
    lr. Grid axes other than width and lr are fixed at their first value (named in the title).
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
        if note:
            fig.suptitle(f"fixed: {note}", fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


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
    bx.figure.colorbar(im, ax=bx, label="log10 median final loss")
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
    """Final loss (mean ± se over the seeds that did not diverge) against width, per lr."""
    n = np.sum(np.isfinite(final), axis=2)
    with np.errstate(all="ignore"):
        mean = np.nanmean(final, axis=2)
        se = np.nanstd(final, axis=2, ddof=1) / np.sqrt(n)
    numeric = np.ndim(widths) and _numeric(widths)
    x = np.asarray(widths, float) if numeric else np.arange(len(widths))
    for j, lr in enumerate(lrs):
        if np.all(np.isnan(mean[:, j])):
            continue
        cx.errorbar(x, mean[:, j], se[:, j], marker="o", ms=3, capsize=2, label=f"lr {lr}")
    cx.axhline(floor, color="k", ls=":", lw=1, label=f"{dtype} round-off")
    cx.set_xscale("log", base=2)
    cx.set_yscale("log")
    cx.set_xlabel("width")
    cx.set_ylabel("final loss, mean ± se")
    cx.set_title("final loss against width")
    cx.legend(fontsize=_fs(7))


def _labels(ds, dim, size):
    return list(ds[dim].values) if dim in ds.dims else [ds.attrs.get(dim, "")] * size


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.number)) for v in values)


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
        label = "control (no decay)" if dec == 0 else "weight decay λ₀2^(−p)"
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
    bx.set_ylabel("far mass Σ|ã_i| (neurons far from every teacher)")
    bx.set_title(f"far mass per seed (dotted: 10⁻²; 0 drawn at {_FAR_FLOOR:g})")


def _near_weight_axes(cx, params, teachers) -> None:
    a_star = np.asarray(params.get("teacher", []), float)
    if a_star.size:
        cx.scatter(np.arange(a_star.size), a_star, marker="_", s=400, color="k", label="a*")
    cx.set_xticks(range(teachers))
    cx.set_xlabel("teacher j")
    cx.set_ylabel("Σ ã_i within θ_near of ±w*_j")
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
    panels += [("", d, "end, weight decay λ₀2^(−p)") for d in on[:1]]
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
        ax.axvline(near, color="k", ls=":", lw=1, label=f"θ_near = {near:g}")
        far = ang >= near
        ax.set_title(
            f"{title}\n{int(ok.sum())} seeds: far mass median "
            f"{np.median(_per_seed(sub, suffix, near, ok)):.2g}; "
            f"{np.mean(wt[far] > 1e-3) if far.any() else 0:.0%} of far neurons carry |ã| > 10⁻³",
            fontsize=_fs(9),
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"angle to nearest ±w*_j (rad; 0 drawn at {_ANGLE_FLOOR:g})")
        ax.legend(fontsize=_fs(7), loc="lower left")
    axes[0].set_ylabel(f"|ã_i| = |a_i||w_i|  (0 drawn at {_WEIGHT_FLOOR:g})")
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


def _cell_numbers(ax, mean, se, fmt: str, *, fontsize, color, low=None) -> None:
    """Write "mean ± se" in each cell of an `imshow` of `mean` (rows = image y), in
    `color(value)`; with `low`, "mean [low, se]": an interval (low, high) in place of ± se."""
    for i, j in np.ndindex(mean.shape):
        if low is None:
            text = f"{mean[i, j]:{fmt}}\n±{se[i, j]:{fmt}}"
        else:
            text = f"{mean[i, j]:{fmt}}\n[{low[i, j]:{fmt}}, {se[i, j]:{fmt}}]"
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color(mean[i, j]))


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


# ---------------------------------------------------------------------------------------------
# Shi–Wei–Liang gradient features
# ---------------------------------------------------------------------------------------------

_GF_X = ("k", "dim", "n", "width")
_GF_STYLE = {
    "network": ("C0", "o", "network (Algorithm 1)"),
    "random_features": ("C1", "s", "random features"),
    "ntk": ("C2", "^", "NTK"),
    "nngp": ("C3", "v", "NNGP"),
}


def _gf_axes(ds):
    """(x axis, facet axis or None) among the swept grid axes of a gradient_features scan."""
    swept = [a for a in _GF_X if a in ds.dims and ds.sizes[a] > 1]
    x = swept[0] if swept else None
    return x, (swept[1] if len(swept) > 1 else None)


def _mean_se(da):
    """Seed mean and standard error over the seeds present (NaN-aware)."""
    s = da.count("seed")
    return da.mean("seed"), da.std("seed", ddof=1) / np.sqrt(np.maximum(s, 1))


def gradient_features_figure(ds, path: str, *, width=None) -> str:
    """Test error against the swept axis (k, d, n or width) for the network and the three
    fixed-feature baselines, seed mean ± standard error, the Bayes error dashed; one column per
    value of a second swept axis; the network's test error over training below. `width=`: the
    figure's width (`figure_width`)."""
    ok = _ok(ds)
    x, facet = _gf_axes(ds)
    cols = list(ds[facet].values[:_MAX_ROWS]) if facet else [None]
    panel = (max(6.4 / len(cols), 4.6), 4)
    with _panels([[1] * len(cols)] * 2, len(cols), panel, width, dpi=110) as (fig, axes):
        for j, v in enumerate(cols):
            sub = ds.sel({facet: v}) if facet else ds
            sok = ok.sel({facet: v}) if facet else ok
            extra = [d for d in sub["train_error"].dims if d not in ("seed", x)]
            sub, sok = sub.isel({d: 0 for d in extra}), sok.isel({d: 0 for d in extra})
            _gf_error_panel(axes[j], sub, sok, x)
            _gf_curve_panel(axes[len(cols) + j], sub, sok, x)
            where = f"{facet} = {v}" if facet else ""
            axes[j].set_title(f"test error {where}  ({_seeds_label(ds)})", fontsize=_fs(9))
        fig.suptitle(_gf_title(ds), fontsize=_fs(10))
        fig.tight_layout()
        _save(fig, path)
    return path


def _gf_title(ds):
    p = json_attrs(ds)

    def v(name):  # a fixed parameter's value, or "swept" for a grid axis
        return "swept" if name in ds.dims else p.get(name)

    where = f"n = {v('n')}, width {v('width')}:\none gradient step + readout vs fixed features"
    if p.get("data") == "parity":
        return f"structured parity, p_A = {p.get('p_A')}, d = {v('dim')}, {where}"
    return f"XOR mixture, |μ| = {p.get('mu_norm')}, σ = {p.get('sigma')}, d = {v('dim')}, {where}"


def json_attrs(ds) -> dict:
    """The scan's parameters (attrs['jaxfeat_config']['params']), or {}."""
    import json

    try:
        return json.loads(ds.attrs.get("jaxfeat_config", "{}")).get("params", {})
    except (TypeError, ValueError, AttributeError):
        return {}


def _gf_error_panel(ax, ds, ok, x):
    err = ds["test_error"].where(ok)
    xs = ds[x].values if x else [0]
    for m in ds["learner"].values:
        color, marker, label = _GF_STYLE.get(str(m), ("k", "o", str(m)))
        mean, se = _mean_se(err.sel(learner=m))
        ax.errorbar(
            xs,
            np.ravel(mean.values),
            np.ravel(se.values),
            color=color,
            marker=marker,
            ms=4,
            capsize=3,
            label=label,
        )
    if "bayes_error" in ds:
        b = ds["bayes_error"].where(ok).mean("seed")
        if bool(np.isfinite(b.values).any()):
            ax.plot(xs, np.ravel(b.values), "k--", lw=1, label="Bayes error")
    if x in ("dim", "n", "width"):
        ax.set_xscale("log", base=2)
    ax.set_xlabel({"k": "parity degree k", "dim": "d"}.get(x, x or ""))
    ax.set_ylabel("test 0-1 error (seed mean ± se)")
    ax.legend(fontsize=_fs(7))


def _gf_curve_panel(ax, ds, ok, x):
    curve = ds["network_test_error"].where(ok)
    xs = ds[x].values if x else [None]
    for i, v in enumerate(xs):
        c = curve.isel({x: i}) if x else curve
        mean, se = _mean_se(c)
        steps = ds["step"].values
        m, s = np.ravel(mean.values), np.ravel(se.values)
        ax.plot(
            steps,
            m,
            color=colormaps["viridis"](i / max(len(xs) - 1, 1)),
            label=f"{x} = {v}" if x else None,
        )
        ax.fill_between(
            steps, m - s, m + s, alpha=0.2, color=colormaps["viridis"](i / max(len(xs) - 1, 1))
        )
    if "bayes_error" in ds and bool(np.isfinite(ds["bayes_error"].where(ok)).any()):
        ax.axhline(
            float(ds["bayes_error"].where(ok).mean()), color="k", ls="--", lw=1, label="Bayes error"
        )
    ax.set_xlabel("step t ≥ 2 (0 = right after step 1)")
    ax.set_ylabel("network test error")
    ax.legend(fontsize=_fs(7))


def test_error_heatmap(ds, path: str, axes=("n", "width"), *, width=None) -> str:
    """The network's test error over two swept axes, and its gap to the best fixed-feature
    baseline (negative: the network is better), seed means with standard errors in the cells;
    `width=`: the figure's width (`figure_width`)."""
    ok = _ok(ds)
    err = ds["test_error"].where(ok)
    net = err.sel(learner="network")
    base = err.sel(learner=[m for m in err["learner"].values if m != "network"])
    # per cell, the baseline with the lowest mean error: the paired difference over seeds
    gap = (net - base.isel(learner=base.mean("seed").argmin("learner"))).drop_vars(
        "learner", errors="ignore"
    )
    rest = [d for d in net.dims if d not in (*axes, "seed")]
    panels = (("network test error", net, "viridis"), ("network − best baseline", gap, "RdBu_r"))
    with _panels([[1, 1]], 2, (5, 4), width, dpi=110) as (fig, axs):
        for ax, (title, da, cmap) in zip(axs, panels):
            _gap_panel(ax, ds, da.isel({d: 0 for d in rest}), axes, cmap)
            ax.set_title(title, fontsize=_fs(9))
        fig.suptitle(f"{_gf_title(ds)}  ({_seeds_label(ds)})", fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _gap_panel(ax, ds, da, axes, cmap) -> None:
    """A heat map of `da`'s seed mean over `axes` (mean ± se in the cells; "RdBu_r": centred on
    0) with a colour bar."""
    mean, se = _mean_se(da)
    M = np.asarray(mean.transpose(*axes).values, float)
    S = np.asarray(se.transpose(*axes).values, float)
    lim = np.nanmax(np.abs(M)) if cmap == "RdBu_r" else None
    im = ax.imshow(
        M.T, origin="lower", aspect="auto", cmap=cmap, vmin=-lim if lim else None, vmax=lim
    )
    color = "w" if cmap == "viridis" else "k"
    _cell_numbers(ax, M.T, S.T, ".3f", fontsize=_fs(7), color=lambda v, c=color: c)
    ax.set_xticks(range(M.shape[0]), ds[axes[0]].values)
    ax.set_yticks(range(M.shape[1]), ds[axes[1]].values)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.figure.colorbar(im, ax=ax)


def step_one_figure(X, y, net0, net1, path: str, *, max_points: int = 1500) -> str:
    """Algorithm 1's first step in 2-D (the poster picture of Shi, Wei & Liang): samples coloured
    by label; each neuron's weight before (grey) and after the step (coloured by the sign of
    a_i), both scaled to the data; and each neuron's activation boundary w_i⁽¹⁾·x = b_i after
    the step (thin lines), w_i⁽¹⁾ = η a_i Ĝ(w_i⁽⁰⁾, b_i)."""
    X, y = np.asarray(X, float)[:max_points], np.asarray(y, float)[:max_points]
    if X.shape[1] != 2:
        raise ValueError(f"step_one_figure draws 2-D data, got dim {X.shape[1]}")
    mask = np.asarray(net0.mask)
    W0, W1 = np.asarray(net0.W, float)[mask], np.asarray(net1.W, float)[mask]
    b, a = np.asarray(net1.b, float)[mask], np.asarray(net1.a, float)[mask]
    lim = 1.1 * np.max(np.abs(X))
    fig, axes = _subplots(1, 2, figsize=(11, 5.2))
    for ax, W, after, title in (
        (axes[0], W0, False, "before: w_i⁽⁰⁾"),
        (axes[1], W1, True, "after one step"),
    ):
        ax.scatter(*X[y > 0].T, s=4, c="tab:blue", alpha=0.35, label="y = +1")
        ax.scatter(*X[y < 0].T, s=4, c="tab:red", alpha=0.35, label="y = −1")
        scale = 0.8 * lim / max(np.max(np.linalg.norm(W, axis=1)), 1e-12)
        for w, ai in zip(W, a):
            color = ("tab:green" if ai > 0 else "tab:purple") if after else "grey"
            ax.annotate("", scale * w, (0, 0), arrowprops=dict(arrowstyle="->", color=color))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=_fs(10))
    t = np.linspace(-lim, lim, 2)
    for w, bi in zip(W1, b):  # boundary w·x = b
        if abs(w[1]) > abs(w[0]):
            axes[1].plot(t, (bi - w[0] * t) / w[1], color="k", lw=0.5, alpha=0.5)
        else:
            axes[1].plot((bi - w[1] * t) / w[0], t, color="k", lw=0.5, alpha=0.5)
    axes[1].set_xlim(-lim, lim)
    axes[1].set_ylim(-lim, lim)
    axes[0].legend(fontsize=_fs(8), loc="lower left")
    fig.suptitle(
        "Algorithm 1, step 1: w_i⁽¹⁾ = η a_i Ĝ(w_i⁽⁰⁾, b_i) (green: a_i > 0, purple: a_i < 0;"
        " lines: activation boundaries)",
        fontsize=_fs(9),
    )
    fig.tight_layout()
    _save(fig, path, dpi=110)
    return path


def draw(ds, path: str, experiment=None, *, width=None) -> str:
    """Draw the figure of the scan `ds` to `path` (PNG/PDF) with `experiment`'s `plot` function
    (`jaxfeat plot`): `generic_scan` when the experiment has none or is not given.

    **Arguments:**

    - `ds`, `path`, `experiment`: the scan, the figure's file and the `Experiment` it ran.
    - `width`: the figure's width (`figure_width`: "column", "page" or inches), passed on to
      the plot function as `width=`; None: the figure's own size.

    **Returns:** `path`.

    **Raises:** `jaxfeat._checks.InputError` naming `width` for a bad width, or when the plot
    function takes no `width=`.
    """
    figure_width(width)  # a bad width fails before anything is drawn
    plot = getattr(experiment, "plot", None)
    if isinstance(plot, str):  # a name in this module: the spelling before 0.2
        import warnings

        warnings.warn(
            f"Experiment(plot={plot!r}) is deprecated: pass the function, "
            f"plot=jaxfeat.plotting.{plot}",
            DeprecationWarning,
            stacklevel=2,
        )
        plot = globals()[plot]
    plot = plot or generic_scan
    if width is None:  # plot functions of one's own need not take width=
        return plot(ds, path)
    if not _takes_width(plot):
        name = getattr(plot, "__name__", repr(plot))
        raise InputError(f"width: the plot function {name} takes no width= argument")
    return plot(ds, path, width=width)


def _takes_width(fn) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return "width" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def bench_figure(result: dict, path: str, *, width=None) -> str:
    """`jaxfeat bench`'s figure: for each case, steady-state seconds per call against its size
    axis (log-log, the fitted slope in the legend, the expected one dotted), with the per-seed
    baselines timed in the same run (dashed) and the compile seconds (grey); below, for the
    cases over seeds, seeds per second against the seed batch, the loop's level dashed."""
    cases = result["cases"]
    sweeps = {n: c["batch_sweep"] for n, c in cases.items() if c.get("batch_sweep")}
    k = max(1, len(cases))
    rows = [[1] * k] + ([[1] * len(sweeps)] if sweeps else [])
    with _panels(rows, k, (4.2, 3.4), width, dpi=110) as (fig, axes):
        for ax, (name, case) in zip(axes, cases.items()):
            _bench_panel(ax, name, case)
        for ax, (name, sweep) in zip(axes[len(cases) :], sweeps.items()):
            _sweep_panel(ax, name, sweep)
        fig.suptitle(_bench_title(result), fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _bench_panel(ax, name, case) -> None:
    rows = case["rows"]
    x = np.array([r["size"] for r in rows], float)
    slope = case["slope"]
    label = "jaxfeat" + ("" if slope is None else f" (slope {slope:.2f})")
    ax.loglog(x, [r["steady_s"] for r in rows], "o-", label=label)
    for key in sorted({k for r in rows for k in r if k.endswith("_s") and k not in _BENCH_OWN}):
        ax.loglog(
            x, [r.get(key, np.nan) for r in rows], "s--", ms=3, label=key[:-2].replace("_", " ")
        )
    ax.loglog(x, [r["compile_s"] for r in rows], "x:", color="0.6", label="compile")
    if case.get("expected_slope") and len(x) > 1:
        y0 = rows[-1]["steady_s"]
        ax.loglog(
            x,
            y0 * (x / x[-1]) ** case["expected_slope"],
            "k:",
            lw=0.8,
            label=f"slope {case['expected_slope']:g}",
        )
    ax.xaxis.set_minor_formatter(NullFormatter())  # no crowded 2×10³ labels
    ax.set_xlabel(case["axis"])
    ax.set_ylabel("seconds per call")
    ax.set_title(name, fontsize=_fs(9))
    ax.legend(fontsize=_fs(6))


def _sweep_panel(ax, name, sweep) -> None:
    rows = sweep["rows"]
    ax.semilogx([r["batch"] for r in rows], [r["seeds_per_s"] for r in rows], "o-", base=2,
                label=f"batched, {sweep['seeds']} seeds")  # fmt: skip
    ax.axhline(sweep["loop_seeds_per_s"], color="C1", ls="--", label="loop over jit(one seed)")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seeds vmapped at a time (batch)")
    ax.set_ylabel("seeds per second")
    ax.set_title(f"{name}: best batch {sweep['best_batch']}", fontsize=_fs(9))
    ax.legend(fontsize=_fs(6))


_BENCH_OWN = ("compile_s", "steady_s")


def _bench_title(result) -> str:
    m, r = result["machine"], result["rates"]
    return (
        f"jaxfeat bench on {m['device']} ({m['cpu_count']} CPUs), "
        f"GEMM {r['gemm_flops'] / 1e9:.0f} GFLOP/s, copy {r['copy_bytes_per_s'] / 1e9:.1f} GB/s"
    )
