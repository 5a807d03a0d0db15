"""The one-step protocol as a value (Moniri et al. 2023, arXiv 2310.07891, §4; MATH §4): how
W₀ and a are drawn, the gradient step, the ridge readout and the spike count, as small frozen
dataclasses that `one_step`, `one_step_spikes`, the `spikes` experiment and its presets pass
whole.

A protocol is a value you can print, compare, `diff` and store: `keywords()` flattens it into
the keyword names the functions and the experiments take (the names a scan's config records),
and `OneStepProtocol.from_keywords` rebuilds it from them (a stored config, a CLI `--set`).

    >>> import jaxfeat as jf
    >>> jf.protocol.DANDI.diff(jf.protocol.MONIRI)
    {'scheme': ('gaussian', 'sphere'), 'init_seed': (0, None), ...}
    >>> jf.algorithms.one_step_spikes(key, dist, n=1000, n_tilde=1000, width=250,
    ...                               protocol=jf.protocol.MONIRI)

The published protocols (`MONIRI`, `DANDI`, `BA`) are the `spikes` presets of the same names;
each is pinned against a NumPy transcription of its update rule in tests/test_protocols.py.
Fields marked [R] in MATH are reconstructions: they are fields, so a reader can change them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from . import _checks, _vocabulary, labels as _labels
from ._checks import InputError, InputTypeError

__all__ = ["Init", "Step", "Readout", "SpikeCount", "OneStepProtocol", "MONIRI", "DANDI", "BA"]

SCHEMES = ("sphere", "gaussian")
A_LAWS = ("gaussian", "sign")
READOUTS = ("fresh", "step")
RIDGE_LOSSES = ("mean", "sum")  # jaxfeat.ridge.RIDGE_LOSSES (checked equal in the tests)


def _keyword(default, name: str | None = None):
    """A field whose keyword (the flat name functions and stores use) is `name`."""
    return dataclasses.field(default=default, metadata={"keyword": name})


def _scale(name: str, value) -> str:
    """An output-scale string in its canonical spelling (the 0.1 spellings warn)."""
    new = _vocabulary.OLD_OUTPUT_SCALES.get(value, value) if isinstance(value, str) else value
    _checks.check_choice(name, new, _vocabulary.OUTPUT_SCALES)
    return _vocabulary.output_scale("protocol", value)


def check_alpha(alpha) -> None:
    """α ∈ [0, ½] when concrete (½: Dandi et al.'s giant step η = c·√n)."""
    if _checks.is_concrete(alpha):
        a = _checks.check_real("alpha", alpha)
        if not 0.0 <= a <= 0.5:
            raise InputError(f"alpha must be in [0, 1/2], got {alpha}")


@dataclasses.dataclass(frozen=True)
class Init:
    """How W₀ (width × dim) and a (width) are drawn.

    - `scheme`: W₀'s rows uniform on the unit sphere (`"sphere"`, Moniri et al.) or
      N(0, I/dim) (`"gaussian"`, Ba et al., Dandi et al.).
    - `a_law`: a ~ N(0, I/width) (`"gaussian"`) or Unif{±1/√width} (`"sign"`).
    - `output_scale`: f(x) = s·aᵀσ(W x) with s = `"1"`, `"1/sqrt(width)"` or `"1/width"`.
    - `seed` (keyword `init_seed`): None draws W₀ and a from each seed's key; an int draws them
      once from `jax.random.key(seed)`, the same for every seed (Dandi et al.'s code: fixed
      initialisation, re-sampled data).
    """

    scheme: str = _keyword("sphere")
    a_law: str = _keyword("gaussian")
    output_scale: str = _keyword("1")
    seed: int | None = _keyword(None, "init_seed")

    def __post_init__(self):
        _checks.check_choice("scheme", self.scheme, SCHEMES)
        _checks.check_choice("a_law", self.a_law, A_LAWS)
        object.__setattr__(self, "output_scale", _scale("output_scale", self.output_scale))
        if self.seed is not None:
            _checks.check_nonneg_int("init_seed", self.seed)


@dataclasses.dataclass(frozen=True)
class Step:
    """The gradient step W₁ = W₀ + η·G on the step's n samples (MATH §4.1), η = c·n^α.

    - `alpha` ∈ [0, ½] and `c` > 0: dynamic values (a scan vmaps over them).
    - `steps`: t giant steps, each on fresh samples with the same η (MATH §4.5).
    - `labels`: the step's (and the readout's) label rule (`jaxfeat.labels`): None,
      `"moments"` (Dandi et al.'s y − ȳ − X·Xᵀy/n), `"centred"` or a callable (X, y) -> y′.
    """

    alpha: Any = _keyword(0.3)
    c: Any = _keyword(1.0)
    steps: int = _keyword(1)
    labels: str | Callable | None = _keyword(None)

    def __post_init__(self):
        check_alpha(self.alpha)
        _checks.check_in_range("c", self.c, 0.0, closed=False)
        _checks.check_positive_int("steps", self.steps)
        _labels.check_rule(self.labels)


@dataclasses.dataclass(frozen=True)
class Readout:
    """The second layer: ridge regression on features σ(X̃W₁ᵀ) (`jaxfeat.ridge`).

    - `sample` (keyword `readout`): `"fresh"` (an independent X̃ of size ñ: Moniri et al.,
      Ba et al.) or `"step"` (the step's own samples: Dandi et al.'s code).
    - `lambdas`: None (the grid 10⁻⁷..1, λ chosen by leave-one-out on the readout sample), a
      tuple of λ (a grid) or one λ.
    - `loss` (`ridge_loss`): `"mean"` ((1/n)|y − ŷ|² + λ|a|²) or `"sum"` (|y − ŷ|² + λ|a|²).
    - `intercept`: fit an unpenalised intercept.
    - `scale` (`ridge_scale`): ŷ = s·F a (+ b) with s one of the output-scale strings.
    - `n_test` test points, formed `test_tile` rows at a time (None: at once).
    - `baseline` (`init_readout`): also fit the random-features baseline on W₀ (F₀).
    """

    sample: str = _keyword("fresh", "readout")
    lambdas: Any = _keyword(None)  # None, one λ, a tuple of λ (or traced)
    loss: str = _keyword("mean", "ridge_loss")
    intercept: bool = _keyword(True)
    scale: str = _keyword("1", "ridge_scale")
    n_test: int = _keyword(2000)
    test_tile: int | None = _keyword(None)
    baseline: bool = _keyword(True, "init_readout")

    def __post_init__(self):
        _checks.check_choice("readout", self.sample, READOUTS)
        object.__setattr__(self, "lambdas", _lambdas(self.lambdas))
        _checks.check_choice("ridge_loss", self.loss, RIDGE_LOSSES)
        _checks.check_bool("intercept", self.intercept)
        object.__setattr__(self, "scale", _scale("ridge_scale", self.scale))
        _checks.check_positive_int("n_test", self.n_test)
        if self.test_tile is not None:
            _checks.check_positive_int("test_tile", self.test_tile)
        _checks.check_bool("init_readout", self.baseline)


def _lambdas(lambdas):
    """None, one λ, or a grid as a tuple (hashable, JSON-able), each > 0; a traced value (a
    scan's dynamic λ) passes unchecked."""
    if lambdas is None or not _checks.is_concrete(lambdas):
        return lambdas
    if isinstance(lambdas, (list, tuple)) or getattr(lambdas, "ndim", 0) >= 1:
        items = list(lambdas)
        if not items or any(isinstance(x, (list, tuple)) or getattr(x, "ndim", 0) for x in items):
            raise InputError(f"lambdas must be one λ or a non-empty 1-D grid, got {lambdas!r}")
        grid = tuple(_checks.check_real("lambdas", x) for x in items)
        for lam in grid:
            _checks.check_in_range("lambdas", lam, 0.0, closed=False)
        return grid
    _checks.check_in_range("lambdas", lambdas, 0.0, closed=False)
    return lambdas


@dataclasses.dataclass(frozen=True)
class SpikeCount:
    """The spike count of F₁ (MATH §4.3): the top `k` singular values, outliers above
    `margin` × the deflated edge, the spike part of F₁ expanded to Hermite `degree`."""

    k: int = _keyword(10)
    degree: int = _keyword(8)
    margin: float = _keyword(1.02)

    def __post_init__(self):
        _checks.check_positive_int("k", self.k)
        _checks.check_positive_int("degree", self.degree)
        _checks.check_in_range("margin", self.margin, 1.0)


_PARTS = ("init", "step", "readout", "spikes")


@dataclasses.dataclass(frozen=True)
class OneStepProtocol:
    """The whole one-step protocol: the `activation` σ (a name of `jaxfeat.activations` or an
    `Activation`), then `init`, `step`, `readout` and `spikes`. The defaults are those of
    `jaxfeat.one_step_spikes`; `MONIRI`, `DANDI` and `BA` are the published ones.

    **Methods:** `keywords()` the flat keyword dict (`one_step_spikes(**keywords)`, a scan's
    config); `from_keywords(mapping)` the inverse (unknown names raise `InputError`),
    `from_config(config)` the same from a whole scan config (other names left out);
    `replace(**keywords)` a copy with some keywords changed; `diff(other)` {keyword: (this,
    other)} where they differ; `str()` one line per part.
    """

    activation: Any = _keyword("shifted_relu")
    init: Init = Init()
    step: Step = Step()
    readout: Readout = Readout()
    spikes: SpikeCount = SpikeCount()

    def __post_init__(self):
        for part, cls in zip(_PARTS, (Init, Step, Readout, SpikeCount)):
            if not isinstance(getattr(self, part), cls):
                raise InputTypeError(
                    f"{part} must be a jaxfeat.protocol.{cls.__name__}, got {getattr(self, part)!r}"
                )

    def keywords(self) -> dict[str, Any]:
        """{keyword: value} of every field, in the names `one_step_spikes` takes."""
        out = {"activation": self.activation}
        for part in _PARTS:
            out |= _flat(getattr(self, part))
        return out

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> OneStepProtocol:
        """The protocol of a flat keyword dict (missing keywords keep their defaults)."""
        return cls().replace(**keywords)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str, **point) -> OneStepProtocol:
        """The protocol of a scan: `config` its stored config (`ds.attrs["jaxfeat_config"]`,
        the JSON string or its dict: the fixed `params` and the grid's one-valued axes) or a
        flat parameter dict (a preset's `set`); sizes and teacher are left out. A protocol
        keyword that is a grid axis with several values (α, say) needs its value in `point`
        (`from_config(config, alpha=0.3)`); a config with no protocol keyword raises."""
        flat: dict[str, Any] = dict(json.loads(config) if isinstance(config, str) else config)
        if "params" in flat and "grid" in flat:  # a store's config
            grid = flat["grid"]
            flat = {**flat["params"], **{a: v[0] for a, v in grid.items() if len(v) == 1}}
            several = sorted(a for a, v in grid.items() if len(v) > 1 and a in KEYWORDS)
            missing = [a for a in several if a not in point]
            if missing:
                raise InputError(
                    f"{', '.join(missing)} took several values in this scan: give the one you "
                    f"want, e.g. from_config(config, {missing[0]}=…)"
                )
        found = {k: v for k, v in {**flat, **point}.items() if k in KEYWORDS}
        if not found:
            raise InputError("config holds no protocol keyword (not a one-step scan's config?)")
        return cls.from_keywords(found)

    def replace(self, **keywords) -> OneStepProtocol:
        """A copy with the given keywords (flat names: `alpha`, `ridge_loss`, `init_seed`, …)."""
        unknown = sorted(set(keywords) - set(KEYWORDS))
        if unknown:
            raise InputError(
                f"unknown protocol keyword(s) {', '.join(unknown)}; known: {', '.join(KEYWORDS)}"
            )
        parts = {}
        for part in _PARTS:
            value = getattr(self, part)
            changes = {
                f.name: keywords[_name(f)]
                for f in dataclasses.fields(value)
                if _name(f) in keywords
            }
            parts[part] = dataclasses.replace(value, **changes) if changes else value
        activation = keywords.get("activation", self.activation)
        return OneStepProtocol(activation=activation, **parts)

    def diff(self, other: OneStepProtocol) -> dict[str, tuple[Any, Any]]:
        """{keyword: (this value, other's)} for every keyword where the two differ."""
        mine, theirs = self.keywords(), other.keywords()
        return {k: (mine[k], theirs[k]) for k in mine if not _checks.same_value(mine[k], theirs[k])}

    def __str__(self) -> str:
        lines = [f"OneStepProtocol(activation={self.activation!r})"]
        for part in _PARTS:
            fields = ", ".join(f"{k}={v!r}" for k, v in _flat(getattr(self, part)).items())
            lines.append(f"  {part}: {fields}")
        return "\n".join(lines)


def _name(field: dataclasses.Field) -> str:
    return field.metadata.get("keyword") or field.name


def _flat(part) -> dict[str, Any]:
    return {_name(f): getattr(part, f.name) for f in dataclasses.fields(part)}


#: every keyword of a protocol, in order
KEYWORDS: tuple[str, ...] = tuple(OneStepProtocol().keywords())
#: the keywords `one_step` takes (the step and the initialisation; the rest is the readout's)
STEP_KEYWORDS: tuple[str, ...] = ("activation",) + tuple(_flat(Init())) + tuple(_flat(Step()))


# Moniri, Lee, Hassani, Dobriban 2023 (arXiv 2310.07891), §4.1 as MATH reconstructs it [R]:
# W₀ rows on the sphere, a ~ N(0, I/N), f = aᵀσ(Wx)/√N with ReLU, η = c·n^α, a fresh (X̃, ỹ) of
# size ñ = n for the features and a ridge path (mean loss, intercept).
MONIRI = OneStepProtocol(
    activation="relu",
    init=Init(scheme="sphere", a_law="gaussian", output_scale="1/sqrt(width)"),
    readout=Readout(sample="fresh", n_test=2000),
)

# Dandi, Krzakala, Loureiro, Pesce, Stephan 2023 (arXiv 2305.18270), the "one giant step" of
# their single_step notebook: W₀ ~ N(0, I/d) and a ~ N(0, I/p) fixed across seeds, f =
# aᵀσ(Wx)/√p with ReLU; labels y − ȳ − X(Xᵀy/n) (each set its own estimate); one step with
# η = 10√(n p), which is η = c·n^α with c = 10, α = ½ in jaxfeat's normalisation; ridge on the
# step's own samples with features σ(XW₁ᵀ)/√p, loss |y − ŷ|² + λ|a|², λ = 1, no intercept;
# 10⁵ test points, 8,192 at a time; no W₀ baseline readout (their loop fits none).
DANDI = OneStepProtocol(
    activation="relu",
    init=Init(scheme="gaussian", a_law="gaussian", output_scale="1/sqrt(width)", seed=0),
    step=Step(alpha=0.5, c=10.0, labels="moments"),
    readout=Readout(
        sample="step",
        lambdas=1.0,
        loss="sum",
        intercept=False,
        scale="1/sqrt(width)",
        n_test=100000,
        test_tile=8192,
        baseline=False,
    ),  # fmt: skip
)

# Ba, Erdogdu, Suzuki, Wang, Wu, Yang 2022 (arXiv 2205.01445) [R]: f = aᵀσ(Wx)/√N, W₀ ~ N(0,
# I/d), a ~ N(0, I/N), one step W₁ = W₀ + η√N·G₀ with η = Θ(1) (α = 0, η = c), ridge on a fresh
# sample with features σ(X̃W₁ᵀ)/√N and no intercept; tanh (centred: μ₀ = 0) is this
# reconstruction's.
BA = OneStepProtocol(
    activation="tanh",
    init=Init(scheme="gaussian", a_law="gaussian", output_scale="1/sqrt(width)"),
    step=Step(alpha=0.0),
    readout=Readout(sample="fresh", intercept=False, scale="1/sqrt(width)", n_test=2000),
)
