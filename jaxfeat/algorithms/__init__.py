"""One module per paper's procedure; each module's name says what it computes.

- `one_gradient_step`: Moniri et al. (2023), one large gradient step, spikes and ridge
  (`one_step`, `one_step_spikes`, `OneStepResult`).
- `gradient_features`: Shi, Wei, Liang (2022), gradient feature learning.
- `local_convergence`: Zhou, Ge (2023), local convergence of an overparameterised student.

Names in this namespace never shadow a module: `jaxfeat.algorithms.gradient_features` and
`jaxfeat.algorithms.local_convergence` are the modules (their entry points are
`jaxfeat.gradient_features` and `jaxfeat.local_convergence`), while `one_step`,
`one_step_spikes` and `OneStepResult` are functions and a class re-exported from
`one_gradient_step` (whose module was `jaxfeat.algorithms.one_step` in 0.1).
"""

import sys as _sys
import types as _types
import warnings as _warnings

from . import (
    gradient_features as gradient_features,
    local_convergence as local_convergence,
    one_gradient_step as one_gradient_step,
)
from .one_gradient_step import (
    OneStepResult as OneStepResult,
    one_step as one_step,
    one_step_spikes as one_step_spikes,
)


class _MovedModule(_types.ModuleType):
    """0.1's module path `jaxfeat.algorithms.one_step`, kept importable for one release:
    `from jaxfeat.algorithms.one_step import one_step_spikes` warns and forwards."""

    def __getattr__(self, name):
        if name.startswith("__"):  # tools that scan sys.modules ask for __file__, __path__, …
            raise AttributeError(name)
        _warnings.warn(
            "the module jaxfeat.algorithms.one_step is deprecated, import from "
            "jaxfeat.algorithms.one_gradient_step (renamed in jaxfeat 0.2; the old path will be "
            "removed in jaxfeat 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(one_gradient_step, name)


# Only the import system sees this entry; the attribute `jaxfeat.algorithms.one_step` stays the
# function.
_sys.modules[__name__ + ".one_step"] = _MovedModule(__name__ + ".one_step")
