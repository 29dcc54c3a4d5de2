"""Several worker processes on one study in the real PostgreSQL: an exact budget, distinct parameters, and
nothing lost when a worker is killed, preempted, or the database restarts. Workers stop at a barrier mid-trial
(tests/barrier_site), so trials that must overlap do, and every kill lands in a running trial with a stored
evaluation, whatever the machine's load: no test here waits on a timing."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.builders import hpo_cli, reach_barrier, reach_barriers, start_worker, write_study

# How long a worker may take to reach a point before the test gives up on it: a guard against a hang, never a
# timing a test relies on (3 workers loading on a loaded 2-core machine take minutes).
HANG_S = 600


def _study(url: str, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """The workers a test starts: any still running when it ends (an assertion failed) is killed, rather than left
    standing at its barrier for good."""
    workers: list[subprocess.Popen] = []
    yield workers
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _finish(workers: list[subprocess.Popen], logs: list[Path], timeout: float = HANG_S) -> list[int]:
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


class _AnyOf:
    """Workers as one process for `reach_barriers`: it has ended as soon as one of them has."""

    def __init__(self, workers: list[subprocess.Popen]) -> None:
        self.workers = workers

    def poll(self) -> int | None:
        return next((code for code in (w.poll() for w in self.workers) if code is not None), None)


def _all_at_the_barrier(started: list, spec: Path, url: str, tmp_path: Path, logs: list[Path]) -> tuple:
    """One worker per log, each stopped at the barrier in a trial of its own: the workers, the barrier, and
    {pid: trial number} of those trials."""
    barrier = tmp_path / "barrier"
    holders = {"HPO_TEST_BARRIER_HOLDERS": str(len(logs))}
    workers = [start_worker(spec, url, tmp_path, log, barrier=barrier, env=holders) for log in logs]
    started.extend(workers)
    held = {h["pid"]: h["trial"] for h in reach_barriers(barrier, _AnyOf(workers), len(logs), logs[0], HANG_S)}
    assert set(held) == {w.pid for w in workers}
    return workers, barrier, held


def test_three_workers_share_one_study_with_an_exact_budget(tmp_path, tiny_model_dir, pg_url, started):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=9, epochs=3, target_samples=240,
                       pruner="none")
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    workers, barrier, held = _all_at_the_barrier(started, spec, pg_url, tmp_path, logs)
    running = _study(pg_url).get_trials(states=(TrialState.RUNNING,))
    assert {t.number: t.user_attrs["pid"] for t in running} == {n: pid for pid, n in held.items()}, \
        "three trials running at once, one per worker"
    (barrier / "release").touch()
    assert _finish(workers, logs) == [0, 0, 0], [log.read_text()[-2000:] for log in logs]

    trials = _study(pg_url).get_trials()
    assert _used(_study(pg_url)) == 9
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert {t.user_attrs["pid"] for t in trials} == set(held), "these three workers ran the study's trials"
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)


def _victim_and_survivor(started: list, tmp_path: Path, spec: Path, url: str):
    """Two workers on one study, both stopped mid-trial at the barrier: the survivor has a trial of its own under
    way before the victim goes, and runs on once the test releases it."""
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    (victim, survivor), barrier, held = _all_at_the_barrier(started, spec, url, tmp_path, logs)
    trial = next(t for t in _study(url).trials if t.number == held[victim.pid])
    assert trial.state == TrialState.RUNNING and trial.intermediate_values, "mid-trial at the barrier"
    return victim, survivor, trial, logs, barrier / "release"


def _retry_ran_on_the_survivor(url: str, victim_trial, survivor: subprocess.Popen, reason: str, before: float):
    study = _study(url)
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == victim_trial.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == victim_trial.params
    assert retry.user_attrs["retry_reason"] == reason
    assert retry.user_attrs["pid"] == survivor.pid  # its own identity, not the dead worker's
    assert sorted(retry.intermediate_values) == list(range(1, 7)), "clean pruner state: every evaluation anew"
    # the survivor was already running (in a trial of its own, at the barrier) when the victim went: the bug this
    # catches crashed exactly such a worker on a queued trial it had not created
    earlier = [t for t in study.trials if t.user_attrs.get("pid") == survivor.pid and t.number != retry.number
               and t.datetime_start.timestamp() < before]
    assert earlier, "the survivor ran a trial before the victim's retry was queued"
    return study


def test_a_killed_worker_loses_nothing_and_a_running_worker_runs_its_retry(tmp_path, tiny_model_dir, pg_url,
                                                                          started):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=5, epochs=3, target_samples=240,
                       pruner="none")
    victim, survivor, trial, logs, release = _victim_and_survivor(started, tmp_path, spec, pg_url)
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    release.touch()
    assert survivor.wait(timeout=HANG_S) == 0, logs[1].read_text()[-3000:]
    study = _retry_ran_on_the_survivor(pg_url, trial, survivor, "worker lost: no heartbeat", killed_at)
    assert study.trials[trial.number].state == TrialState.FAIL
    assert _used(study) == 5
    assert "Traceback" not in logs[1].read_text()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_sigterm_preempts_the_trial_and_a_running_worker_completes_its_retry(tmp_path, tiny_model_dir, request,
                                                                            backend, started):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path}/hpo.db"
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=5, epochs=3, target_samples=240,
                       pruner="none")
    victim, survivor, trial, logs, release = _victim_and_survivor(started, tmp_path, spec, url)
    status = hpo_cli("status", "tiny", "--storage", url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "running trials" in status.stdout and f"{socket.gethostname()}:{victim.pid}" in status.stdout
    assert re.search(r"\d+:\d\d ago", status.stdout), "the last heartbeat is shown"
    signalled_at = time.time()
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=HANG_S) == 75, logs[0].read_text()[-3000:]
    assert "preempted" in logs[0].read_text()
    release.touch()
    assert survivor.wait(timeout=HANG_S) == 0, logs[1].read_text()[-3000:]

    study = _retry_ran_on_the_survivor(url, trial, survivor, "preempted", signalled_at)
    preempted = study.trials[trial.number]
    assert preempted.state == TrialState.FAIL and preempted.user_attrs["failure_reason"] == "preempted"
    assert _used(study) == 5
    assert "Traceback" not in logs[1].read_text()
    status = hpo_cli("status", "tiny", "--storage", url, cwd=tmp_path)
    assert "retries" in status.stdout and "preempted" in status.stdout and "5 / 5" in status.stdout


@pytest.mark.slow
def test_postgres_restart_mid_trial_loses_no_trial(tmp_path, tiny_model_dir, own_postgres, started):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=4, epochs=3, target_samples=240,
                       pruner="none")
    barrier, log = tmp_path / "barrier", tmp_path / "w.log"
    worker = start_worker(spec, own_postgres.url, tmp_path, log, barrier=barrier, env={"HPO_STORAGE_RETRY_S": "120"})
    started.append(worker)
    reach_barrier(barrier, worker, log, HANG_S)
    own_postgres.restart()
    (barrier / "release").touch()
    assert worker.wait(timeout=HANG_S) == 0, log.read_text()[-3000:]
    study = _study(own_postgres.url)
    assert _used(study) == 4
    assert [t.number for t in study.trials if t.state == TrialState.FAIL] == []
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    text = log.read_text()
    assert re.search(r"storage unavailable \(\w+\); retrying in \d", text), text[-3000:]
    assert "Traceback" not in text
