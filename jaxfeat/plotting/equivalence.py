"""The figure of the `equivalence` scan (Moniri et al., Theorems 4.1–4.2)."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from .. import theory
from ._style import (
    _drop_legend,
    _facets,
    _fs,
    _ok,
    _panels,
    _plain_log_ticks,
    _save,
    _seeds_label,
    _with_axes,
    json_attrs,
)


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
    _plain_log_ticks(ax)
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
