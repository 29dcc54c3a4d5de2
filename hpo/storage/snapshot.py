"""A study of a few thousand trials chosen out of a larger one, for drawing them with `optuna.visualization`.

Optuna's plots take a study and read all its trials. A report of a 10,000-trial study draws a selection of them
(hpo/results/report), so it hands the plots a study over this read-only storage, which holds the chosen trials as
FrozenTrials with their own numbers. Written by hand because Optuna's in-memory storage renumbers the trials it is
given (`add_trials`), and the figures must say "trial 8123", not "trial 12". BaseStorage is Optuna's public
extension point for storages.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo.storage.queries import backend_of

__all__ = ["snapshot_study"]

_ID = 0


class _SnapshotStorage(BaseStorage):
    def __init__(self, name: str, direction: StudyDirection, user_attrs: dict[str, Any],
                 system_attrs: dict[str, Any], trials: list[FrozenTrial]) -> None:
        self._name, self._direction = name, direction
        self._user_attrs, self._system_attrs = dict(user_attrs), dict(system_attrs)
        self._trials = sorted(trials, key=lambda t: t.number)
        self._by_id = {t._trial_id: t for t in self._trials}

    # -- what a study reads --------------------------------------------------------------------------------

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._name:
            raise KeyError(study_name)
        return _ID

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [self._direction]

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._system_attrs)

    def get_all_studies(self) -> list[optuna.study.FrozenStudy]:
        return []

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._by_id[trial_id]

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        # Never copied: a snapshot is read only, and the plots that read it change nothing (copying 2,000 trials
        # for each of them took seconds).
        return [t for t in self._trials if states is None or t.state in states]

    # -- a snapshot is read only ------------------------------------------------------------------------------

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError("a study snapshot is read only")

    create_new_study = delete_study = set_study_user_attr = set_study_system_attr = _read_only
    create_new_trial = set_trial_param = set_trial_state_values = set_trial_intermediate_value = _read_only
    set_trial_user_attr = set_trial_system_attr = _read_only


def snapshot_study(study: optuna.Study, trials: Sequence[FrozenTrial]) -> optuna.Study:
    """A read-only study with the name, direction and attributes of `study`, holding only `trials`."""
    backend = backend_of(study)
    system = backend.get_study_system_attrs(backend.get_study_id_from_name(study.study_name))
    storage = _SnapshotStorage(study.study_name, study.direction, study.user_attrs, system, list(trials))
    return optuna.Study(study_name=study.study_name, storage=storage)
