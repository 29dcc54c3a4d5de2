"""Several worker processes on one study in the real PostgreSQL: an exact budget, distinct parameters, and
nothing lost when a worker is killed, preempted, or the database restarts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.builders import hpo_cli, wait_for, write_study
from tests.pg import restart_postgres

FAST_HEARTBEAT = {"HPO_HEARTBEAT_S": "1", "HPO_GRACE_S": "5"}


def _worker(spec: Path, url: str, cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, **FAST_HEARTBEAT, "COLUMNS": "200"}
    env.pop("HPO_STORAGE", None)
    return subprocess.Popen([sys.executable, "-m", "hpo", "run", str(spec), "--storage", url], cwd=cwd, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _study(url: str, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _running_with_evaluation(url: str):
    running = _study(url).get_trials(states=(TrialState.RUNNING,))
    return next((t for t in running if t.intermediate_values), None)


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
    workers = [_worker(spec, pg_url, tmp_path, log) for log in logs]
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


def test_a_killed_worker_loses_nothing(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=5, epochs=3, target_samples=240,
                       pruner="none")
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [_worker(spec, pg_url, tmp_path, log) for log in logs]
    victim_trial = wait_for(lambda: _running_with_evaluation(pg_url), 120, "a trial mid-way")
    victim = next(w for w in workers if w.pid == victim_trial.user_attrs["pid"])
    victim.send_signal(signal.SIGKILL)
    survivor = next(w for w in workers if w is not victim)
    assert survivor.wait(timeout=300) == 0, logs[workers.index(survivor)].read_text()[-3000:]

    study = _study(pg_url)
    assert _used(study) == 5
    killed = study.trials[victim_trial.number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params
    assert retry.user_attrs["retry_reason"] == "worker lost: no heartbeat"
    assert retry.user_attrs["pid"] == survivor.pid  # its own identity, not the dead worker's
    assert sorted(retry.intermediate_values) == list(range(1, 7)), "clean pruner state: every evaluation anew"


def test_sigterm_preempts_the_trial_and_the_retry_completes(tmp_path, tiny_model_dir, pg_url):
    # a budget of 4, so that a trial is still to come after the (slow) status check
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=4, epochs=3, target_samples=240,
                       pruner="none")
    log = tmp_path / "w.log"
    worker = _worker(spec, pg_url, tmp_path, log)
    running = wait_for(lambda: _running_with_evaluation(pg_url), 120, "a trial mid-way")
    status = hpo_cli("status", "tiny", "--storage", pg_url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "running trials" in status.stdout and f"{socket.gethostname()}:{worker.pid}" in status.stdout
    assert re.search(r"\d+:\d\d ago", status.stdout), "the last heartbeat is shown"
    running = wait_for(lambda: _running_with_evaluation(pg_url), 120, "a trial mid-way, again")  # status is slow
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 75, log.read_text()[-3000:]
    assert "preempted" in log.read_text()

    study = _study(pg_url)
    preempted = study.trials[running.number]
    assert preempted.state == TrialState.FAIL
    assert preempted.user_attrs["failure_reason"] == "preempted"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == running.number

    again = _worker(spec, pg_url, tmp_path, tmp_path / "w2.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "w2.log").read_text()[-3000:]
    retry = next(t for t in _study(pg_url).trials if t.user_attrs.get("retry_of") == running.number)
    assert retry.state == TrialState.COMPLETE and retry.params == preempted.params
    assert _used(_study(pg_url)) == 4
    status = hpo_cli("status", "tiny", "--storage", pg_url, cwd=tmp_path)
    assert "retries" in status.stdout and "preempted" in status.stdout and "4 / 4" in status.stdout


@pytest.mark.slow
def test_postgres_restart_mid_study_loses_no_trial(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=6, epochs=3, target_samples=240,
                       pruner="none")
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [_worker(spec, pg_url, tmp_path, log) for log in logs]
    wait_for(lambda: _running_with_evaluation(pg_url), 120, "a trial mid-way")
    restart_postgres()
    assert _finish(workers, logs) == [0, 0], [log.read_text()[-3000:] for log in logs]
    study = _study(pg_url)
    assert _used(study) == 6
    assert [t.number for t in study.trials if t.state == TrialState.FAIL] == []
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
