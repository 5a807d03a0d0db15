"""jaxfeat: a JAX vectorised simulation engine for feature learning in two-layer networks.

The public API (DESIGN §3) is re-exported here; see README.md for a tour.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from . import activations as activations, data as data, hermite as hermite, nets as nets
from .activations import Activation as Activation
from .hermite import (
    hermite_coefficients as hermite_coefficients,
    hermite_polynomials as hermite_polynomials,
)
from .nets import (
    TwoLayer as TwoLayer,
    apply_ensemble as apply_ensemble,
    fit_readout as fit_readout,
    init_ensemble as init_ensemble,
)

try:
    __version__ = _version("jaxfeat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"
