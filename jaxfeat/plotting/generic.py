"""The fallback figure of any scan, and `draw`, which picks an experiment's figure."""

from __future__ import annotations

import numpy as np

from .._checks import InputError
from ..analysis import summarize
from ._style import _fs, _panels, _save, _seeds_label, figure_width


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
    if isinstance(plot, str):  # a name in jaxfeat.plotting: the spelling before 0.2
        import importlib
        import warnings

        warnings.warn(
            f"Experiment(plot={plot!r}) is deprecated: pass the function, "
            f"plot=jaxfeat.plotting.{plot}",
            DeprecationWarning,
            stacklevel=2,
        )
        package = importlib.import_module(__name__.rpartition(".")[0])  # jaxfeat.plotting
        plot = vars(package)[plot]
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
