"""Deprecated: `jaxfeat.experiment` moved into `jaxfeat.experiments` (one subpackage for one
idea); `Experiment` and `from_function` are importable from there and `jaxfeat.Experiment`."""

import warnings

from .experiments._experiment import Experiment as Experiment, from_function as from_function

warnings.warn(
    "jaxfeat.experiment is deprecated: import Experiment and from_function from "
    "jaxfeat.experiments (or use jaxfeat.Experiment)",
    DeprecationWarning,
    stacklevel=2,
)
