"""Statistics of finished scans: seed means, standard errors and quantiles over the finished,
non-diverged seeds (`summarize`), and the recovery probability of Zhou–Ge scans with its width
threshold (`recovery_probability`, `recovery_threshold`). Plain NumPy/xarray on stored results;
nothing here compiles."""

from __future__ import annotations

import numpy as np


def summarize(ds, dim: str = "seed", quantiles=(0.1, 0.5, 0.9)):
    """Seed-averaged summary of a scan: mean, standard error and quantiles of every variable over
    `dim`, over the finished seeds that did not diverge; a new `stat` dimension holds them, plus
    `n_seeds` (the seeds used at each point). A value an output declares "not applicable"
    (`Experiment.not_applicable`) is left out of that output's statistics, and its standard
    error counts only the seeds where it applies.

    Over the seeds kept (NaN values skipped), mean = (1/n) Σ_s v_s, se = sd/√n with the sample
    standard deviation sd (ddof = 1) and n the values counted, and the quantiles.

    **Arguments:**

    - `ds`: a scan's `xarray.Dataset` (`jaxfeat.scan`, `jaxfeat.open_scan`); its `diverged`
      and `finished` variables, where present, select the seeds (without them every seed
      counts).
    - `dim`: the dimension to summarise over (default `"seed"`).
    - `quantiles`: the quantile levels (default (0.1, 0.5, 0.9)), each named `q` and its
      rounded percentage in two digits (`q10`, `q50`, `q90`).

    **Returns:** an `xarray.Dataset` with every data variable except `diverged` and
    `finished`, over `ds`'s dims less `dim` plus a leading `stat` dimension (`mean`, `se`,
    then the quantiles), the variable `n_seeds` (no `stat` dim: the finished, non-diverged
    seeds at each point, not lowered by "not applicable" values), and `ds`'s attrs.
    """
    import xarray as xr

    ok = ~ds["diverged"] if "diverged" in ds else xr.ones_like(ds[dim], dtype=bool)
    if "finished" in ds:
        ok = ok & ds["finished"]
    data: xr.Dataset = ds.drop_vars(["diverged", "finished"], errors="ignore").where(ok)
    data = data.drop_vars([c for c in data.coords if data[c].ndim == 0])  # from a .sel(x=…)
    for name in list(data.data_vars):
        fill = data[name].attrs.get("not_applicable")
        if fill is not None and fill != "NaN":
            data[name] = data[name].where(data[name] != float(fill))
    n = ok.sum(dim)
    parts: list[xr.Dataset] = [data.mean(dim), data.std(dim, ddof=1) / np.sqrt(data.count(dim))]
    names = ["mean", "se"]
    for q in quantiles:
        parts.append(data.quantile(q, dim=dim).drop_vars("quantile"))
        names.append(f"q{round(100 * q):02d}")
    out = xr.concat(parts, dim=xr.DataArray(names, dims="stat", name="stat"))
    out["n_seeds"] = n
    out.attrs = dict(ds.attrs)
    return out


def recovery_probability(ds, fixed=None):
    """P(recovered) per grid point of a `local_convergence` scan, with its seed standard error
    √(p(1−p)/(S−1)) and the 95 % Wilson score interval [`lo`, `hi`] (which, unlike p ± se, is
    not empty at p = 0 or 1: 0 of 256 seeds gives [0, 0.015]); diverged seeds count as not
    recovered. `decay` (if an axis) is taken at its non-zero value, and `fixed` selects values
    of other axes ({axis: value}).

    **Returns:** an xarray Dataset with `p`, `se`, `lo`, `hi` and `seeds` over the remaining
    grid axes.
    """
    rec = _recovered(ds, fixed)
    s = rec.count("seed")
    p = rec.mean("seed")
    out = p.to_dataset(name="p")
    out["se"] = np.sqrt(p * (1 - p) / np.maximum(s - 1, 1))
    out["lo"], out["hi"] = wilson_interval(p, s)
    out["seeds"] = s
    return out


def wilson_interval(p, n, z: float = 1.959963984540054):
    """The Wilson score interval of a binomial proportion p observed in n trials (default 95 %):
    (p + z²/2n ± z√(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    n = np.maximum(n, 1)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


def _recovered(ds, fixed):
    """1.0 (recovered) / 0.0 (not, or diverged) per finished seed, NaN for unfinished seeds of a
    partial store (`jaxfeat.open_scan`), at the decay axis's non-zero value and `fixed`."""
    import xarray as xr

    hit = (ds["recovered"] == 1) & ~ds["diverged"].astype(bool)
    fin = ds["finished"] if "finished" in ds else xr.ones_like(hit)
    rec = hit.astype(float).where(fin)
    sel = dict(fixed or {})
    if "decay" in rec.dims and "decay" not in sel:
        sel["decay"] = [v for v in ds["decay"].values if v != 0][0]
    return rec.sel(sel)


def recovery_threshold(ds, level=0.5, axis="width", fixed=None, boot=1000, seed=0):
    """The smallest value of `axis` (interpolated linearly in log₂ between grid points) at which
    P(recovered) first reaches `level`, per value of the other grid axes, with a bootstrap over
    seeds: median and the 16–84 % interval of `boot` resamples (NaN where the level is never
    reached; a resample that never reaches it counts as beyond the largest grid value).

    **Returns:** dict {other-axis value (or None): (estimate, low, high, fraction of resamples
    that reach the level)}.
    """
    rec = _recovered(ds, fixed)
    others = [d for d in rec.dims if d not in (axis, "seed")]
    if len(others) > 1:
        raise ValueError(f"fix all but one of {others} with `fixed`")
    x = np.log2(np.asarray(ds[axis].values, float))
    rng = np.random.default_rng(seed)
    out = {}
    for v in ds[others[0]].values if others else [None]:
        r = np.asarray((rec.sel({others[0]: v}) if others else rec).transpose(axis, "seed"))
        r = r[:, np.all(np.isfinite(r), axis=0)]  # seeds finished at every point of the curve
        est = _crossing(x, r.mean(1), level)
        idx = rng.integers(0, r.shape[1], (boot, r.shape[1]))
        bs = np.array([_crossing(x, r[:, i].mean(1), level) for i in idx])
        reached = np.isfinite(bs)
        lo, hi = np.quantile(np.where(reached, bs, np.inf), [0.16, 0.84], method="inverted_cdf")
        key = v.item() if v is not None and hasattr(v, "item") else v
        out[key] = (2.0**est, 2.0**lo, 2.0**hi, reached.mean())
    return out


def _crossing(x, p, level):
    """First x where the piecewise-linear p(x) reaches `level` (NaN if it never does)."""
    hit = np.nonzero(p >= level)[0]
    if not hit.size:
        return np.nan
    i = hit[0]
    if i == 0:
        return x[0]
    return x[i - 1] + (level - p[i - 1]) / (p[i] - p[i - 1]) * (x[i] - x[i - 1])
