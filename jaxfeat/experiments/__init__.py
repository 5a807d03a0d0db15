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
from .equivalence import equivalence_experiment as equivalence_experiment
from .gradient_features import gradient_features_experiment as gradient_features_experiment
from .local_convergence import local_convergence_experiment as local_convergence_experiment
from .random_features import random_features_experiment as random_features_experiment
from .spikes import spikes_experiment as spikes_experiment
from .teacher_student import teacher_student_experiment as teacher_student_experiment

for _e in (
    spikes_experiment,
    equivalence_experiment,
    random_features_experiment,
    teacher_student_experiment,
    local_convergence_experiment,
    gradient_features_experiment,
):
    register(_e)
del _e
