"""`jaxfeat bench`'s figure."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from ._style import _fs, _panels, _save


def bench_figure(result: dict, path: str, *, width=None) -> str:
    """`jaxfeat bench`'s figure: for each case, steady-state seconds per call against its size
    axis (log-log, the fitted slope in the legend, the expected one dotted), with the per-seed
    baselines timed in the same run (dashed) and the compile seconds (grey); below, for the
    cases over seeds, seeds per second against the seed batch, the loop's level dashed."""
    cases = result["cases"]
    sweeps = {n: c["batch_sweep"] for n, c in cases.items() if c.get("batch_sweep")}
    k = max(1, len(cases))
    rows = [[1] * (k + len(sweeps))]  # one sequence: the batch sweeps fill the last row
    cols = min(3, k)  # wrapped three to a row: seven panels in a row do not fit a page
    with _panels(rows, cols, (4.2, 3.4), width, dpi=110) as (fig, axes):
        for ax, (name, case) in zip(axes, cases.items()):
            _bench_panel(ax, name, case)
        for ax, (name, sweep) in zip(axes[len(cases) :], sweeps.items()):
            _sweep_panel(ax, name, sweep)
        fig.suptitle(_bench_title(result), fontsize=_fs(9))
        fig.tight_layout(rect=(0, 0, 1, 0.98))  # the title clear of the first row's titles
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
    ax.legend(fontsize=_fs(7))


def _sweep_panel(ax, name, sweep) -> None:
    rows = sweep["rows"]
    ax.semilogx([r["batch"] for r in rows], [r["seeds_per_s"] for r in rows], "o-", base=2,
                label=f"batched, {sweep['seeds']} seeds")  # fmt: skip
    ax.axhline(sweep["loop_seeds_per_s"], color="C1", ls="--", label="loop over jit(one seed)")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seeds vmapped at a time (batch)")
    ax.set_ylabel("seeds per second")
    ax.set_title(f"{name}: best batch {sweep['best_batch']}", fontsize=_fs(9))
    ax.legend(fontsize=_fs(7))


_BENCH_OWN = ("compile_s", "steady_s")


def _bench_title(result) -> str:
    m, r = result["machine"], result["rates"]
    return (
        f"jaxfeat bench on {m['device']} ({m['cpu_count']} CPUs), "
        f"GEMM {r['gemm_flops'] / 1e9:.0f} GFLOP/s, copy {r['copy_bytes_per_s'] / 1e9:.1f} GB/s"
    )
