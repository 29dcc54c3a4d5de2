"""`trial.report(value, step)` in one database round trip instead of five.

Optuna's RDBStorage stores an intermediate value in its own transaction: BEGIN, SELECT the trial (is it still
running?), SELECT the value at that step, INSERT or UPDATE, COMMIT. Reports are most of a trial's storage calls,
so with many workers on one database they are most of its load. Here the same write is one autocommitted
statement into Optuna's own table: an INSERT guarded by the trial's RUNNING state that overwrites an earlier
value at the same step (its unique key), exactly Optuna's semantics. Written by hand because Optuna has no
cheaper path; PostgreSQL and SQLite only (both have INSERT ... ON CONFLICT), Optuna's own path elsewhere and
whenever the trial is not running (so the same errors are raised).
"""

from __future__ import annotations

from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from sqlalchemy import text

__all__ = ["OneTripReports"]

# PostgreSQL types the selected values by their target columns only through the casts (the value type is
# Optuna's enum type); SQLite needs none.
_UPSERT = """
INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
SELECT {trial}, {step}, {value}, {kind}
WHERE EXISTS (SELECT 1 FROM trials WHERE trial_id = {trial} AND state = 'RUNNING')
ON CONFLICT (trial_id, step) DO UPDATE
SET intermediate_value = excluded.intermediate_value, intermediate_value_type = excluded.intermediate_value_type
"""
_STATEMENTS = {
    "postgresql": text(_UPSERT.format(trial=":trial", step=":step", value="CAST(:value AS DOUBLE PRECISION)",
                                      kind="CAST(:kind AS trialintermediatevaluetype)")),
    "sqlite": text(_UPSERT.format(trial=":trial", step=":step", value=":value", kind=":kind")),
}


class OneTripReports(RDBStorage):
    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        statement = _STATEMENTS.get(self.engine.dialect.name)
        if statement is None:
            return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(intermediate_value)
        values = {"trial": trial_id, "step": step, "value": stored, "kind": kind.name}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            written = connection.execute(statement, values).rowcount
        if not written:  # not running (finished, failed by another worker) or no such trial: Optuna says which
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
