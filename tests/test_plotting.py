"""`jaxfeat.plotting` as a public module (issue #15): panels that draw onto a given matplotlib
axes, figures sized for a paper with `width=` ("column", "page" or inches), and `--width` on
the command line."""

import json

import matplotlib
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image

from jaxfeat import cli, plotting, scan, theory
from jaxfeat._checks import InputError


def _spikes(extra=None, seeds=3):
    """A dataset shaped like a `spikes` scan over α × n (and `extra` grid axes)."""
    axes = {"alpha": [0.0, 0.2, 0.4], "n": [100, 200]} | (extra or {})
    shape = tuple(len(v) for v in axes.values()) + (seeds,)
    dims = tuple(axes) + ("seed",)
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "n_outliers": (dims, rng.integers(0, 3, shape)),
            "singular_values": (dims + ("k",), rng.uniform(1, 3, shape + (4,))),
            "deflated_edge": (dims, rng.uniform(0.5, 1.0, shape)),
            "test_mse_w1": (dims, rng.uniform(0, 1, shape)),
            "test_mse_w0": (dims, rng.uniform(0, 1, shape)),
            "diverged": (dims, np.zeros(shape, bool)),
        },
        coords=axes | {"seed": np.arange(seeds)},
        attrs={"jaxfeat_config": json.dumps({"params": {}})},
    )


def _recovery(widths=(4, 8, 16), ns=(100, 400), seeds=10):
    """A fake `local_convergence` scan with only what the recovery heat map reads."""
    rng = np.random.default_rng(1)
    dims = ("decay", "n", "width", "seed")
    rec = rng.uniform(size=(2, len(ns), len(widths), seeds)) < 0.5
    coords = {"decay": [1.0, 0.0], "n": list(ns), "width": list(widths), "seed": np.arange(seeds)}
    return xr.Dataset(
        {"recovered": (dims, rec), "diverged": (dims, np.zeros_like(rec))}, coords=coords
    )


def _local_convergence(seeds=4, steps=5, teachers=2):
    """A fake `local_convergence` scan over decay × width: the rows of the full figure."""
    rng = np.random.default_rng(2)
    grid = {"decay": [1.0, 0.0], "width": [4, 8]}
    shape = (2, 2, seeds)
    dims = ("decay", "width", "seed")
    loss = np.exp(-rng.uniform(0, 1, shape + (1,)) * np.arange(steps))
    data = {
        "loss": (dims + ("step",), loss),
        "final_loss": (dims, loss[..., -1]),
        "loss_stage1": (dims, rng.uniform(0.5, 1, shape)),
        "loss_stage2": (dims, rng.uniform(0.1, 0.5, shape)),
        "far_mass": (dims, rng.uniform(0, 0.1, shape)),
        "recovered": (dims, rng.uniform(size=shape) < 0.5),
        "near_weight": (dims + ("teacher",), rng.uniform(0, 1, shape + (teachers,))),
        "diverged": (dims, np.zeros(shape, bool)),
    }
    params = {"teacher": [1.0, -0.7], "steps_per_phase": 2, "phases": 2}
    return xr.Dataset(
        data,
        coords=grid | {"seed": np.arange(seeds), "step": np.arange(steps)},
        attrs={"jaxfeat_config": json.dumps({"params": params})},
    )


def _gradient_features(seeds=4, steps=3):
    """A fake `gradient_features` scan over d: the learners' test errors and the network's
    test error during training."""
    rng = np.random.default_rng(3)
    learners = ["network", "random_features", "ntk", "nngp"]
    dims = ("dim", "seed")
    return xr.Dataset(
        {
            "test_error": (dims + ("learner",), rng.uniform(0, 0.5, (2, seeds, 4))),
            "train_error": (dims, rng.uniform(0, 0.5, (2, seeds))),
            "network_test_error": (dims + ("step",), rng.uniform(0, 0.5, (2, seeds, steps))),
            "diverged": (dims, np.zeros((2, seeds), bool)),
        },
        coords={"dim": [4, 16], "seed": np.arange(seeds), "learner": learners, "step": [0, 1, 2]},
        attrs={"jaxfeat_config": json.dumps({"params": {"n": 100, "width": 8}})},
    )


def _inches(path) -> tuple[float, float]:
    """A saved PNG's size in inches: pixels over the dots per inch it records."""
    with Image.open(path) as im:
        dpi = im.info["dpi"]
        return im.size[0] / dpi[0], im.size[1] / dpi[1]


def _mean_se(da):
    return da.mean("seed").values, (da.std("seed", ddof=1) / np.sqrt(da.sizes["seed"])).values


# ---------------------------------------------------------------------------------------------
# panels onto a given axes
# ---------------------------------------------------------------------------------------------


def test_spike_count_heatmap_draws_onto_the_given_axes():
    """The image on the caller's axes, colours from the theory (`spike_colour_limits`), the seed
    mean ± se in each cell, ℓ(α) under each α, and a colour bar next to it."""
    ds = _spikes()
    fig = Figure()
    ax = fig.subplots()
    assert plotting.spike_count_heatmap(ds, ax=ax) is ax
    (im,) = ax.get_images()
    mean, se = _mean_se(ds["n_outliers"].transpose("n", "alpha", "seed"))
    np.testing.assert_allclose(im.get_array(), mean)
    lim = plotting.spike_colour_limits(ds["alpha"].values, mean)
    assert im.get_clim() == (lim["vmin"], lim["vmax"]) == (0, theory.predicted_spike_count(0.4))
    cells = {t.get_text() for t in ax.texts}
    for i, j in np.ndindex(mean.shape):
        assert f"{mean[i, j]:.2f}\n±{se[i, j]:.2f}" in cells
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\nℓ=0", "0.2\nℓ=1", "0.4\nℓ=4"]
    assert len(fig.axes) == 2  # the colour bar's


def test_singular_value_and_test_error_panels_draw_the_seed_means():
    ds = _spikes()
    ax = plotting.singular_value_panel(ds, ax=Figure().subplots())
    top = ds.sel(n=200)
    want = (top["singular_values"].mean("seed") / top["deflated_edge"].mean("seed")).values
    bars = {c.get_label(): c for c in ax.containers}
    assert sorted(bars) == [f"$s_{{{k}}}$" for k in (1, 2, 3, 4)] and ax.get_yscale() == "log"
    se = (top["singular_values"].std("seed", ddof=1) / np.sqrt(top.sizes["seed"])).values
    for k in range(4):
        np.testing.assert_allclose(bars[f"$s_{{{k + 1}}}$"].lines[0].get_ydata(), want[:, k])
        segments = bars[f"$s_{{{k + 1}}}$"].lines[2][0].get_segments()  # the error bars: mean ± se
        half = np.array([abs(s[1, 1] - s[0, 1]) / 2 for s in segments])
        edge = top["deflated_edge"].mean("seed").values
        np.testing.assert_allclose(half, se[:, k] / edge, rtol=1e-6)
    bx = plotting.test_error_panel(ds, ax=Figure().subplots())
    curves = {c.get_label(): c.lines[0].get_ydata() for c in bx.containers}
    assert sorted(curves) == ["F₁, n=100", "F₁, n=200"]
    np.testing.assert_allclose(curves["F₁, n=100"], ds["test_mse_w1"].sel(n=100).mean("seed"))
    # F₀ does not depend on α: one dashed level per n at its mean over α and seeds
    levels = {ln.get_label(): ln.get_ydata()[0] for ln in bx.get_lines() if "F₀" in ln.get_label()}
    want0 = ds["test_mse_w0"].sel(n=100).mean("seed").mean("alpha")
    assert sorted(levels) == ["F₀, n=100", "F₀, n=200"]
    np.testing.assert_allclose(levels["F₀, n=100"], want0)


def test_panels_without_axes_draw_on_a_new_figure_and_need_one_facet():
    ds = _spikes({"activation": ["relu", "tanh"]})
    before = matplotlib.get_backend()
    axes = [
        plotting.spike_count_heatmap(ds.sel(activation="relu")),
        plotting.singular_value_panel(ds.isel(activation=[1])),  # one value: fine
        plotting.test_error_panel(ds.sel(activation="tanh")),
        plotting.recovery_panel(_recovery()),
        plotting.width_sweep_panel(_width_scan()),
    ]
    assert all(type(ax.figure) is Figure for ax in axes)
    assert len({id(ax.figure) for ax in axes}) == len(axes)
    assert matplotlib.get_backend() == before  # no pyplot
    with pytest.raises(InputError, match="activation"):
        plotting.spike_count_heatmap(ds)


def _width_scan(seeds=3):
    rng = np.random.default_rng(4)
    dims = ("width", "seed")
    return xr.Dataset(
        {
            "test_mse": (dims, rng.uniform(0.1, 1, (3, seeds))),
            "diverged": (dims, np.zeros((3, seeds), bool)),
        },
        coords={"width": [4, 8, 16], "seed": np.arange(seeds)},
    )


def test_recovery_panel_draws_probabilities_onto_the_given_axes():
    ds = _recovery()
    ax = plotting.recovery_panel(ds, ax=Figure().subplots())
    (im,) = ax.get_images()
    p = ds["recovered"].sel(decay=1.0).mean("seed").transpose("n", "width").values
    np.testing.assert_allclose(im.get_array(), p)
    assert im.get_clim() == (0, 1) and len(ax.texts) == p.size


def test_figures_are_built_from_the_panels(tmp_path, monkeypatch):
    """The figure functions draw with the public panels' code: a broken panel breaks them."""
    ds = _spikes()
    path = str(tmp_path / "s.png")
    assert plotting.spike_phase_diagram(ds, path) == path
    assert _inches(path) == pytest.approx((15, 4.2), abs=0.01)  # the size before `width=`

    def broken(*args):
        raise RuntimeError("panel drawn")

    monkeypatch.setattr(plotting.spikes, "_spike_heatmap", broken)
    with pytest.raises(RuntimeError, match="panel drawn"):
        plotting.spike_count_heatmap(ds)
    with pytest.raises(RuntimeError, match="panel drawn"):
        plotting.spike_phase_diagram(ds, path)


# ---------------------------------------------------------------------------------------------
# width=
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width, inches", [(None, None), ("column", 3.5), ("page", 7.0), (5, 5.0), (2.25, 2.25)]
)
def test_figure_width_presets_and_inches(width, inches):
    assert plotting.figure_width(width) == inches


@pytest.mark.parametrize("width", ["wide", "3.5", 0, -2, 1.0, 51, float("nan"), True, [3.5]])
def test_a_bad_width_is_an_input_error_naming_width(width, tmp_path):
    with pytest.raises(InputError, match="^width must be"):
        plotting.figure_width(width)
    path = tmp_path / "s.png"
    with pytest.raises(InputError, match="^width must be"):
        plotting.spike_phase_diagram(_spikes(), str(path), width=width)
    with pytest.raises(InputError, match="^width must be"):
        plotting.draw(_spikes(), str(path), width=width)
    assert not path.exists()


_FIGURES = {
    "spike_phase_diagram": (plotting.spike_phase_diagram, _spikes),
    "generic_scan": (plotting.generic_scan, _spikes),
    "recovery_heatmap": (plotting.recovery_heatmap, _recovery),
    "local_convergence_figure": (plotting.local_convergence_figure, _local_convergence),
    "gradient_features_figure": (plotting.gradient_features_figure, _gradient_features),
    "width_sweep": (plotting.width_sweep, _width_scan),
}


@pytest.mark.parametrize("name", list(_FIGURES))
@pytest.mark.parametrize("width, inches", [("column", 3.5), ("page", 7.0)])
@pytest.mark.slow
def test_width_gives_the_figure_that_width(tmp_path, name, width, inches):
    """At a given width the figure has that width; the height follows; PNGs get print
    resolution."""
    fn, make = _FIGURES[name]
    ds = make()
    native, sized = str(tmp_path / "native.png"), str(tmp_path / "sized.png")
    fn(ds, native)
    assert fn(ds, sized, width=width) == sized
    (w0, h0), (w, h) = _inches(native), _inches(sized)
    assert w == pytest.approx(inches, abs=0.01)
    assert h >= h0 * w / w0 - 0.01  # proportional, or taller where panels are stacked
    with Image.open(sized) as im:
        assert im.size[0] >= 1000  # pixels across


def test_column_width_stacks_the_spike_panels_and_shrinks_the_fonts():
    """At 3.5 in the spike figure's three panels are stacked, each as wide as the figure and
    as tall as its proportions say; text is 0.7× its size, never below 5.5 pt."""
    with plotting._panels([[1, 1, 1]], 3, (5, 4.2), "column") as (fig, axes):
        assert tuple(fig.get_size_inches()) == pytest.approx((3.5, 3 * 4.2 * 0.7))
        assert matplotlib.rcParams["font.size"] == pytest.approx(7)
        assert plotting._fs(9) == pytest.approx(6.3) and plotting._fs(7) == 5.5
        boxes = [ax.get_subplotspec() for ax in axes]
        assert [b.rowspan.start for b in boxes] == [0, 1, 2]
        assert all(b.colspan == range(0, 1) for b in boxes)
    assert matplotlib.rcParams["font.size"] == 10  # the style is restored
    with plotting._panels([[1, 1, 1]], 3, (5, 4.2), "page") as (fig, axes):
        assert [ax.get_subplotspec().colspan.start for ax in axes] == [0, 1, 2]
    with plotting._panels([[1, 1, 1]], 3, (5, 4.2)) as (fig, axes):  # no width: as before
        assert tuple(fig.get_size_inches()) == (15, 4.2)
        assert plotting._fs(9) == 9


def test_column_pdf_is_that_wide_and_embeds_no_type3_fonts(tmp_path):
    out = tmp_path / "s.pdf"
    plotting.spike_phase_diagram(_spikes(), str(out), width="column")
    pdf = out.read_bytes()
    assert b"/MediaBox [ 0 0 252 " in pdf  # 3.5 in × 72 pt
    assert b"/Type3" not in pdf
    assert b"/CIDFontType2" in pdf or b"/TrueType" in pdf


def test_draw_passes_width_to_the_experiment_plot(tmp_path):
    from jaxfeat.experiments import Experiment

    seen = []

    def plot(ds, path, *, width=None):
        seen.append(width)
        return path

    def old_plot(ds, path):  # written before width= existed
        seen.append("old")
        return path

    exp = Experiment("p", lambda key: {"x": 1.0}, plot=plot)
    assert plotting.draw(_spikes(), "f.png", exp, width="page") == "f.png"
    old = Experiment("o", lambda key: {"x": 1.0}, plot=old_plot)
    assert plotting.draw(_spikes(), "f.png", old) == "f.png"
    assert seen == ["page", "old"]
    with pytest.raises(InputError, match="^width must be"):  # checked for any plot function
        plotting.draw(_spikes(), "f.png", exp, width="wide")
    assert seen == ["page", "old"]
    with pytest.raises(InputError, match="width: the plot function old_plot takes no width"):
        plotting.draw(_spikes(), "f.png", old, width=4)
    path = str(tmp_path / "g.png")
    assert _inches(plotting.draw(_spikes(), path, width=4))[0] == pytest.approx(4, abs=0.01)


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", ["wide", "0", "nan", "-3"])
def test_cli_bad_width_is_one_line_and_exit_2(tmp_path, capsys, width):
    """Checked first: before the store is opened (it does not exist) or anything computed."""
    missing = str(tmp_path / "missing.zarr")
    for args in (
        ["plot", missing, "--width", width],
        ["run", "spikes", "--out", missing, "--width", width],
    ):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            "jaxfeat: error: --width must be 'column' (3.5 in), 'page' (7.0 in) or inches "
            f"from 1.5 to 50, got {_shown(width)}"
        ]
    assert not (tmp_path / "missing.zarr").exists()


def _shown(text):
    try:
        return repr(float(text))
    except ValueError:
        return repr(text)


def test_cli_plot_width_column_writes_a_column_wide_truetype_pdf(tmp_path, capsys):
    from scan_helpers.toy import toy

    store = str(tmp_path / "toy.zarr")
    scan(toy, {"scale": [0.5, 1.0]}, 2, out=store, chunk_size=2, progress=False)
    out = tmp_path / "fig.pdf"
    assert cli.main(["plot", store, "--out", str(out), "--width", "column"]) == 0
    pdf = out.read_bytes()
    assert b"/MediaBox [ 0 0 252 " in pdf and b"/Type3" not in pdf
    png = tmp_path / "fig.png"
    assert cli.main(["plot", store, "--out", str(png), "--width", "4.25"]) == 0
    assert _inches(png)[0] == pytest.approx(4.25, abs=0.01)
    assert "figure:" in capsys.readouterr().out


def test_cli_run_passes_width_to_the_figure(tmp_path, monkeypatch, capsys):
    """`jaxfeat run NAME --width page` draws the experiment's figure at that width (the scan
    itself replaced by a finished fake: nothing to compute)."""
    import jaxfeat._scan

    ds = _spikes()
    ds.attrs |= {"trace_seconds": 0.0, "compile_seconds": 0.0, "compute_seconds": 0.0}
    monkeypatch.setattr(jaxfeat._scan, "scan", lambda *args, **kw: ds)
    out = tmp_path / "s.zarr"
    assert cli.main(["run", "spikes", "--out", str(out), "--quiet", "--width", "page"]) == 0
    assert _inches(tmp_path / "s.png")[0] == pytest.approx(7.0, abs=0.01)
    assert cli.main(["run", "spikes", "--out", str(out), "--quiet", "--width", "2.5"]) == 0
    assert _inches(tmp_path / "s.png")[0] == pytest.approx(2.5, abs=0.01)
    assert "figure:" in capsys.readouterr().out
