"""Retries of trials that died for reasons outside themselves: a lost worker (no heartbeat) or preemption.

Optuna's `RetryFailedTrialCallback` re-enqueues with a copy of the dead trial's system attributes (pruner
rungs included, so a Hyperband retry would skip its rungs) and retries forever by default. Here a retry is a
fresh enqueued trial with the same parameters only: clean pruner state, its own worker identity, a link to
the original, and a cap, after which the parameters are reported as poisonous on the study.

A retry is queued before its original is failed: the budget (budget.py) counts a WAITING trial as a
taken place, so no fresh trial can slip into the place the failure frees.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_MAX_RETRIES", "LOST", "StaleTrialRetries", "fail_and_retry", "retry_trial"]

log = logging.getLogger("hpo")

DEFAULT_MAX_RETRIES = 3
LOST = "worker lost: no heartbeat"


def _asked(study: optuna.Study, trial: Any) -> dict[str, Any]:
    """The parameters `trial` runs: those it sampled, over those it was queued with. A queued trial (a retry, or an
    `--enqueue`d config) preempted before it sampled them all still has them all here."""
    queued = study._storage.get_trial_system_attrs(trial._trial_id).get("fixed_params", {})
    return {**queued, **trial.params}


def retry_trial(study: optuna.Study, trial: Any, reason: str, max_retries: int) -> int | None:
    """Enqueue a retry of `trial` (a FrozenTrial, or the live Trial being preempted); returns its attempt
    number, or None when the cap is reached or the trial had no parameters yet (a fresh trial stopped before it
    sampled any: there is nothing to retry, and its place goes to the next trial)."""
    params = _asked(study, trial)
    if not params:
        return None
    attempt = int(trial.user_attrs.get("attempt", 1))
    root = int(trial.user_attrs.get("retry_root", trial.number))
    if attempt > max_retries:
        poisonous = list(study.user_attrs.get("poisonous", []))
        poisonous.append({"params": params, "first_trial": root, "last_trial": trial.number,
                          "attempts": attempt, "reason": reason})
        study.set_user_attr("poisonous", poisonous)
        log.warning("trial %d failed %d times (%s); its parameters are reported as poisonous, no more retries",
                    root, attempt, reason)
        return None
    attrs = {"retry_of": trial.number, "retry_root": root, "attempt": attempt + 1, "retry_reason": reason}
    if trial.user_attrs.get("target_only"):
        attrs["target_only"] = True
    study.enqueue_trial(params, user_attrs=attrs)
    return attempt + 1


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str, max_retries: int) -> bool:
    """Queue a retry of the RUNNING `trial`, then fail it with `reason`, in that order (see above). False when
    the trial finished meanwhile; its retry then runs as one trial more."""
    import optuna
    from optuna.trial import TrialState

    retry_trial(study, trial, reason, max_retries)
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "failure_reason", reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


class StaleTrialRetries:
    """Storage mixin (over Optuna's RDBStorage): a RUNNING trial whose heartbeat stopped is retried, then failed.

    Optuna's `fail_stale_trials` (run before every trial inside `study.optimize`) fails such trials first and
    calls back afterwards; between the two a fresh trial could take the freed place and the retry would never
    run. So this storage handles them itself, under a lock that keeps two workers from retrying one trial
    twice, and reports none left to Optuna. Each process looks at most once per heartbeat interval: a trial is
    stale only after the grace period anyway.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    _next_stale_check: float = 0.0

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.monotonic()
        if now < self._next_stale_check:
            return []
        self._next_stale_check = now + (self.get_heartbeat_interval() or 0)  # type: ignore[attr-defined]
        if not super()._get_stale_trial_ids(study_id):  # type: ignore[misc]
            return []
        import optuna

        from hpo.storage.locks import DatabaseLock

        storage: Any = self
        with DatabaseLock(storage.url, f"stale:{study_id}"):
            stale = super()._get_stale_trial_ids(study_id)  # type: ignore[misc]  # again: another may have won
            if stale:
                study = optuna.load_study(study_name=storage.get_study_name_from_id(study_id), storage=storage)
            for trial_id in stale:
                if not fail_and_retry(study, storage.get_trial(trial_id), LOST, self.max_retries):
                    continue  # its worker was alive after all and just finished it
                log.warning("trial %d lost its worker (no heartbeat): failed and queued for a retry",
                            storage.get_trial_number_from_id(trial_id))
        return []
