"""One module per paper's procedure."""

from . import gradient_features as gradient_features, local_convergence as local_convergence
from .one_step import (
    OneStepResult as OneStepResult,
    one_step as one_step,
    one_step_spikes as one_step_spikes,
)
