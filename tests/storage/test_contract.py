"""The storage contract, run against the real PostgreSQL and SQLite alike (as Optuna's own storage tests run
against every backend): what Optuna reads back is what was written; the budget's admission; reports keep Optuna's
semantics (tests/storage/test_reports.py counts their one statement); queued trials any worker can start; the
counts and tallies the rest of the project asks for; heartbeats; a preemption during a storage call; and opening a
storage that does not exist creates nothing."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.trial import TrialState

from hpo.storage import BudgetSpent, open_storage, study_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/b.db"


def _study(url: str, budget: int | None) -> tuple[optuna.Study, object]:
    storage = open_storage(url)
    study = optuna.create_study(study_name="budget", storage=storage, load_if_exists=True, direction="maximize")
    storage.limit_trials(storage.get_study_id_from_name("budget"), budget)
    return study, storage


def _states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def test_a_new_trial_is_refused_once_the_budget_is_taken_and_a_failure_frees_a_place(url):
    study, _ = _study(url, budget=2)
    first, second = study.ask(), study.ask()
    with pytest.raises(BudgetSpent):
        study.ask()
    study.tell(first, state=TrialState.FAIL)
    third = study.ask()
    study.tell(second, 0.5)
    study.tell(third, 0.7)
    with pytest.raises(BudgetSpent):
        study.ask()
    assert _states(study) == {"FAIL": 1, "COMPLETE": 2}


def test_a_waiting_retry_holds_its_place_against_fresh_trials(url):
    study, storage = _study(url, budget=2)
    running = study.ask()
    study.enqueue_trial({"x": 0.25}, user_attrs={"retry_of": 99})
    # COMPLETE + PRUNED + RUNNING + WAITING = 2: no fresh trial, but the waiting one may start.
    with pytest.raises(BudgetSpent):
        storage.create_new_trial(storage.get_study_id_from_name("budget"))
    popped = study.ask()
    assert popped.suggest_float("x", 0, 1) == 0.25 and popped.user_attrs["retry_of"] == 99
    study.tell(running, 0.1)
    study.tell(popped, 0.2)
    assert _states(study) == {"COMPLETE": 2}


def test_a_waiting_trial_starts_only_within_the_budget(url):
    study, _ = _study(url, budget=1)
    study.ask()
    study.enqueue_trial({"x": 0.5})  # queued beyond the budget (an exported config, say)
    with pytest.raises(BudgetSpent):
        study.ask()
    assert _states(study) == {"RUNNING": 1, "WAITING": 1}


WORKER = textwrap.dedent("""
    import sys
    from collections import Counter

    import optuna

    from hpo.search.runner import run_trials
    from hpo.storage import open_storage

    class Display:
        counts = Counter()
        def trial_finished(self, trial): pass
        def note(self, text): pass

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        for step in range(5):
            trial.report(x * step, step)
        return x

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(sys.argv[1])
    study = optuna.load_study(study_name="budget", storage=storage)
    run_trials(study, objective, budget=int(sys.argv[2]), display=Display())
""")


def test_eight_processes_spend_the_budget_exactly(url, tmp_path):
    study, _ = _study(url, budget=None)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), url, "40"], stderr=subprocess.PIPE, text=True)
               for _ in range(8)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * 8, errors
    assert _states(study) == {"COMPLETE": 40}
    assert all(len(t.intermediate_values) == 5 for t in study.get_trials())


def test_reports_keep_optunas_semantics(url):
    study, _ = _study(url, budget=None)
    trial = study.ask()
    for step, value in enumerate([0.5, float("nan"), float("inf"), float("-inf")]):
        trial.report(value, step)
    study._storage.set_trial_intermediate_value(trial._trial_id, 0, 0.75)  # overwrites, as Optuna's storage does
    stored = study.get_trials()[0].intermediate_values
    assert stored[0] == 0.75 and math.isnan(stored[1]) and stored[2] == math.inf and stored[3] == -math.inf
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_intermediate_value(trial._trial_id, 5, 0.1)


def test_a_running_worker_runs_a_trial_queued_by_another_process(url):
    # The worker's study has finished a trial before the other process queues one; Optuna's trial cache never
    # reads a queued trial older than the newest finished one, and starting it used to fail with a KeyError.
    study = optuna.create_study(study_name="queued", storage=study_storage(open_storage(url)), direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    optuna.load_study(study_name="queued", storage=url).enqueue_trial({"x": 0.125}, user_attrs={"queued_by": "other"})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    second = optuna.load_study(study_name="queued", storage=url).trials[1]
    assert second.state == TrialState.COMPLETE
    assert second.params == {"x": 0.125} and second.user_attrs == {"queued_by": "other"}


def test_what_optuna_reads_back_is_what_was_written(url):
    study = optuna.create_study(study_name="round", storage=study_storage(open_storage(url)), direction="maximize")
    study.set_user_attr("n_trials", 3)
    for value in (0.25, None, 0.75):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        trial.suggest_categorical("l2", [0.0, 1e-4])
        trial.set_user_attr("epochs_run", 1.5)
        trial.report(x, 1)
        study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.PRUNED)
    plain = optuna.load_study(study_name="round", storage=url)  # Optuna's own RDBStorage, no hpo code
    ours, theirs = study.get_trials(), plain.get_trials()
    assert [(t.number, t.state, t.value, t.params, t.user_attrs, t.intermediate_values) for t in ours] == \
        [(t.number, t.state, t.value, t.params, t.user_attrs, t.intermediate_values) for t in theirs]
    assert plain.user_attrs == {"n_trials": 3} and plain.best_value == 0.75


def test_counts_and_the_target_only_tally_equal_a_count_of_the_trials(url):
    from collections import Counter

    from hpo.storage import count_states, target_only_tally

    study = optuna.create_study(study_name="tally", storage=study_storage(open_storage(url)), direction="maximize")
    for weight, state in ((1.0, TrialState.COMPLETE), (0.5, TrialState.COMPLETE), (1.0, TrialState.FAIL),
                          (0.7, TrialState.PRUNED), (1.0, TrialState.PRUNED), (0.4, None)):
        study.enqueue_trial({"target_weight": weight})
        trial = study.ask()
        trial.suggest_float("target_weight", 0.3, 1.0)  # the queued value
        if state is not None:
            study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    study.enqueue_trial({"target_weight": 0.6}, user_attrs={"target_only": True})  # a queued target-only retry
    trials = study.get_trials()
    assert count_states(study) == Counter(t.state.name for t in trials)
    for number in range(len(trials)):
        counted = [t for t in trials if t.state != TrialState.FAIL and t.number != number]
        expected = sum(t.params.get("target_weight") == 1.0 or bool(t.user_attrs.get("target_only")) for t in counted)
        assert target_only_tally(study, number) == (len(counted), expected), number


def test_heartbeats_are_read_for_the_running_trials(url):
    from hpo.storage import last_heartbeats

    storage = open_storage(url)
    study = optuna.create_study(study_name="beats", storage=study_storage(storage), direction="maximize")
    running, finished = study.ask(), study.ask()
    study.tell(finished, 1.0)
    storage.record_heartbeat(running._trial_id)
    beats = last_heartbeats(study, study.get_trials(states=(TrialState.RUNNING,)))
    assert list(beats) == [running.number] and 0 <= beats[running.number] < 60


def test_a_preemption_during_a_storage_call_is_raised_once_the_call_is_complete(url):
    import os
    import signal

    from sqlalchemy import event

    from hpo.preemption import Preempted, preemption_signals

    storage = open_storage(url)
    study = optuna.create_study(study_name="deferred", storage=storage, direction="maximize")
    trial = study.ask()
    signalled = []

    def signal_mid_call(*_args: object) -> None:
        if not signalled:  # SIGTERM to this process while the statement is on its way to the database
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    event.listen(storage.engine, "before_cursor_execute", signal_mid_call)
    try:
        with preemption_signals(), pytest.raises(Preempted, match="SIGTERM"):
            storage.set_trial_user_attr(trial._trial_id, "written", "whole")
    finally:
        event.remove(storage.engine, "before_cursor_execute", signal_mid_call)
    assert signalled
    assert optuna.load_study(study_name="deferred", storage=url).trials[0].user_attrs == {"written": "whole"}


def test_reading_a_storage_that_does_not_exist_creates_nothing(tmp_path):
    from hpo.errors import StorageError
    from hpo.storage import load_study

    with pytest.raises(StorageError, match=r"no study named 'x': sqlite:///.*absent.db does not exist"):
        load_study("x", f"sqlite:///{tmp_path / 'absent.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_dropped_connection_is_retried(pg_url, caplog):
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from tests.pg import ADMIN_URL

    storage = open_storage(pg_url)
    study = optuna.create_study(study_name="outage", storage=storage, direction="maximize")
    database = pg_url.rsplit("/", 1)[1]
    admin = create_engine(ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # the worker's pooled connection dies, as in a server restart
        killed = connection.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database}).scalar()
    assert killed >= 1
    with caplog.at_level("WARNING", logger="hpo"):
        study.set_user_attr("after", "the outage")
    assert optuna.load_study(study_name="outage", storage=pg_url).user_attrs == {"after": "the outage"}
    assert any("storage unavailable" in record.message for record in caplog.records)
