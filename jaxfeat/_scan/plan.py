"""The plan of a scan: the experiment resolved, every grid axis validated and split into
static axes (one compiled program per point) and dynamic axes (vmapped), and the JSON config that
identifies the scan in its store."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping

import jax
import numpy as np

from .. import _checks
from .._checks import InputError, InputTypeError
from ..experiments._experiment import Experiment, from_function, get


class Plan:
    """Validated experiment, grid split into static and dynamic axes, and the scan's config."""

    def __init__(self, experiment, grid, seeds, params, seed, devices):
        if isinstance(experiment, str):
            experiment = get(experiment)
        _check_mappings(grid, params)
        self.grid = {str(k): _axis_values(k, v) for k, v in grid.items()}
        self.exp: Experiment = from_function(experiment, self.grid)
        self.params = self._fixed_params(params)
        self.seeds = _check_seeds(seeds)
        self.key = _check_seed(seed)
        self.axes = list(self.grid)
        self.dynamic = [a for a in self.axes if a in self.exp.dynamic]
        self.static = [a for a in self.axes if a not in self.exp.dynamic]
        self._check_dynamic_axes()
        self._check_output_dims()
        for a, target in self.exp.padded.items():
            if a in self.grid:
                self.params[target] = max(self.grid[a])
        self.static_points = list(
            itertools.product(*(range(len(self.grid[a])) for a in self.static))
        )
        self.devices = list(devices) if devices is not None else jax.local_devices()
        if not self.devices:
            raise InputError("devices must name at least one device")
        self.config = {
            "experiment": self.exp.name,
            "grid": self.grid,
            "params": self.params,
            "seeds": self.seeds,
            "key": self.key,  # the stored name of the base seed (stores from before 0.2 agree)
        }
        # float64 results never mix with float32 ones (a dynamic config attribute: pyright
        # cannot see it)
        if jax.config.jax_enable_x64:  # pyright: ignore[reportAttributeAccessIssue]
            self.config["x64"] = True
        _json(self.config)  # every value must serialise, so the store can hold it

    def _fixed_params(self, params) -> dict:
        """The experiment's parameters that are not grid axes: defaults overridden by `params`."""
        both = sorted(set(self.grid) & set(params))
        if both:
            raise InputError(f"parameter(s) {', '.join(both)} given both as grid axes and fixed")
        for k, v in params.items():
            _check_json_value(f"parameter {k!r}", v)
        static_axes = [(k, v) for k, v in self.grid.items() if k not in self.exp.dynamic]
        for k, values in [*((k, [v]) for k, v in params.items()), *static_axes]:
            default = (self.exp.defaults or {}).get(k)
            number = isinstance(default, (int, float)) and not isinstance(default, bool)
            if number and any(isinstance(v, str) for v in values):
                raise InputTypeError(f"{k} must be a number, got {values!r}")
        fixed = self.exp.resolve({**params, **{k: None for k in self.grid}})
        for k in self.grid:
            del fixed[k]
        return fixed

    def _check_dynamic_axes(self) -> None:
        for a in self.dynamic:
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.grid[a]
            ):
                raise InputError(
                    f"grid axis {a!r} is vmapped and must hold numbers, got {self.grid[a]}"
                )

    def _check_output_dims(self) -> None:
        """A grid axis may not share its name with a dimension of the outputs (e.g. `degree`,
        the dimension of the Hermite projections): the store could not hold both."""
        dims = {d for named in self.exp.dims.values() for d in named} | set(self.exp.coords)
        clash = sorted(dims & set(self.axes))
        if clash:
            raise InputError(
                f"grid axis {', '.join(map(repr, clash))} of {self.exp.name!r} is also the name "
                "of an output dimension; fix it with --set or run one value at a time"
            )

    def static_params(self, s: int) -> dict:
        point = {a: self.grid[a][i] for a, i in zip(self.static, self.static_points[s])}
        return {**self.params, **point}

    def dynamic_points(self) -> dict:
        """(P,) arrays of every dynamic axis over the flattened product of the dynamic axes."""
        values = [self.grid[a] for a in self.dynamic]
        flat = list(itertools.product(*values)) or [()]
        return {a: np.asarray([p[i] for p in flat]) for i, a in enumerate(self.dynamic)}

    @property
    def dynamic_shape(self) -> tuple[int, ...]:
        return tuple(len(self.grid[a]) for a in self.dynamic)

    def points_to_validate(self):
        """One parameter point per grid value: each axis's values in turn, every other axis at
        its first value (the experiment's own checks then see every value once)."""
        first = {a: v[0] for a, v in self.grid.items()}
        yield {**self.params, **first}
        for a, values in self.grid.items():
            for v in values[1:]:
                yield {**self.params, **first, a: v}


MAX_SEEDS = 10**7


def _check_mappings(grid, params) -> None:
    if not isinstance(grid, Mapping):
        raise InputError(
            f"grid must be a mapping {{parameter: values}} ({{}} for one point), got "
            f"{type(grid).__name__}"
        )
    if not isinstance(params, Mapping):
        raise InputError(f"params must be a mapping, got {type(params).__name__}")


def _check_seeds(seeds) -> int:
    seeds = _checks.check_positive_int("seeds", seeds)
    if seeds > MAX_SEEDS:
        raise InputError(
            f"seeds must be at most {MAX_SEEDS:,} per scan (the seed coordinate and the "
            f"finished-seed mask are held in memory), got {seeds:,}"
        )
    return seeds


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0 (the base PRNG seed), got {seed!r}")
    return int(seed)


def _axis_values(name, values) -> list:
    if isinstance(values, (jax.Array, np.ndarray)):
        values = np.asarray(values).tolist()
    vals = list(values) if isinstance(values, (list, tuple, range)) else [values]
    if not vals:
        raise InputError(f"grid axis {name!r} is empty")
    vals = [v.item() if isinstance(v, np.generic) else v for v in vals]
    for v in vals:
        _check_json_value(f"grid axis {name!r}", v)
    if len({json.dumps(v) for v in vals}) != len(vals):
        raise InputError(f"grid axis {name!r} has repeated values: {vals}")
    return vals


def _check_json_value(what: str, v) -> None:
    """NaN and ±inf are refused anywhere in a value (they are not JSON and mean nothing here)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{what} holds {v!r}; values must be finite")
    if isinstance(v, (list, tuple)):
        for x in v:
            _check_json_value(what, x)
    if isinstance(v, (np.ndarray, jax.Array)):
        raise InputError(
            f"{what} is an array; give a list of values (e.g. {np.asarray(v).tolist()!r:.40})"
        )


def _json(obj) -> str:
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"scan parameters must be JSON values (numbers, strings, lists): {e}"
        ) from None
