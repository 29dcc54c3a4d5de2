"""A report is one SQL statement (hpo/storage/reports.py), counted on the wire: every statement SQLAlchemy sends
to the real SQLite and PostgreSQL while a worker's study (`study_storage(open_storage(url))`, as `hpo run` opens
it) stores `trial.report(...)`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import pytest
from sqlalchemy import event

from hpo.storage import open_storage, study_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask/report outside optimize


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/r.db"


@contextmanager
def _statements(engine) -> Iterator[list[str]]:
    """The SQL text of every statement the engine sends to the database while inside."""
    sent: list[str] = []

    def record(_connection, _cursor, statement, *_args) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_report_is_one_sql_statement(url):
    backend = open_storage(url)
    study = optuna.create_study(study_name="reports", storage=study_storage(backend), direction="maximize")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    for step, value in ((1, 0.5), (2, float("nan")), (3, 0.75)):
        with _statements(backend.engine) as sent:
            trial.report(value, step)
        assert len(sent) == 1, sent
        assert sent[0].startswith("INSERT INTO trial_intermediate_values"), sent
    with _statements(backend.engine) as sent:  # a value at a step already stored is overwritten, as by Optuna
        backend.set_trial_intermediate_value(trial._trial_id, 3, 0.8)
    assert len(sent) == 1, sent
    stored = optuna.load_study(study_name="reports", storage=url).trials[0].intermediate_values
    assert stored[1] == 0.5 and math.isnan(stored[2]) and stored[3] == 0.8
