"""Which trials a report draws: all of them up to 2,000; above that the 500 best and a seeded sample of 1,500 of the
others (a figure of 10,000 lines shows nothing and takes minutes to build). Counts, states and retries always cover
every trial: they come from the storage in a few queries (hpo/storage/rows.py), never by loading every trial.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.results.report.common import state_of
from hpo.train.config import LEGACY_LAMBDA, current_names

if TYPE_CHECKING:
    import optuna

__all__ = ["BEST", "LIMIT", "Drawn", "draw"]

LIMIT = 2000  # above this many trials, a report draws a selection
BEST = 500  # of which the best, always drawn
SEED = 0  # the rest: a sample with this seed, so the same study gives the same report
_EVERY_TRIAL_ATTRS = ("retry_of", "retry_root", "retry_reason", "best_evaluation")


@dataclass(frozen=True)
class Drawn:
    study: optuna.Study  # what the plots read: the study itself, or a read-only snapshot of the drawn trials
    trials: list[optuna.trial.FrozenTrial]  # the drawn trials, by number
    every: list[Any]  # every trial of the study (FrozenTrials, or TrialRows without params): states and retries
    note: str  # "" when every trial is drawn; else what was drawn, said under each figure of the drawn trials
    uniform: set[int] | None = None  # when sampled: the drawn trials chosen regardless of their value

    @property
    def sampled(self) -> bool:
        return bool(self.note)


def draw(study: optuna.Study, *, limit: int = LIMIT, best: int = BEST, seed: int = SEED) -> Drawn:
    """The trials a report of `study` draws, read from the storage in a few queries."""
    from hpo.storage import best_numbers, frozen_trials, snapshot_study, trial_rows
    from hpo.storage.queries import engine_of

    if engine_of(study) is None:  # an in-memory study: its trials are at hand
        every = study.get_trials(deepcopy=False)
        top = _best_of(every, study, best) if len(every) > limit else []
        numbers = _chosen([t.number for t in every], top, limit, seed)
        trials = [t for t in every if t.number in numbers]
        return Drawn(study if len(trials) == len(every) else snapshot_study(study, trials), trials, every,
                     _note(len(trials), len(every), len(top)), numbers - set(top) if top else None)
    every = trial_rows(study, attrs=_EVERY_TRIAL_ATTRS, params=False)
    top = best_numbers(study, best) if len(every) > limit else []
    numbers = _chosen([r.number for r in every], top, limit, seed)
    trials = [_current_names(t) for t in frozen_trials(study, sorted(numbers))]
    return Drawn(snapshot_study(study, trials), trials, every, _note(len(trials), len(every), len(top)),
                 numbers - set(top) if top else None)


def _current_names(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """A trial of a study made before λ was renamed, its `source_weight` shown as `target_weight`: a report reads
    one name for λ, whichever the study stores."""
    if LEGACY_LAMBDA not in trial.params:
        return trial
    renamed = copy.copy(trial)
    renamed.params, renamed.distributions = current_names(trial.params), current_names(trial.distributions)
    return renamed


def _best_of(trials: list[optuna.trial.FrozenTrial], study: optuna.Study, k: int) -> list[int]:
    sign = 1 if study.direction.name == "MINIMIZE" else -1
    complete = [t for t in trials if state_of(t) == "COMPLETE" and t.value is not None]
    return [t.number for t in sorted(complete, key=lambda t: (sign * t.value, t.number))[:k]]


def _chosen(numbers: list[int], top: list[int], limit: int, seed: int) -> set[int]:
    if len(numbers) <= limit:
        return set(numbers)
    rest = sorted(set(numbers) - set(top))
    return set(top) | set(random.Random(seed).sample(rest, limit - len(top)))


def _note(drawn: int, total: int, best: int) -> str:
    if drawn == total:
        return ""
    return (f"Drawn from {drawn:,} of the study's {total:,} trials: the {best:,} best complete trials and a seeded "
            f"sample of {drawn - best:,} of the others (above {LIMIT:,} trials a report draws a "
            "selection; counts and states cover every trial).")
