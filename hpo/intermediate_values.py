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

from typing import Any

from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import exists, literal, select

__all__ = ["OneTripReports"]

_VALUES = models.TrialIntermediateValueModel.__table__
_TRIALS = models.TrialModel.__table__


class OneTripReports(RDBStorage):
    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        dialect = self.engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            written = connection.execute(_upsert(dialect, trial_id, step, intermediate_value)).rowcount
        if not written:  # not running (finished, failed by another worker) or no such trial: Optuna says which
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)


def _upsert(dialect: str, trial_id: int, step: int, value: float) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert

    stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
    row = select(
        literal(trial_id, _VALUES.c.trial_id.type),
        literal(step, _VALUES.c.step.type),
        literal(stored, _VALUES.c.intermediate_value.type),
        literal(kind, _VALUES.c.intermediate_value_type.type),
    ).where(exists().where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.RUNNING))
    statement = insert(_VALUES).from_select(
        ["trial_id", "step", "intermediate_value", "intermediate_value_type"], row
    )
    return statement.on_conflict_do_update(
        index_elements=["trial_id", "step"],
        set_={"intermediate_value": statement.excluded.intermediate_value,
              "intermediate_value_type": statement.excluded.intermediate_value_type},
    )
