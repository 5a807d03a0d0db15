"""Named, reproducible experiments with `quick` and `paper` presets (`jaxfeat list`), the
`Experiment` record that describes one, and the registry the scan engine looks names up in."""

from __future__ import annotations

from ._experiment import (
    Experiment as Experiment,
    from_function as from_function,
    get as get,
    names as names,
    register as register,
)
from .gradient_features import gradient_features_experiment as gradient_features_experiment
from .local_convergence import local_convergence_experiment as local_convergence_experiment
from .random_features import random_features as random_features
from .spikes import spikes as spikes
from .teacher_student import teacher_student as teacher_student

for _e in (
    spikes,
    random_features,
    teacher_student,
    local_convergence_experiment,
    gradient_features_experiment,
):
    register(_e)
del _e
