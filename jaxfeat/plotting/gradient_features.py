"""Figures of the Shi–Wei–Liang `gradient_features` scan."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from ._style import (
    _MAX_ROWS,
    _cell_numbers,
    _fs,
    _mean_se,
    _ok,
    _panels,
    _save,
    _seeds_label,
    _subplots,
    json_attrs,
)

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


def gradient_features_figure(ds, path: str, *, width=None) -> str:
    """Test error against the swept axis (k, d, n or width) for the network and the three
    fixed-feature baselines, seed mean ± standard error, the Bayes error dashed; one column per
    value of a second swept axis (the first four; the title says when more are left out); the
    network's test error over training below. `width=`: the figure's width (`figure_width`)."""
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
        more = ""
        if facet and ds.sizes[facet] > len(cols):
            more = f"\n(the first {len(cols)} of {ds.sizes[facet]} {facet} values shown)"
        fig.suptitle(_gf_title(ds) + more, fontsize=_fs(10))
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
    panels = (
        ("network test error", net, "viridis", "test 0-1 error (seed mean)"),
        ("network − best baseline", gap, "RdBu_r", "test-error gap (< 0: network better)"),
    )
    with _panels([[1, 1]], 2, (5, 4), width, dpi=110) as (fig, axs):
        for ax, (title, da, cmap, label) in zip(axs, panels):
            _gap_panel(ax, ds, da.isel({d: 0 for d in rest}), axes, cmap, label)
            ax.set_title(title, fontsize=_fs(9))
        fig.suptitle(f"{_gf_title(ds)}  ({_seeds_label(ds)})", fontsize=_fs(9))
        fig.tight_layout()
        _save(fig, path)
    return path


def _gap_panel(ax, ds, da, axes, cmap, label: str) -> None:
    """A heat map of `da`'s seed mean over `axes` (mean ± se in the cells, in black or white by
    the cell's lightness; "RdBu_r": centred on 0) with a colour bar labelled `label`."""
    mean, se = _mean_se(da)
    M = np.asarray(mean.transpose(*axes).values, float)
    S = np.asarray(se.transpose(*axes).values, float)
    lim = np.nanmax(np.abs(M)) if cmap == "RdBu_r" else None
    im = ax.imshow(
        M.T, origin="lower", aspect="auto", cmap=cmap, vmin=-lim if lim else None, vmax=lim
    )
    _cell_numbers(ax, M.T, S.T, ".3f", fontsize=_fs(7), color=lambda v: _ink(im, v))
    ax.set_xticks(range(M.shape[0]), ds[axes[0]].values)
    ax.set_yticks(range(M.shape[1]), ds[axes[1]].values)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.figure.colorbar(im, ax=ax, label=label)


def _ink(im, value) -> str:
    """Black on light cells, white on dark ones (the cell colour's relative luminance)."""
    r, g, b, _ = im.cmap(im.norm(value))
    return "k" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "w"


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
