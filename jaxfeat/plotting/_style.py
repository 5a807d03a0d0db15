"""Sizes, fonts, saving and the small helpers that the figures of several experiments share."""

from __future__ import annotations

import contextlib

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .._checks import InputError

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


def _plain_log_ticks(ax, which: str = "y") -> None:
    """Label a log axis that spans under two decades with plain numbers at 1, 2, 3 and 5 times a
    power of ten ("0.2", "3"), not matplotlib's "2×10⁰"; call after drawing (the limits
    decide)."""
    from matplotlib.ticker import FuncFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if lo > 0 and 4 <= hi / lo < 100:
        fmt = FuncFormatter(_plain_tick)
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(fmt)
    elif lo > 0 and hi / lo < 4:  # too short for the decade's ticks: five plain ones
        from matplotlib.ticker import MaxNLocator, NullFormatter

        axis.set_major_locator(MaxNLocator(6, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _plain_tick(v: float, _pos=None) -> str:
    """'0.2' for 1, 2, 3 or 5 times a power of ten, '' for the other ticks (they crowd)."""
    if v <= 0:
        return ""
    lead = v / 10.0 ** np.floor(np.log10(v))
    return f"{v:g}" if any(np.isclose(lead, m) for m in (1, 2, 3, 5)) else ""


def _pow10(x: float) -> str:
    """A power of ten as mathtext, "$10^{-8}$" (not "1e-08"), for titles and labels."""
    e = int(np.round(np.log10(x)))
    return f"$10^{{{e}}}$" if np.isclose(x, 10.0**e) else f"${x:g}$"


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


def _drop_legend(ax) -> None:
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()


def _axes_or_new(ax, size):
    """`ax`, or the axes of a new `Figure` of `size` inches."""
    return ax if ax is not None else _subplots(figsize=size, dpi=110)[1]


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
    """'64 seeds', or for a partial scan '20 of 64 seeds, partial scan' (the range over points
    when they differ: 'up to 20 of 64 seeds per point, partial scan')."""
    total = ds.sizes["seed"]
    if "finished" not in ds or bool(ds["finished"].all()):
        return f"{total} seeds"
    per = ds["finished"].sum("seed")
    lo, hi = int(per.min()), int(per.max())
    if lo == hi:
        return f"{lo} of {total} seeds, partial scan"
    return f"{lo}–{hi} of {total} seeds per point, partial scan"


def _over(da, order):
    """Values of `da` with dims ordered as `order` (missing dims of length 1 added)."""
    for d in order:
        if d not in da.dims:
            da = da.expand_dims(d)
    rest = [d for d in da.dims if d not in order]
    return np.asarray(da.isel({d: 0 for d in rest}).transpose(*order).values, float)


def _labels(ds, dim, size):
    return list(ds[dim].values) if dim in ds.dims else [ds.attrs.get(dim, "")] * size


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.number)) for v in values)


def _cell_numbers(ax, mean, se, fmt: str, *, fontsize, color, low=None) -> None:
    """Write "mean ± se" in each cell of an `imshow` of `mean` (rows = image y), in
    `color(value)`; with `low`, "mean [low, se]": an interval (low, high) in place of ± se."""
    for i, j in np.ndindex(mean.shape):
        if low is None:
            text = f"{mean[i, j]:{fmt}}\n±{se[i, j]:{fmt}}"
        else:
            text = f"{mean[i, j]:{fmt}}\n[{low[i, j]:{fmt}}, {se[i, j]:{fmt}}]"
        ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color(mean[i, j]))


def _mean_se(da):
    """Seed mean and standard error over the seeds present (NaN-aware)."""
    s = da.count("seed")
    return da.mean("seed"), da.std("seed", ddof=1) / np.sqrt(np.maximum(s, 1))


def json_attrs(ds) -> dict:
    """The scan's parameters (attrs['jaxfeat_config']['params']), or {}."""
    import json

    try:
        return json.loads(ds.attrs.get("jaxfeat_config", "{}")).get("params", {})
    except (TypeError, ValueError, AttributeError):
        return {}
