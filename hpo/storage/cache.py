"""The trial cache a worker's study works through: Optuna's own (`_CachedStorage`, which Optuna itself puts over an
RDB storage), with one query made cheap and one gap closed."""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.trial import FrozenTrial, TrialState

__all__ = ["study_storage"]


class _WaitingQueryCache(_CachedStorage):
    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        if states is not None and set(states) == {TrialState.WAITING}:
            waiting = self._backend.get_all_trials(study_id, deepcopy=deepcopy, states=states)
            self._remember(study_id, waiting)
            return waiting
        return super().get_all_trials(study_id, deepcopy, states)

    def _remember(self, study_id: int, trials: list[FrozenTrial]) -> None:
        # The cache must know every trial this process may start: `study.ask()` pops one of these into RUNNING and
        # then writes its parameters through the cache, which looks the trial up by id. A queued trial older than
        # the newest finished one is never read by the cache's own incremental reload, so it is added here, as
        # unfinished (re-read until it finishes).
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            self._add_trials_to_cache(study_id, trials)
            study.unfinished_trial_ids.update(t._trial_id for t in trials)


def study_storage(backend: RDBStorage) -> BaseStorage:
    """Optuna's trial cache over `backend`, except for the look for WAITING trials that `study.ask()` makes before
    every trial. Optuna answers it by first reloading every unfinished trial of the study with all its values, so
    with 64 workers each trial start reloaded the other 63 running trials (a third of a trial's storage time,
    measured with 63 running); here it is one query for the WAITING trials alone, usually none, and the trials it
    finds are added to the cache, so that any worker can start a trial another process queued."""
    return _WaitingQueryCache(backend)
