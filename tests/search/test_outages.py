"""Faults a cluster hits between a worker and its storage: a database that stays down for longer than the retry
window, and a worker paused (SIGSTOP) long enough for a peer to fail its trial. Real processes, a real PostgreSQL
cluster the test owns, the barrier of tests/barrier_site so every fault lands mid-trial."""

from __future__ import annotations

import os
import re
import signal

import optuna
from optuna.trial import TrialState

from hpo.preemption import EXIT_PREEMPTED
from tests.builders import reach_barrier, start_worker, write_study


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=url)


def _done(study: optuna.Study) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def test_an_outage_longer_than_the_retry_window_ends_the_worker_with_one_line_and_exit_75(
        tmp_path, tiny_model_dir, own_postgres):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=3, epochs=2, pruner="none")
    barrier, log = tmp_path / "barrier", tmp_path / "w.log"
    worker = start_worker(spec, own_postgres.url, tmp_path, log, barrier=barrier, env={"HPO_STORAGE_RETRY_S": "3"})
    held = reach_barrier(barrier, worker, log)
    own_postgres.stop()
    (barrier / "release").touch()  # its next report meets the outage
    assert worker.wait(timeout=240) == EXIT_PREEMPTED, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text and "UnboundLocalError" not in text, text[-3000:]
    ended = [line for line in text.splitlines() if "unreachable for" in line]
    assert len(ended) == 1, text[-3000:]  # one line, not one per thread or per retry
    assert re.search(r"error: storage postgresql\+psycopg2://postgres@127\.0\.0\.1:\d+/hpo unreachable for \d+ s "
                     r"\(HPO_STORAGE_RETRY_S=3\)", ended[0]), ended[0]

    # The database is back: the trial the worker left RUNNING has no heartbeat, so a new worker fails it, runs
    # its retry with the same parameters, and the study finishes its budget.
    own_postgres.start()
    (running,) = [t for t in _study(own_postgres.url).trials if t.state == TrialState.RUNNING]
    assert running.number == held["trial"]
    second_log = tmp_path / "second.log"
    second = start_worker(spec, own_postgres.url, tmp_path, second_log, env={"HPO_GRACE_S": "2"})
    assert second.wait(timeout=300) == 0, second_log.read_text()[-3000:]
    study = _study(own_postgres.url)
    assert _done(study) == 3
    lost = study.trials[held["trial"]]
    assert lost.state == TrialState.FAIL and lost.user_attrs["failure_reason"] == "worker lost: no heartbeat"
    (retry,) = [t for t in study.trials if t.user_attrs.get("retry_of") == lost.number]
    assert retry.params == lost.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_a_worker_whose_trial_a_peer_failed_while_it_was_paused_drops_it_and_goes_on(tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=3, epochs=2, pruner="none")
    barrier, paused_log, peer_log = tmp_path / "barrier", tmp_path / "paused.log", tmp_path / "peer.log"
    paused = start_worker(spec, url, tmp_path, paused_log, barrier=barrier)
    held = reach_barrier(barrier, paused, paused_log)
    os.kill(paused.pid, signal.SIGSTOP)  # no heartbeat from here on: its trial goes stale
    try:
        peer = start_worker(spec, url, tmp_path, peer_log, env={"HPO_GRACE_S": "2"})
        assert peer.wait(timeout=300) == 0, peer_log.read_text()[-3000:]
        taken = _study(url).trials[held["trial"]]
        assert taken.state == TrialState.FAIL and taken.user_attrs["failure_reason"] == "worker lost: no heartbeat"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    (barrier / "release").touch()  # it resumes the trial its peer failed and retried
    assert paused.wait(timeout=240) == 0, paused_log.read_text()[-3000:]
    text = paused_log.read_text()
    assert "Traceback" not in text and "Cannot tell" not in text, text[-3000:]
    assert f"trial {held['trial']} was failed and queued for a retry by another worker" in " ".join(text.split())
    study = _study(url)
    assert _done(study) == 3  # the budget holds: the dropped trial's retry ran in its place
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
