"""The study's budget, enforced by the storage at the moment a trial starts.

Plain Optuna checks a budget after trials finish (`MaxTrialsCallback`), so N workers overshoot it by up to
N - 1. Here a trial becomes RUNNING only where the storage has just counted the places taken below the budget,
inside the transaction that starts it and under the lock Optuna already takes to number trials (the study's
row, `SELECT ... FOR UPDATE`). A trial that later FAILs frees its place. Workers waiting for the lock queue
inside PostgreSQL.

A trial starts in two ways, and both are admitted:
- `study.ask()` creates a new RUNNING trial: admitted while COMPLETE + PRUNED + RUNNING + WAITING < budget.
  WAITING trials (retries of preempted or lost trials, queued configs) hold a place, so that a fresh trial
  never takes the place a retry is about to run in.
- `study.ask()` pops a WAITING trial into RUNNING: admitted while COMPLETE + PRUNED + RUNNING < budget.

On PostgreSQL (psycopg2) a new trial is created in one round trip: the lock, the count and Optuna's own insert
(number = trials before it, state RUNNING, start time) sent as one two-statement query, which the server runs
as one transaction. Optuna's own creation holds the study's row across five client round trips (BEGIN, lock,
INSERT, count, UPDATE, COMMIT); with many workers on few cores the lock holder waits for a CPU at every one,
and the lock, not the database, limits how fast trials start (measured: benchmarks/storage_workers.py). Here
the lock is never held while a client waits. Other databases and queued (template) trials take Optuna's path,
admitted by the hook below.

SQLite has no row locks; there a file lock beside the database serialises admissions instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import MappingProxyType
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text

__all__ = ["BudgetSpent", "BudgetedRDBStorage"]

# The places a trial takes: a new trial is counted against WAITING ones too (they hold a place), a WAITING one
# that starts is not counted against itself.
FOR_A_NEW_TRIAL = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
FOR_A_WAITING_TRIAL = ("COMPLETE", "PRUNED", "RUNNING")


def _states(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{state}'" for state in states)


# Two statements in one simple query: PostgreSQL runs them as one transaction, the second with a snapshot taken
# after the first has the lock, so its counts see every trial committed before. Values are interpolated by
# psycopg2 on the client, so the whole is one round trip.
_CREATE_ONE_TRIP = """
SELECT study_id FROM studies WHERE study_id = %(study)s FOR UPDATE;
INSERT INTO trials (number, study_id, state, datetime_start)
SELECT (SELECT count(*) FROM trials WHERE study_id = %(study)s), %(study)s, 'RUNNING', %(started)s
WHERE %(budget)s IS NULL OR (SELECT count(*) FROM trials WHERE study_id = %(study)s
                             AND state IN ({states})) < %(budget)s
RETURNING trial_id, number
""".replace("{states}", _states(FOR_A_NEW_TRIAL))


class BudgetSpent(Exception):
    """No place left for another trial: COMPLETE + PRUNED + RUNNING (+ WAITING) has reached the budget."""


class BudgetedRDBStorage(RDBStorage):
    """Optuna's RDBStorage that starts a trial only within the budget set with `limit_trials`."""

    last_started_trial_id: int | None = None  # this process's latest trial, for a preemption outside the objective
    _budgets: Mapping[int, int | None] = MappingProxyType({})  # study id -> budget, set by `limit_trials`

    def limit_trials(self, study_id: int, budget: int | None) -> None:
        """At most `budget` COMPLETE + PRUNED + RUNNING trials in the study; None lifts the limit."""
        self._budgets = {**self._budgets, study_id: budget}

    def _budget(self, study_id: int) -> int | None:
        return self._budgets.get(study_id)

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        if template_trial is None and self.engine.dialect.driver == "psycopg2":
            return self._create_in_one_trip(study_id)
        with self._serialised():
            frozen = super()._create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self.last_started_trial_id = frozen._trial_id
        return frozen

    def _create_in_one_trip(self, study_id: int) -> FrozenTrial:
        budget = self._budget(study_id)
        started = datetime.now()  # naive local time, as Optuna stores it
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(_CREATE_ONE_TRIP, {"study": study_id, "started": started, "budget": budget})
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            raise BudgetSpent(f"{budget} places taken (COMPLETE + PRUNED + RUNNING + WAITING)")
        trial_id, number = row
        self.last_started_trial_id = trial_id
        return FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None,
                           datetime_start=started, datetime_complete=None, params={}, distributions={},
                           user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=trial_id)

    def _get_prepared_new_trial(self, study_id: int, template_trial: FrozenTrial | None, session: Any) -> Any:
        # Optuna calls this inside its trial-numbering transaction, after locking the study's row, on every
        # attempt of its own retry loop: the one place where a count is exact.
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._admit(session, study_id, counting=FOR_A_NEW_TRIAL)
        return super()._get_prepared_new_trial(study_id, template_trial, session)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state != TrialState.RUNNING or not self._budgets:
            return super().set_trial_state_values(trial_id, state, values)
        with self._serialised():
            session = self.scoped_session()
            try:
                lock = "" if self.engine.dialect.name == "sqlite" else " FOR UPDATE OF s"
                study_id = session.execute(text(
                    "SELECT s.study_id FROM studies s JOIN trials t ON t.study_id = s.study_id "
                    "WHERE t.trial_id = :trial" + lock), {"trial": trial_id}).scalar_one()
                self._admit(session, study_id, counting=FOR_A_WAITING_TRIAL)
            except BaseException:
                session.rollback()
                session.close()
                raise
            # Optuna's update runs in this same session and transaction; its commit releases the lock.
            started = super().set_trial_state_values(trial_id, state, values)
        if started:
            self.last_started_trial_id = trial_id
        return started

    def _admit(self, session: Any, study_id: int, counting: tuple[str, ...]) -> None:
        budget = self._budget(study_id)
        if budget is None:
            return
        query = text(f"SELECT count(*) FROM trials WHERE study_id = :study AND state IN ({_states(counting)})")
        used = session.execute(query, {"study": study_id}).scalar_one()
        if used >= budget:
            raise BudgetSpent(f"{used} of {budget} places taken ({' + '.join(counting)})")

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self.engine.dialect.name != "sqlite" or not self._budgets:
            yield
            return
        from hpo.storage.locks import DatabaseLock

        with DatabaseLock(self.url, "budget"):
            yield
