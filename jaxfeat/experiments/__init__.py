"""Named, reproducible experiments with `quick` and `paper` presets (`jaxfeat list`)."""

from __future__ import annotations

from .._checks import InputError
from ..experiment import Experiment as Experiment
from .gradient_features import gradient_features_experiment as gradient_features_experiment
from .local_convergence import local_convergence_experiment as local_convergence_experiment
from .random_features import random_features as random_features
from .spikes import spikes as spikes
from .teacher_student import teacher_student as teacher_student

_REGISTRY = {
    e.name: e
    for e in (
        spikes,
        random_features,
        teacher_student,
        local_convergence_experiment,
        gradient_features_experiment,
    )
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The registered experiment `name`; an unknown name raises `InputError` listing the known."""
    if isinstance(name, Experiment):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown experiment {name!r}; known: {', '.join(names())}") from None


def register(experiment: Experiment) -> Experiment:
    """Add a user experiment to the registry (for `jaxfeat.scan` by name)."""
    _REGISTRY[experiment.name] = experiment
    return experiment
