"""User experiments: `jaxfeat.experiments.register`, a plain function given to `jf.scan` (wrapped
by `from_function`), and the fallback figure `jaxfeat.plotting.generic_scan` — each does what its
docstring says."""

import jax
import jax.numpy as jnp
import matplotlib.figure
import numpy as np
import pytest
from conftest import compile_log

import jaxfeat as jf
from jaxfeat import plotting


def toy(key, a=1.0, m=3):
    """`m` sets a shape, so it only works as a static (Python int) parameter."""
    noise = jax.random.normal(key, ())
    return {"y": a * jnp.ones(m).sum() + noise, "z": a + 0.0 * noise, "v": a * jnp.arange(2.0)}


def per_seed(seed, **params):
    return toy(jax.random.fold_in(jax.random.key(0), seed), **params)


def test_register_makes_an_experiment_scannable_by_name():
    name = "h_tests_toy"
    exp = jf.Experiment(name, toy, dynamic=frozenset({"a"}), dims={"v": ("k",)})
    try:
        assert jf.experiments.register(exp) is exp
        assert name in jf.experiments.names() and jf.experiments.get(name) is exp
        ds = jf.scan(name, {"a": [1.0, 2.0]}, 2, params={"m": 4}, progress=False)
        for i, a in enumerate([1.0, 2.0]):
            for s in range(2):
                want = per_seed(s, a=a, m=4)
                np.testing.assert_allclose(ds["y"].values[i, s], want["y"], rtol=1e-12)
                np.testing.assert_allclose(ds["v"].values[i, s], want["v"], rtol=1e-12)
        assert ds["v"].dims[-1] == "k"
    finally:
        getattr(jf.experiments, "_REGISTRY", {}).pop(name, None)


def _chunk_compiles(log):
    return [m for m in log if m == "jit(chunk)"]


def test_plain_function_float_axes_are_vmapped_other_axes_static():
    """from_function: keyword defaults are the parameters (m = 3 here); a grid axis of floats is
    one program (vmapped), an integer axis compiles once per value and reaches `fn` as a
    Python int (else `jnp.ones(m)` could not be built)."""
    with compile_log() as log:
        ds = jf.scan(toy, {"a": [0.5, 1.5, 2.5]}, 3, chunk_size=3, progress=False)
    assert len(_chunk_compiles(log)) == 1, log
    for i, a in enumerate([0.5, 1.5, 2.5]):
        for s in range(3):
            np.testing.assert_allclose(ds["y"].values[i, s], per_seed(s, a=a)["y"], rtol=1e-12)
    with compile_log() as log:
        ds = jf.scan(toy, {"m": [2, 5]}, 2, chunk_size=2, progress=False)
    assert len(_chunk_compiles(log)) == 2, log
    np.testing.assert_allclose(ds["y"].values[1, 1], per_seed(1, m=5)["y"], rtol=1e-12)


@pytest.fixture
def drawn(monkeypatch):
    """The figures that `savefig` is called on, kept for inspection."""
    figures = []
    save = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def test_generic_scan_draws_seed_means_against_the_first_axis(tmp_path, drawn):
    grid = {"a": [1.0, 2.0], "b": [0.5, 1.5], "c": [1.0, 3.0]}
    fn = lambda key, a=1.0, b=0.0, c=0.0: {  # noqa: E731
        "y": a + b * c + jax.random.normal(key, ()),
        "v": jnp.full(2, a),
    }
    ds = jf.scan(fn, grid, 4, progress=False)
    path = str(tmp_path / "g.png")
    assert plotting.generic_scan(ds, path) == path and (tmp_path / "g.png").stat().st_size > 0
    (fig,) = drawn
    (ax,) = fig.axes  # one panel per scalar output: "y" ("v" is not scalar)
    assert ax.get_title() == "y" and ax.get_xlabel() == "a"
    assert "fixed: c=1.0" in fig._suptitle.get_text()  # the third axis at its first value
    lines = ax.containers  # one error-bar line per value of the second axis
    assert len(lines) == 2
    mean = ds["y"].isel(c=0).mean("seed")
    se = ds["y"].isel(c=0).std("seed", ddof=1) / 2
    for j, bar in enumerate(lines):
        x, y = bar.lines[0].get_data()
        np.testing.assert_allclose(x, grid["a"])
        np.testing.assert_allclose(y, mean.isel(b=j).values, rtol=1e-12)
        # the error bar spans mean ± se
        seg = bar.lines[2][0].get_segments()
        np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in seg], 2 * se.isel(b=j), rtol=1e-9)


def test_generic_scan_of_one_point_shows_points(tmp_path, drawn):
    fn = lambda key, a=2.0: {"y": a + jax.random.normal(key, ()), "z": a * 0.5}  # noqa: E731
    ds = jf.scan(fn, {}, 3, progress=False)
    plotting.generic_scan(ds, str(tmp_path / "p.png"))
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == ["y", "z"]
    x, y = fig.axes[1].containers[0].lines[0].get_data()
    np.testing.assert_allclose(np.asarray(y, dtype=float), [1.0])
