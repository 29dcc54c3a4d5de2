"""Several worker processes on one study in the real PostgreSQL: an exact budget, distinct parameters, and
nothing lost when a worker is killed, preempted, or the database restarts. A worker stops at a barrier mid-trial
(tests/barrier_site), so every kill lands in a running trial with a stored evaluation."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.builders import hpo_cli, reach_barrier, start_worker, write_study


def _study(url: str, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _finish(workers: list[subprocess.Popen], logs: list[Path], timeout: float = 300) -> list[int]:
    codes = []
    for worker, log in zip(workers, logs, strict=True):
        try:
            codes.append(worker.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            worker.kill()
            raise AssertionError(f"worker did not finish:\n{log.read_text()[-3000:]}") from None
    return codes


def _used(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


def test_three_workers_share_one_study_with_an_exact_budget(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=9, epochs=3, target_samples=240,
                       pruner="none")
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    workers = [start_worker(spec, pg_url, tmp_path, log) for log in logs]
    assert _finish(workers, logs) == [0, 0, 0], [log.read_text()[-2000:] for log in logs]

    trials = _study(pg_url).get_trials()
    assert _used(_study(pg_url)) == 9
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    by_worker: dict[int, list] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["pid"], []).append(t)
    assert sorted(p.pid for p in workers) == sorted(by_worker), "each worker ran at least one trial"
    spans = {pid: [(t.datetime_start, t.datetime_complete) for t in ts] for pid, ts in by_worker.items()}
    overlapping = any(a0 < b1 and b0 < a1 for p, ours in spans.items() for q, theirs in spans.items() if p < q
                      for a0, a1 in ours for b0, b1 in theirs)
    assert overlapping, "workers ran trials at the same time"
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)


def _victim_and_survivor(tmp_path: Path, spec: Path, url: str):
    """Two workers on one study: the victim stops mid-trial at its barrier; the survivor runs on meanwhile."""
    barrier = tmp_path / "barrier"
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    victim = start_worker(spec, url, tmp_path, logs[0], barrier=barrier)
    survivor = start_worker(spec, url, tmp_path, logs[1])
    reached = reach_barrier(barrier, victim, logs[0])
    assert reached["pid"] == victim.pid
    trial = next(t for t in _study(url).trials if t.number == reached["trial"])
    assert trial.state == TrialState.RUNNING and trial.intermediate_values, "mid-trial at the barrier"
    return victim, survivor, trial, logs


def _retry_ran_on_the_survivor(url: str, victim_trial, survivor: subprocess.Popen, reason: str, before: float):
    study = _study(url)
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == victim_trial.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == victim_trial.params
    assert retry.user_attrs["retry_reason"] == reason
    assert retry.user_attrs["pid"] == survivor.pid  # its own identity, not the dead worker's
    assert sorted(retry.intermediate_values) == list(range(1, 7)), "clean pruner state: every evaluation anew"
    # the survivor was already running (and had been through trials) when the victim went: the bug this catches
    # crashed exactly such a worker on a queued trial it had not created
    earlier = [t for t in study.trials if t.user_attrs.get("pid") == survivor.pid and t.number != retry.number
               and t.datetime_start.timestamp() < before]
    assert earlier, "the survivor ran a trial before the victim's retry was queued"
    return study


def test_a_killed_worker_loses_nothing_and_a_running_worker_runs_its_retry(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=5, epochs=3, target_samples=240,
                       pruner="none")
    victim, survivor, trial, logs = _victim_and_survivor(tmp_path, spec, pg_url)
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    assert survivor.wait(timeout=300) == 0, logs[1].read_text()[-3000:]
    study = _retry_ran_on_the_survivor(pg_url, trial, survivor, "worker lost: no heartbeat", killed_at)
    assert study.trials[trial.number].state == TrialState.FAIL
    assert _used(study) == 5
    assert "Traceback" not in logs[1].read_text()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_sigterm_preempts_the_trial_and_a_running_worker_completes_its_retry(tmp_path, tiny_model_dir, request,
                                                                            backend):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path}/hpo.db"
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=5, epochs=3, target_samples=240,
                       pruner="none")
    victim, survivor, trial, logs = _victim_and_survivor(tmp_path, spec, url)
    status = hpo_cli("status", "tiny", "--storage", url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "running trials" in status.stdout and f"{socket.gethostname()}:{victim.pid}" in status.stdout
    assert re.search(r"\d+:\d\d ago", status.stdout), "the last heartbeat is shown"
    signalled_at = time.time()
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == 75, logs[0].read_text()[-3000:]
    assert "preempted" in logs[0].read_text()
    assert survivor.wait(timeout=300) == 0, logs[1].read_text()[-3000:]

    study = _retry_ran_on_the_survivor(url, trial, survivor, "preempted", signalled_at)
    preempted = study.trials[trial.number]
    assert preempted.state == TrialState.FAIL and preempted.user_attrs["failure_reason"] == "preempted"
    assert _used(study) == 5
    assert "Traceback" not in logs[1].read_text()
    status = hpo_cli("status", "tiny", "--storage", url, cwd=tmp_path)
    assert "retries" in status.stdout and "preempted" in status.stdout and "5 / 5" in status.stdout


@pytest.mark.slow
def test_postgres_restart_mid_trial_loses_no_trial(tmp_path, tiny_model_dir, own_postgres):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=4, epochs=3, target_samples=240,
                       pruner="none")
    barrier, log = tmp_path / "barrier", tmp_path / "w.log"
    worker = start_worker(spec, own_postgres.url, tmp_path, log, barrier=barrier, env={"HPO_STORAGE_RETRY_S": "120"})
    reach_barrier(barrier, worker, log)
    own_postgres.restart()
    (barrier / "release").touch()
    assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
    study = _study(own_postgres.url)
    assert _used(study) == 4
    assert [t.number for t in study.trials if t.state == TrialState.FAIL] == []
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    text = log.read_text()
    assert re.search(r"storage unavailable \(\w+\); retrying in \d", text), text[-3000:]
    assert "Traceback" not in text
