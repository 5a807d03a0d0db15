"""The one-step protocol as a value (issue #26 item 3, `jaxfeat.protocol`): printed, compared,
diffed, stored as flat keywords and rebuilt; checked on construction with errors naming the
keyword; passed whole to `one_step`, `one_step_spikes` and `one_step_equivalence` with the same
numbers as the keywords it holds, and no new program for an equal value."""

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same, compile_log

import jaxfeat as jf
from jaxfeat import protocol as P
from jaxfeat._checks import InputError
from jaxfeat.algorithms import one_gradient_step as osg
from jaxfeat.algorithms.equivalence import one_step_equivalence
from jaxfeat.experiments import spikes

PUBLISHED = {"moniri": P.MONIRI, "dandi": P.DANDI, "ba": P.BA}
TINY = {"n": 40, "n_tilde": 44, "width": 9}  # odd sizes: no other test compiles them
SMALL_READOUT = {"n_test": 30, "k": 3, "degree": 3}


def _dist(dim=7):
    return jf.data.SingleIndex(np.eye(1, dim)[0], [0.0, 1.0, 0.5], noise=0.1)


@pytest.mark.parametrize("protocol", [P.OneStepProtocol(), *PUBLISHED.values()])
def test_keywords_round_trip_through_json(protocol):
    stored = json.loads(json.dumps(protocol.keywords()))  # what a scan's config holds
    assert P.OneStepProtocol.from_keywords(stored) == protocol
    assert hash(P.OneStepProtocol.from_keywords(stored)) == hash(protocol)  # a static value
    assert tuple(protocol.keywords()) == P.KEYWORDS


def test_a_stored_config_gives_its_protocol_back():
    config = spikes.DEFAULTS | spikes.spikes_experiment.presets["dandi"]["set"] | {"n": 3326}
    assert P.OneStepProtocol.from_config(config) == P.DANDI
    with pytest.raises(InputError, match="unknown protocol keyword.*dim"):
        P.OneStepProtocol.from_keywords(config)


def test_diff_names_exactly_the_keywords_that_differ():
    assert P.MONIRI.diff(P.MONIRI) == {}
    diff = P.DANDI.diff(P.MONIRI)
    assert diff["init_seed"] == (0, None) and diff["readout"] == ("step", "fresh")
    assert diff["ridge_loss"] == ("sum", "mean") and "activation" not in diff
    assert set(diff) == {k for k in P.KEYWORDS if P.DANDI.keywords()[k] != P.MONIRI.keywords()[k]}
    assert P.MONIRI.replace(alpha=0.4).diff(P.MONIRI) == {"alpha": (0.4, 0.3)}


def test_printed_one_line_per_part():
    text = str(P.DANDI)
    assert text.splitlines()[0] == "OneStepProtocol(activation='relu')"
    assert "init_seed=0" in text and "ridge_loss='sum'" in text and "alpha=0.5" in text
    assert len(text.splitlines()) == 5


def test_the_spikes_presets_are_the_published_protocols():
    for name, protocol in PUBLISHED.items():
        preset = spikes.spikes_experiment.presets[name]
        resolved = spikes.spikes_experiment.resolve(preset["set"])
        point = resolved | {k: v[0] for k, v in preset["grid"].items()}
        want = protocol.replace(**{k: v[0] for k, v in preset["grid"].items() if k in P.KEYWORDS})
        assert P.OneStepProtocol.from_config(point) == want, name
    assert spikes.PROTOCOL == P.MONIRI.replace(n_test=1000)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: P.Readout(loss="median"), "ridge_loss must be one of"),
        (lambda: P.MONIRI.replace(ridge_scale="1/p"), "ridge_scale must be one of"),
        (lambda: P.Init(scheme="orthogonal"), "scheme must be one of"),
        (lambda: P.Init(seed=-1), "init_seed must be >= 0"),
        (lambda: P.Step(alpha=0.7), r"alpha must be in \[0, 1/2\], got 0.7"),
        (lambda: P.Step(c=0.0), "c must be finite and > 0"),
        (lambda: P.Step(steps=0), "steps must be"),
        (lambda: P.Step(labels="mean"), "labels must be None"),
        (lambda: P.Readout(lambdas=(1.0, -1.0)), "lambdas must be finite and > 0"),
        (lambda: P.Readout(sample="test"), "readout must be one of"),
        (lambda: P.SpikeCount(margin=0.9), "margin must be finite and >= 1"),
        (lambda: P.MONIRI.replace(alpha_=0.3), "unknown protocol keyword.*alpha_"),
    ],
)
def test_bad_values_name_their_keyword(build, match):
    with pytest.raises(InputError, match=match):
        build()


# run without pytest's jaxtyping hook, which refuses annotated fields first (users have none)
_BAD_TYPES = """
import json, jax, numpy as np
import jaxfeat as jf
from jaxfeat import protocol as P
dist = jf.data.SingleIndex(np.eye(1, 5)[0], [0.0, 1.0], noise=0.1)
cases = {
    "alpha must be a number": lambda: P.Step(alpha="0.3"),
    "intercept must be True or False": lambda: P.Readout(intercept=1),
    "init_readout must be True or False": lambda: P.Readout(baseline="no"),
    "init must be a jaxfeat.protocol.Init": lambda: P.OneStepProtocol(init="sphere"),
    "margin must be a number": lambda: P.SpikeCount(margin=True),
    "protocol must be a jaxfeat.protocol.OneStepProtocol": lambda: (
        jf.algorithms.one_step_spikes(jax.random.key(0), dist, protocol={}, n=4)),
}
out = {}
for want, build in cases.items():
    try:
        build()
        out[want] = "accepted"
    except TypeError as e:
        out[want] = None if want in str(e) else str(e)[:200]
print(json.dumps(out))
"""


def test_bad_types_name_their_keyword():
    run = subprocess.run(
        [sys.executable, "-c", _BAD_TYPES], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(outcome) == 6
    assert all(v is None for v in outcome.values()), outcome


def test_the_choices_are_the_functions_own():
    assert P.RIDGE_LOSSES == jf.ridge.RIDGE_LOSSES
    assert P.A_LAWS == osg._A_LAWS and P.READOUTS == osg._READOUTS
    assert set(P.SCHEMES) == {"sphere", "gaussian"}  # one_step's _check_scheme
    defaults = {k: v.default for k, v in _signature(osg._one_step_spikes).items()}
    for k in ("n_test", "k", "degree", "margin", "readout", "ridge_loss", "intercept"):
        assert P.OneStepProtocol().keywords()[k] == defaults[k], k
    step = _signature(osg._step_once)
    for k in ("activation", "alpha", "c", "output_scale", "a_law", "init_seed", "labels"):
        assert P.OneStepProtocol().keywords()[k] == step[k].default, k


def _signature(fn):
    import inspect

    return dict(inspect.signature(fn).parameters)


@pytest.mark.slow
def test_one_step_spikes_takes_the_protocol_whole_and_keywords_override_it(getkey):
    key, dist = getkey(), _dist()
    protocol = P.BA.replace(**SMALL_READOUT, labels="centred", steps=2)
    flat = protocol.keywords() | TINY
    with compile_log() as first:
        got = jf.algorithms.one_step_spikes(key, dist, **TINY, protocol=protocol)
    assert first
    assert_same(got, jf.algorithms.one_step_spikes(key, dist, **flat), rtol=0)
    with compile_log() as again:  # an equal value built anew, another α: the same program
        moved = jf.algorithms.one_step_spikes(
            key, dist, **TINY, protocol=dataclasses.replace(protocol), alpha=0.25
        )
    assert not again, again
    assert_same(moved, jf.algorithms.one_step_spikes(key, dist, **(flat | {"alpha": 0.25})), rtol=0)
    assert float(moved["eta"]) == pytest.approx(1.0 * TINY["n"] ** 0.25)


def test_one_step_takes_the_step_of_a_protocol_and_its_fixed_initialisation(getkey):
    dist = _dist()
    protocol = P.DANDI.replace(init_seed=3)  # its readout fields are not one_step's: unused
    a, b = (jf.one_step(getkey(), dist, n=40, width=9, protocol=protocol) for _ in range(2))
    np.testing.assert_array_equal(a.W0, b.W0)  # the same initialisation for every seed
    W0, a0 = osg.init_weights(jax.random.key(3), width=9, dim=7, scheme="gaussian")
    np.testing.assert_allclose(a.W0, W0, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(a.a, a0, rtol=1e-14, atol=1e-15)
    assert float(a.eta) == pytest.approx(10.0 * 40**0.5)
    key = getkey()  # given weights replace the protocol's initialisation
    given = jf.one_step(key, dist, n=40, protocol=protocol, W0=W0, a=a0)
    flat = {k: protocol.keywords()[k] for k in ("activation", "alpha", "c", "labels")}
    ref = jf.one_step(key, dist, n=40, W0=W0, a=a0, output_scale="1/sqrt(width)", **flat)
    np.testing.assert_array_equal(given.W1, ref.W1)


@pytest.mark.slow
def test_one_step_equivalence_takes_a_protocol(getkey):
    key, dist = getkey(), _dist()
    protocol = P.MONIRI.replace(n_test=30, lambdas=(0.01, 0.1), scheme="gaussian")
    kw = dict(n=40, width=9, terms=1, degree=2)
    got = one_step_equivalence(key, dist, **kw, protocol=protocol)
    flat = dict(
        activation="relu", scheme="gaussian", output_scale="1/sqrt(width)", n_test=30,
        lambdas=(0.01, 0.1),
    )  # fmt: skip
    assert_same(got, one_step_equivalence(key, dist, **kw, **flat), rtol=0)


def test_given_weights_keep_the_protocols_fixed_readout_weights_and_old_names_override(getkey):
    """W0= replaces the drawn W₀ only: init_seed still fixes a for every seed. The 0.1
    spellings beside a protocol override it like the new names (init= for scheme=,
    remove_low_order=True for labels='centred')."""
    dist = _dist()
    W0, _ = osg.init_weights(jax.random.key(5), width=9, dim=7, scheme="gaussian")
    one, two = (jf.one_step(getkey(), dist, n=40, protocol=P.DANDI, W0=W0) for _ in range(2))
    np.testing.assert_array_equal(one.a, two.a)
    key = getkey()
    with pytest.warns(DeprecationWarning, match="scheme="):
        old = jf.one_step(key, dist, n=40, width=9, protocol=P.MONIRI, init="gaussian")
    new = jf.one_step(key, dist, n=40, width=9, protocol=P.MONIRI, scheme="gaussian")
    np.testing.assert_array_equal(old.W1, new.W1)
    with pytest.warns(DeprecationWarning, match="labels='centred'"):
        old = jf.one_step(key, dist, n=40, width=9, protocol=P.DANDI, remove_low_order=True)
    new = jf.one_step(key, dist, n=40, width=9, protocol=P.DANDI, labels="centred")
    np.testing.assert_array_equal(old.W1, new.W1)


def test_from_config_reads_a_stores_config_and_asks_for_a_swept_keyword():
    params = spikes.DEFAULTS | spikes.spikes_experiment.presets["dandi"]["set"]
    config = {"experiment": "spikes", "grid": {"alpha": [0.1, 0.2], "n": [100]}, "params": params}
    with pytest.raises(InputError, match="alpha took several values"):
        P.OneStepProtocol.from_config(config)
    for stored in (config, json.dumps(config)):  # ds.attrs["jaxfeat_config"] is the string
        got = P.OneStepProtocol.from_config(stored, alpha=0.1)
        assert got == P.DANDI.replace(alpha=0.1)
    with pytest.raises(InputError, match="no protocol keyword"):
        P.OneStepProtocol.from_config({"experiment": "toy", "grid": {}, "params": {"n": 3}})


def test_lambdas_traced_pass_arrays_become_tuples_and_values_compare_by_value():
    doubled = jax.jit(lambda lam: jnp.asarray(P.Readout(lambdas=lam).lambdas) * 2)(1.5)
    assert float(doubled) == 3.0  # a scan's dynamic λ reaches the protocol traced
    grid = P.Readout(lambdas=jnp.asarray([0.1, 1.0])).lambdas
    assert grid == pytest.approx((0.1, 1.0)) and isinstance(grid, tuple)
    hash(P.Readout(lambdas=jnp.asarray([0.1, 1.0])))
    with pytest.raises(InputError, match="1-D grid"):
        P.Readout(lambdas=[[0.1, 1.0]])
    assert P.MONIRI.replace(c=1).diff(P.MONIRI) == {}  # 1 and 1.0: equal, as == has them
