"""One vocabulary (DESIGN §8): every 0.1 spelling still works, warns with a DeprecationWarning
that names the new spelling, and gives bit-identical results; the new spellings do not warn;
no module is shadowed by a function of the same name."""

import importlib
import pkgutil
import re
import sys
import types
import warnings

import jax
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat import theory

spikes_mod = importlib.import_module("jaxfeat.experiments.spikes")
rf_mod = importlib.import_module("jaxfeat.experiments.random_features")

DIST = jf.data.SingleIndex(np.eye(1, 6)[0], [0.0, 1.0, 0.7], noise=0.1)
KEY = jax.random.key(3)


def _leaves(x):
    """A result as a flat list of NumPy arrays (dicts by key, modules and tuples by leaf)."""
    if isinstance(x, dict):
        return [np.asarray(x[k]) for k in sorted(x)]
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(x)]


def _no_warning(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)], [
        str(w.message) for w in caught
    ]
    return out


# (new spelling, old spelling, the new name the warning must mention)
CASES = {
    "one_step N=": (
        lambda: jf.one_step(KEY, DIST, n=20, width=5),
        lambda: jf.one_step(KEY, DIST, n=20, N=5),
        "width=",
    ),
    "one_step init=": (
        lambda: jf.one_step(KEY, DIST, n=20, width=5, scheme="gaussian"),
        lambda: jf.one_step(KEY, DIST, n=20, width=5, init="gaussian"),
        "scheme=",
    ),
    "one_step 1/sqrt(N)": (
        lambda: jf.one_step(KEY, DIST, n=20, width=5, output_scale="1/sqrt(width)"),
        lambda: jf.one_step(KEY, DIST, n=20, width=5, output_scale="1/sqrt(N)"),
        "1/sqrt(width)",
    ),
    "one_step tiled init=": (
        lambda: jf.one_step(KEY, DIST, n=20, width=5, scheme="gaussian", tile=3),
        lambda: jf.one_step(KEY, DIST, n=20, width=5, init="gaussian", tile=3),
        "scheme=",
    ),
    "one_step_spikes N=": (
        lambda: jf.algorithms.one_step_spikes(KEY, DIST, n=30, n_tilde=30, width=5, n_test=10, k=2),
        lambda: jf.algorithms.one_step_spikes(KEY, DIST, n=30, n_tilde=30, N=5, n_test=10, k=2),
        "width=",
    ),
    "TwoLayer.init 1/sqrt(m)": (
        lambda: jf.TwoLayer.init(KEY, 6, 3, "relu", output_scale="1/sqrt(width)"),
        lambda: jf.TwoLayer.init(KEY, 6, 3, "relu", output_scale="1/sqrt(m)"),
        "1/sqrt(width)",
    ),
    "TwoLayer.init 1/m": (
        lambda: jf.TwoLayer.init(KEY, 6, 3, "relu", output_scale="1/width", max_width=8),
        lambda: jf.TwoLayer.init(KEY, 6, 3, "relu", output_scale="1/m", max_width=8),
        "1/width",
    ),
    "init_ensemble 1/m": (
        lambda: jf.init_ensemble(KEY, [2, 4], 3, "relu", seeds=2, output_scale="1/width"),
        lambda: jf.init_ensemble(KEY, [2, 4], 3, "relu", seeds=2, output_scale="1/m"),
        "1/width",
    ),
    "theory.spike_count": (
        lambda: [theory.predicted_spike_count(a) for a in (0.0, 0.3, 0.4, 0.41)],
        lambda: [theory.spike_count(a) for a in (0.0, 0.3, 0.4, 0.41)],
        "predicted_spike_count",
    ),
    "spike_strengths N=": (
        lambda: theory.spike_strengths(
            [0.5, 0.5, 0.3], eta=2.0, zeta_norm=1.0, n_tilde=90, width=7
        ),
        lambda: theory.spike_strengths([0.5, 0.5, 0.3], eta=2.0, zeta_norm=1.0, n_tilde=90, N=7),
        "width=",
    ),
    "spikes experiment N=": (
        lambda: spikes_mod.run(KEY, n=40, dim=6, width=5, n_test=10, k=2),
        lambda: spikes_mod.run(KEY, n=40, dim=6, N=5, n_test=10, k=2),
        "width=",
    ),
    "spikes experiment 1/sqrt(N)": (
        lambda: spikes_mod.run(KEY, n=40, n_test=10, k=2, output_scale="1/sqrt(width)"),
        lambda: spikes_mod.run(KEY, n=40, n_test=10, k=2, output_scale="1/sqrt(N)"),
        "1/sqrt(width)",
    ),
    "random_features experiment init=": (
        lambda: rf_mod.run(KEY, width=6, dim=3, n_train=20, n_test=10, scheme="gaussian"),
        lambda: rf_mod.run(KEY, width=6, dim=3, n_train=20, n_test=10, init="gaussian"),
        "scheme=",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_old_spelling_warns_names_the_new_one_and_gives_identical_results(case):
    new, old, new_name = CASES[case]
    expected = _no_warning(new)
    with pytest.warns(DeprecationWarning, match=r"deprecated, use .*" + re.escape(new_name)):
        got = old()
    a, b = _leaves(expected), _leaves(got)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # bit-identical, NaN where NaN


def test_the_old_name_and_the_new_name_together_raise():
    with pytest.raises(ValueError, match="width= only"):
        jf.one_step(KEY, DIST, n=20, width=5, N=5)
    with pytest.raises(ValueError, match="scheme= only"):
        jf.one_step(KEY, DIST, n=20, width=5, scheme="sphere", init="sphere")


def test_errors_name_the_argument_as_typed():
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="N must be positive"):
        jf.one_step(KEY, DIST, n=20, N=0)
    with pytest.raises(ValueError, match="width must be positive"):
        jf.one_step(KEY, DIST, n=20, width=0)
    with pytest.raises(ValueError, match="width= .* is required"):
        jf.one_step(KEY, DIST, n=20)
    with pytest.raises(ValueError, match="output_scale must be one of"):
        jf.one_step(KEY, DIST, n=20, width=5, output_scale="1/sqrt(n)")


@pytest.mark.slow
def test_one_output_scale_vocabulary_everywhere():
    """nets and one_step accept the same three strings and agree on the value."""
    for spec in ("1", "1/sqrt(width)", "1/width"):
        net = _no_warning(lambda: jf.TwoLayer.init(KEY, 9, 3, "relu", output_scale=spec))
        res = _no_warning(lambda: jf.one_step(KEY, DIST, n=20, width=9, output_scale=spec))
        assert float(net.scale) == float(res.scale)


def test_old_module_path_imports_with_a_warning():
    with pytest.warns(DeprecationWarning, match="one_gradient_step"):
        from jaxfeat.algorithms.one_step import one_step_spikes
    assert one_step_spikes is jf.algorithms.one_step_spikes
    assert jf.algorithms.one_step is jf.one_step  # the attribute stays the function


def _packages():
    return sorted(
        ["jaxfeat"]
        + [
            m.name
            for m in pkgutil.walk_packages(jf.__path__, "jaxfeat.")
            if m.ispkg and not m.name.startswith("jaxfeat._")
        ]
    )


@pytest.mark.parametrize("package", _packages())
def test_no_module_is_shadowed_by_an_attribute_of_the_same_name(package):
    """For every submodule `package.name`, `package.name` is that module (DESIGN §8)."""
    pkg = importlib.import_module(package)
    shadowed = []
    for info in pkgutil.iter_modules(pkg.__path__):
        full = f"{package}.{info.name}"
        before = getattr(pkg, info.name, None)  # importing a module rebinds the name: look first
        with warnings.catch_warnings():  # deprecated modules (kept for one release) warn
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(full)
        for value in (before, getattr(pkg, info.name)):
            if value is not None and value is not module:
                shadowed.append(f"{full} is {type(value).__name__}")
    assert not shadowed, shadowed
    assert isinstance(sys.modules[package], types.ModuleType)
