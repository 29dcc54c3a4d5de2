"""Retries of trials that died for reasons outside themselves: a lost worker (no heartbeat) or preemption.

Optuna's `RetryFailedTrialCallback` re-enqueues with a copy of the dead trial's system attributes (pruner
rungs included, so a Hyperband retry would skip its rungs) and retries forever by default. Here a retry is a
fresh enqueued trial with the same parameters only: clean pruner state, its own worker identity, a link to
the original, and a cap, after which the parameters are reported as poisonous on the study.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_MAX_RETRIES", "Preempted", "retry_trial"]

log = logging.getLogger("hpo")

DEFAULT_MAX_RETRIES = 3


class Preempted(Exception):
    """The worker got SIGTERM (or Slurm's SIGUSR2): stop the trial now, fail it as `preempted`, retry it."""


def retry_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str, max_retries: int) -> int | None:
    """Enqueue a retry of `trial`; returns its attempt number, or None when the cap is reached."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    root = int(trial.user_attrs.get("retry_root", trial.number))
    if attempt > max_retries:
        poisonous = list(study.user_attrs.get("poisonous", []))
        poisonous.append({"params": trial.params, "first_trial": root, "last_trial": trial.number,
                          "attempts": attempt, "reason": reason})
        study.set_user_attr("poisonous", poisonous)
        log.warning("trial %d failed %d times (%s); its parameters are reported as poisonous, no more retries",
                    root, attempt, reason)
        return None
    attrs = {"retry_of": trial.number, "retry_root": root, "attempt": attempt + 1, "retry_reason": reason}
    if trial.user_attrs.get("target_only"):
        attrs["target_only"] = True
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return attempt + 1


def stale_trial_callback(max_retries: int):
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retry_trial(study, trial, "worker lost: no heartbeat", max_retries)

    return callback
