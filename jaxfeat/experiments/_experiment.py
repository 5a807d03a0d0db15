"""The `Experiment` record and the registry of named experiments.

An experiment is a pure per-seed function of (key, parameters) plus what the scan engine must know.

It runs one seed at one parameter point: `fn(key, **params) -> dict[str, Array]`. The scan
engine (`jaxfeat.scan`) adds the vmaps over seeds and over the dynamic parameters, pads widths, and
compiles once per combination of the static parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping

from .. import _checks
from .._checks import InputError


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named, reproducible experiment.

    **Arguments:**

    - `name`: registry name (`jaxfeat list`).
    - `fn`: `fn(key, **params) -> dict[str, Array]` for one seed and one parameter point.
    - `description`: one line.
    - `defaults`: every parameter with its default (JSON-able values); by default the keyword
      parameters of `fn` with their defaults.
    - `dynamic`: parameters that may be traced (vmapped) when they are grid axes: scalars such as
      α, c, λ, η. Every other parameter is static: each distinct value compiles its own program.
    - `padded`: dynamic integer parameters that set a shape, mapped to the static parameter that
      receives the grid's maximum, e.g. `{"width": "max_width"}`: widths are padded and masked so a
      width sweep compiles once.
    - `capacity`: static integer size parameters that the experiment also accepts as dynamic
      values below a static capacity, mapped to the parameter that receives the capacity, e.g.
      `{"n": "n_capacity"}` (`jaxfeat.Capacity`, DESIGN §4). The scan engine groups such an
      axis's values into buckets, one compiled program per bucket at the bucket's largest
      value, from a cost model that weighs a compile against the padded compute; a seed's
      numbers do not depend on its bucket (to rounding).
    - `dims`: names of the trailing dimensions of non-scalar outputs, e.g.
      `{"singular_values": ("k",)}`.
    - `coords`: coordinate values of output dimensions, `{dim: fn(params) -> values}` evaluated
      on the scan's fixed parameters, e.g. `{"step": lambda p: log_steps(p["steps"], ...)}`.
    - `check`: the outputs whose non-finite values flag a seed as `diverged` (default: every
      floating output not in `not_applicable`). A boolean output named `diverged` (a training
      run that stopped) flags the seed too.
    - `not_applicable`: `{output: fill}` for outputs that have no value at some seeds or points,
      e.g. `{"capture": float("nan")}`: the experiment returns `fill` there. NaN otherwise means
      only one thing, that the seed diverged (DESIGN §8); a declared output is not checked for
      divergence, and `jaxfeat.summarize` leaves its fill values out of its statistics.
    - `presets`: `{name: {"grid": {...}, "seeds": S, "set": {...}}}` (`quick` is the default).
    - `plot`: the function `(ds, path) -> path` that draws the figure of `jaxfeat plot`, usually
      one of `jaxfeat.plotting` (default `None`: `jaxfeat.plotting.generic_scan`, one panel per
      scalar output); `jaxfeat.plotting.draw(ds, path, experiment)` calls it.
    """

    name: str
    fn: Callable
    description: str = ""
    defaults: Mapping | None = None
    dynamic: frozenset = frozenset()
    padded: Mapping = dataclasses.field(default_factory=dict)
    capacity: Mapping = dataclasses.field(default_factory=dict)
    dims: Mapping = dataclasses.field(default_factory=dict)
    coords: Mapping = dataclasses.field(default_factory=dict)
    check: tuple | None = None
    not_applicable: Mapping = dataclasses.field(default_factory=dict)
    presets: Mapping = dataclasses.field(default_factory=dict)
    plot: Callable | str | None = None

    def __post_init__(self):
        if self.defaults is None:
            object.__setattr__(self, "defaults", keyword_defaults(self.fn))
        if not isinstance(self.not_applicable, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in self.not_applicable.items()
        ):
            raise InputError(
                f"not_applicable must map output names to a number (the fill value), got "
                f"{self.not_applicable!r}"
            )

    def non_defaults(self, params: Mapping) -> dict:
        """The entries of `params` that differ from the defaults (a preset's settings, a run's
        fixed parameters), leaving out the capacities the engine derives from the grid
        (`padded`'s targets)."""
        defaults, derived = self.defaults or {}, set(self.padded.values())
        return {
            k: v
            for k, v in params.items()
            if k in defaults and k not in derived and not _checks.same_value(v, defaults[k])
        }

    def resolve(self, params: Mapping) -> dict:
        """Defaults overridden by `params`; unknown names raise `InputError` naming them."""
        defaults = self.defaults
        assert defaults is not None  # filled in by __post_init__
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise InputError(
                f"unknown parameter(s) {', '.join(unknown)} for experiment {self.name!r}; "
                f"known: {', '.join(sorted(defaults))}"
            )
        return {**defaults, **params}


def from_function(fn, grid: Mapping) -> Experiment:
    """Wrap a plain `fn(key, **params)`: its keyword defaults are the parameters; grid axes whose
    values are all floats are dynamic (vmapped), every other axis is static."""
    if isinstance(fn, Experiment):
        return fn
    if not callable(fn):
        raise InputError(
            f"experiment must be an Experiment, a registered name or a callable, got {fn!r}"
        )
    dynamic = frozenset(
        k for k, v in grid.items() if all(isinstance(x, float) for x in _as_list(v))
    )
    return Experiment(getattr(fn, "__name__", "experiment"), fn, dynamic=dynamic)


def keyword_defaults(fn: Callable, skip=()) -> dict:
    """Every parameter of `fn(key, ...)` after the key and not in `skip`, with its default (None
    if it has none): an experiment that wraps a library function takes its parameters from it."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    return {
        p.name: (None if p.default is p.empty else p.default)
        for p in params[1:]
        if p.name not in skip
    }


def _as_list(values):
    try:
        return list(values)
    except TypeError:
        return [values]


_REGISTRY: dict[str, Experiment] = {}


def names() -> list[str]:
    """The registered experiments' names (`jaxfeat list`)."""
    return sorted(_REGISTRY)


def get(name) -> Experiment:
    """The registered experiment `name`; an unknown name raises `InputError` listing the known."""
    if isinstance(name, Experiment):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown experiment {name!r}; known: {', '.join(names())}") from None


def register(experiment: Experiment) -> Experiment:
    """Add `experiment` to the registry, so `jaxfeat.scan` (and the CLI, once the module that
    registers it is imported) finds it by name; a name already taken is replaced."""
    if not isinstance(experiment, Experiment):
        raise InputError(f"register takes an Experiment, got {type(experiment).__name__}")
    _REGISTRY[experiment.name] = experiment
    return experiment
