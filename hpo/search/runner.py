"""The trial loop: trials one at a time through `study.optimize` (heartbeats, Optuna's state mapping) until the
study's budget is spent or its deadline passes.

The budget is the study's total of COMPLETE + PRUNED trials over every run and process (a FAIL does not use it);
the storage admits a trial only within it (hpo/storage/budget.py), so the loop's own count is a cheap look, and a
refusal (another worker took the last place first) comes back here with a fresh count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError, TrialTakenOver
from hpo.preemption import Preempted
from hpo.storage import BudgetSpent, count_states, fail_own_running_trial, limit_trials

if TYPE_CHECKING:
    import optuna

__all__ = ["MAX_CONSECUTIVE_FAILURES", "deadline_of", "run_trials"]

MAX_CONSECUTIVE_FAILURES = 5
COUNT_EVERY_S = 1.0


def deadline_of(study: optuna.Study) -> datetime | None:
    """The study's deadline (UTC), set from the study file's `timeout` when the study was created."""
    value = study.user_attrs.get("deadline")
    return datetime.fromisoformat(value) if value else None


def _spent(budget: int | None, deadline: datetime | None, counts: Any, include_running: bool = False) -> bool:
    used = counts["COMPLETE"] + counts["PRUNED"] + (counts["RUNNING"] if include_running else 0)
    return (budget is not None and used >= budget) or (deadline is not None and datetime.now(UTC) >= deadline)


def _on_finish(finished: list, display: Any, after_trial: Callable[[], Any] | None) -> Callable[..., None]:
    """Optuna's callback once a trial of this worker is told: remember it, show it, then `after_trial`."""

    def callback(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished.append(trial)
        display.trial_finished(trial)
        if after_trial is not None:
            after_trial()

    return callback


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    budget: int | None,
    display: Any,
    catch: tuple[type[Exception], ...] = (),
    max_retries: int = 3,
    after_trial: Callable[[], Any] | None = None,
) -> None:
    """Run trials until the budget is spent or the deadline passes. The study's storage must be this project's
    (hpo.storage.open_storage). `display` takes `counts`, `trial_finished(trial)` and `note(text)`; `after_trial`
    runs once each trial of this worker is told (keep_models clears the models outside the top K there)."""
    import optuna
    from optuna.trial import TrialState

    limit_trials(study, budget)
    failures_in_a_row = 0
    waiting_noted = False
    finished: list[optuna.trial.FrozenTrial] = []
    callbacks = [_on_finish(finished, display, after_trial)]
    deadline = deadline_of(study)
    counted_until = 0.0
    while True:
        # A cheap look first (at most once a second: COMPLETE + PRUNED only grow, so a stale count never stops a
        # worker early), so that waiting and finishing cost nothing; the storage's admission is the exact check.
        if time.monotonic() >= counted_until:
            display.counts.clear()
            display.counts.update(count_states(study))
            counted_until = time.monotonic() + COUNT_EVERY_S
        if _spent(budget, deadline, display.counts, include_running=True):
            if _spent(budget, deadline, display.counts):
                return
            if not waiting_noted:
                display.note(f"waiting for {display.counts['RUNNING']} running trial(s) of other workers…")
                waiting_noted = True
            # If a worker died, its heartbeat stops and its trial is failed (and retried) after the grace period,
            # which frees the budget again.
            optuna.storages.fail_stale_trials(study)
            time.sleep(1)
            counted_until = 0.0
            continue
        waiting_noted = False
        try:
            study.optimize(objective, n_trials=1, catch=catch, callbacks=callbacks)
        except BudgetSpent:
            counted_until = 0.0
            continue
        except Preempted:
            fail_own_running_trial(study, "preempted", max_retries)
            raise
        except TrialTakenOver as taken:  # its retry runs elsewhere (or here, next): nothing of it is ours to record
            display.note(f"[yellow]warning:[/] {taken}")
            counted_until = 0.0
            continue
        last = finished[-1]
        failures_in_a_row = failures_in_a_row + 1 if last.state == TrialState.FAIL else 0
        if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise HpoError(f"{failures_in_a_row} trials in a row failed; stopping. Last reason: "
                           f"{last.user_attrs.get('failure_reason', 'unknown')}")
