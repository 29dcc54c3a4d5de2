"""The one place that calls `trial.suggest_*`: a study's search space -> the trial's TrainConfig.

Target-only trials. A study compares transfer against training on the target alone, so λ = 1 must be tried
on purpose, not left to chance. `source_weight: {low, high: 1.0, target_only_share: s}` makes the sampler
(hpo/algorithms.py) fix λ to 1 for a trial whenever target-only trials fall below the share s of the study's
other non-failed trials; it samples every other field as usual. The value 1.0 lies inside the declared
range, so the sampler models these trials like any other.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hpo.spec import Choice, Range, StudySpec
from hpo.train.config import TrainConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["is_target_only", "suggest", "target_only_share", "wants_target_only"]


def suggest(trial: optuna.Trial, spec: StudySpec) -> TrainConfig:
    values = {}
    for name, entry in spec.searched().items():
        if isinstance(entry, Choice):
            values[name] = trial.suggest_categorical(name, entry.choices)
        elif TrainConfig.model_fields[name].annotation is int:
            values[name] = trial.suggest_int(name, int(entry.low), int(entry.high), step=entry.step or 1,
                                             log=entry.log)
        else:
            values[name] = trial.suggest_float(name, entry.low, entry.high, step=entry.step, log=entry.log)
    return spec.base_config().model_copy(update=values)


def is_target_only(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("target_only")) or trial.params.get("source_weight") == 1.0


def target_only_share(spec: StudySpec) -> float | None:
    entry = spec.search_space.get("source_weight")
    return entry.target_only_share if isinstance(entry, Range) and entry.target_only_share else None


def wants_target_only(share: float, trials: list[optuna.trial.FrozenTrial]) -> bool:
    """True when the next trial should be target only, to keep them at `share` of the study's `trials`."""
    from optuna.trial import TrialState

    counted = [t for t in trials if t.state != TrialState.FAIL]
    have = sum(is_target_only(t) for t in counted)
    return have < math.floor(share * (len(counted) + 1))
