"""jaxfeat: a JAX vectorised simulation engine for feature learning in two-layer networks.

The public API (DESIGN §3) is re-exported here; see README.md for a tour.
"""

from . import (
    _cpus as _cpus,
    activations as activations,
    algorithms as algorithms,
    analysis as analysis,
    data as data,
    experiments as experiments,
    features as features,
    hermite as hermite,
    kernel_baselines as kernel_baselines,
    kernels as kernels,
    labels as labels,
    nets as nets,
    objectives as objectives,
    plotting as plotting,
    population as population,
    protocol as protocol,
    ridge as ridge,
    rows as rows,
    spectrum as spectrum,
    theory as theory,
)
from ._compile_cache import enable_compile_cache as enable_compile_cache
from ._cpus import config as config
from ._scan import (
    map_seeds as map_seeds,
    open_scan as open_scan,
    plan_summary as plan_summary,
    repair_scan as repair_scan,
    scan as scan,
    seed_batch_for as seed_batch_for,
    verify_scan as verify_scan,
)
from ._sized import Capacity as Capacity
from ._version import __version__ as __version__
from .activations import Activation as Activation
from .algorithms.gradient_features import gradient_features as gradient_features
from .algorithms.local_convergence import local_convergence as local_convergence
from .algorithms.one_gradient_step import one_step as one_step
from .analysis import summarize as summarize
from .experiments import Experiment as Experiment
from .features import (
    gradient_feature_fractions as gradient_feature_fractions,
    gradient_feature_set as gradient_feature_set,
)
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
from .population import (
    empirical_gradient as empirical_gradient,
    monte_carlo_gradient as monte_carlo_gradient,
    population_gradient as population_gradient,
    population_loss as population_loss,
    population_loss_error_bound as population_loss_error_bound,
)
from .protocol import OneStepProtocol as OneStepProtocol
from .ridge import ridge_path as ridge_path
from .spectrum import (
    LazyFeatures as LazyFeatures,
    count_spikes as count_spikes,
    feature_spectrum as feature_spectrum,
)
from .training import train as train

__all__ = [
    "Activation",
    "activations",
    "algorithms",
    "analysis",
    "apply_ensemble",
    "Capacity",
    "config",
    "count_spikes",
    "data",
    "empirical_gradient",
    "enable_compile_cache",
    "Experiment",
    "experiments",
    "feature_spectrum",
    "features",
    "fit_readout",
    "gradient_feature_fractions",
    "gradient_feature_set",
    "gradient_features",
    "hermite",
    "hermite_coefficients",
    "hermite_polynomials",
    "init_ensemble",
    "kernel_baselines",
    "kernels",
    "labels",
    "LazyFeatures",
    "local_convergence",
    "map_seeds",
    "monte_carlo_gradient",
    "nets",
    "objectives",
    "one_step",
    "OneStepProtocol",
    "open_scan",
    "plan_summary",
    "plotting",
    "population",
    "population_gradient",
    "population_loss",
    "population_loss_error_bound",
    "protocol",
    "repair_scan",
    "ridge",
    "ridge_path",
    "rows",
    "scan",
    "seed_batch_for",
    "spectrum",
    "summarize",
    "theory",
    "train",
    "TwoLayer",
    "verify_scan",
    "__version__",
]

# before JAX starts its CPU backend (jaxfeat/_cpus.py); nothing imported above starts it
_cpus.configure_at_import()
