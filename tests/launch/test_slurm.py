"""`hpo launch slurm` against a real single-node Slurm (scripts/slurm-local.sh) and the real PostgreSQL: the
job script pinned by golden files, a job array that runs a study to completion with one task preempted by
SIGUSR2 (its trial retried, the task requeued and resumed), `hpo stop`, and a password that never lands in a file.
A task stops at a barrier mid-trial (tests/barrier_site, on the tasks' PYTHONPATH), so every signal lands in a
running trial.

Under CI=true a Slurm that cannot be started fails these tests; elsewhere they skip with the reason.
The golden files are written only by `python scripts/update-goldens.py`, never by a test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hpo.errors import HpoError
from hpo.launch.flow import launch
from hpo.launch.records import SlurmLaunchRecord, launches, record_launch
from hpo.launch.slurm import launch_log_paths, slurm_log_path
from hpo.launch.slurm_script import render_job_script
from tests.builders import REPO, barrier_env, hpo_cli, wait_for, write_study
from tests.ci import unavailable
from tests.golden import SLURM_CASES, golden_path

SLURM_LOCAL = REPO / "scripts" / "slurm-local.sh"
PASSWORD = "Pw-9f3kQz7-never-in-a-file"


def _with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


# -- the job script and the options: pure, no Slurm ----------------------------------------------------------


@pytest.mark.parametrize("golden", sorted(SLURM_CASES))
def test_the_job_script_matches_its_golden_file(golden):
    path = golden_path("slurm", golden)
    assert render_job_script(**SLURM_CASES[golden]) == path.read_text(), \
        f"{path} differs: check the change, then `python scripts/update-goldens.py` rewrites it"


def test_a_dry_run_renders_the_script_without_the_password(tmp_path, tiny_model_dir, monkeypatch):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_STORAGE", f"postgresql+psycopg2://hpo:{PASSWORD}@127.0.0.1:5432/hpo")
    dry = launch("slurm", spec, dry_run=True, array=4, time="2:00:00", partition="gpu", setup=["module load cuda"])
    assert not dry.submitted
    assert dry.rendered == render_job_script(name="tiny", log_dir=tmp_path / ".hpo" / "slurm" / "tiny", array=4,
                                             time="2:00:00", partition="gpu", setup=["module load cuda"])
    assert "#SBATCH --array=0-3%4" in dry.rendered and "#SBATCH --time=120" in dry.rendered
    assert "#SBATCH --signal=USR2@90" in dry.rendered and "#SBATCH --gpus-per-task=1" in dry.rendered
    assert PASSWORD not in dry.rendered and "HPO_STORAGE" not in dry.rendered
    assert any("localhost" in note for note in dry.notes), "a storage on this machine is flagged"
    assert not (tmp_path / ".hpo").exists(), "a dry run writes nothing"


def test_an_unknown_option_is_refused_with_the_valid_ones():
    with pytest.raises(HpoError) as caught:
        render_job_script(name="s", log_dir="/logs", array=2, time="10", gpu=1)
    message = str(caught.value)
    assert "unknown Slurm launch option gpu" in message
    assert "valid options: name, array, time, log_dir, gpus_per_task, cpus_per_task, mem, partition" in message
    with pytest.raises(HpoError, match="missing Slurm launch options array, time"):
        render_job_script(name="s", log_dir="/logs")
    with pytest.raises(HpoError, match=r"unknown slurm launch option\(s\) gpu; valid: array, time, log_dir"):
        launch("slurm", REPO / "studies" / "quickstart.yaml", dry_run=True, array=2, time="10", gpu=1)


@pytest.mark.parametrize(("cli", "env", "expected"), [
    (None, None, "sqlite:///hpo.db is a SQLite file, which tasks on other nodes cannot share"),
    ("sqlite:////shared/hpo.db", None, "is a SQLite file"),
    ("sqlite://", None, "is an in-memory database"),
    ("sqlite:///:memory:", None, "is an in-memory database"),
    ("sqlite:///x.db", f"postgresql+psycopg2://u:{PASSWORD}@db:5432/hpo", "is a SQLite file"),  # --storage wins
    (None, "mysql+pymysql://u@db/hpo", "is a mysql database"),
], ids=["default-sqlite", "sqlite-file", "in-memory", "sqlite-memory", "cli-wins-over-env", "mysql"])
def test_a_storage_that_tasks_cannot_share_is_refused(tmp_path, tiny_model_dir, monkeypatch, cli, env, expected):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    if env:
        monkeypatch.setenv("HPO_STORAGE", env)
    with pytest.raises(HpoError) as caught:
        launch("slurm", spec, storage=cli, dry_run=True, array=2, time="10")
    message = str(caught.value)
    assert "needs a storage that tasks on every node share: a PostgreSQL URL in HPO_STORAGE or --storage" in message
    assert expected in message and PASSWORD not in message


@pytest.mark.parametrize(("options", "expected"), [
    ({"time": "4h"}, "--time '4h' is not a Slurm time; use minutes, minutes:seconds, hours:minutes:seconds"),
    ({"time": "0"}, "--time must be positive"),
    ({"array": 0}, "--array must be a number of tasks >= 1"),
    ({"gpus_per_task": -1}, "--gpus-per-task must be a number >= 0"),
    ({"mem": "lots"}, "--mem must be a size such as 16G"),
    ({"sbatch": ["-p gpu"]}, "write a long sbatch option, --name=value or --name"),
    ({"sbatch": ["--partition=gpu"]}, "use --partition instead"),
    ({"sbatch": ["--array=0-99"]}, "--array is set by the launcher and cannot be changed"),
    ({"sbatch": ["--output=/tmp/x"]}, "--output is set by the launcher"),
    ({"sbatch": ["--export=NONE"]}, "the tasks need HPO_STORAGE from this environment"),
])
def test_bad_option_values_are_refused(options, expected):
    with pytest.raises(HpoError, match=re.escape(expected)):
        render_job_script(**{"name": "s", "log_dir": "/logs", "array": 2, "time": "10", **options})


def test_times_become_minutes_and_extra_directives_pass_through():
    script = render_job_script(name="s", log_dir="/logs", array=2, time="1-00:00:00", mem="16GB",
                               sbatch=["--export=ALL,OMP_NUM_THREADS=4", "--requeue", "--mail-type=END"])
    for line in ("#SBATCH --time=1440", "#SBATCH --mem=16GB", "#SBATCH --export=ALL,OMP_NUM_THREADS=4",
                 "#SBATCH --requeue", "#SBATCH --mail-type=END"):
        assert line in script.splitlines()
    assert "#SBATCH --time=2" in render_job_script(name="s", log_dir="/l", array=2, time="1:30").splitlines()


def test_launches_are_recorded_and_their_logs_found(tmp_path):
    root = tmp_path / ".hpo"
    assert launches("s", root=root) == []
    for job_id, tasks in (("41", 1), ("42", 16)):
        record_launch(SlurmLaunchRecord(study="s", job_id=job_id, log_dir=str(tmp_path / "logs"), tasks=tasks,
                                        study_file="/shared/s.yaml", host="login1"), root=root)
    recorded = launches("s", root=root)
    assert [(r.launcher, r.job_id, r.tasks) for r in recorded] == [("slurm", "41", 1), ("slurm", "42", 16)]
    assert recorded[-1].log_dir == str(tmp_path / "logs")
    assert launch_log_paths(recorded[-1], 3) == (tmp_path / "logs" / "42_3_0_log.out",
                                                  tmp_path / "logs" / "42_3_0_log.err")
    assert launch_log_paths(recorded[0], 0) == (tmp_path / "logs" / "41_0_log.out", tmp_path / "logs" / "41_0_log.err")
    assert slurm_log_path(tmp_path, "42", 15, stream="err") == tmp_path / "42_15_0_log.err"
    with pytest.raises(HpoError, match=r"has workers 0 \.\. 15, not 16"):
        launch_log_paths(recorded[-1], 16)


# -- a real Slurm ----------------------------------------------------------------------------------------------


def _script(action: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SLURM_LOCAL), action], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def slurm():
    """A running Slurm: the one already up, or one that scripts/slurm-local.sh starts (and stops afterwards)."""
    if _script("status", 60).returncode == 0:
        yield
        return
    reason = None
    if os.geteuid() != 0:
        reason = "Slurm is not running and starting it needs root: sudo scripts/slurm-local.sh start"
    else:
        try:
            started = _script("start", 600)
            if started.returncode != 0:
                reason = f"scripts/slurm-local.sh start failed:\n{(started.stdout + started.stderr)[-3000:]}"
        except subprocess.TimeoutExpired:
            reason = "scripts/slurm-local.sh start took more than 600 s"
    if reason:
        unavailable(reason)
    yield
    _script("stop", 120)


def _queued(job_id: str) -> list[tuple[str, str, str]]:
    """(task, state, reason) of each task still in squeue."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i|%T|%r"], capture_output=True, text=True).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]  # type: ignore[misc]


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: Path | None = None) -> Any:
    def tails() -> str:
        return "" if logs is None else "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}"
                                               for p in sorted(logs.glob("*_log.*")))

    return wait_for(predicate, timeout, what, tails)


def _study(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=url)


def _used(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


@dataclass
class ArrayRun:
    url: str  # without the password
    job_id: str
    log_dir: Path
    registry: Path
    study_file: Path
    victim_task: str
    held_trial: int  # the second task's trial, held at the barrier while the first task was preempted
    held_task: str
    seen_requeued: bool
    wall_seconds: float
    options: dict[str, Any]


@pytest.fixture(scope="module")
def array_run(slurm, tiny_model_dir, tmp_path_factory) -> ArrayRun:
    """One 3-task array on a tiny real study (6 trials) in a fresh PostgreSQL database, the storage URL with a
    password given as --storage. The first two tasks to report an evaluation (the node has 2 GPUs, so two run at
    once) stop at a barrier mid-trial; the first gets SIGUSR2 there (`scancel --signal=USR2 JOB_TASK`, what Slurm
    sends before the time limit), and once its trial has left RUNNING the second is released to run the study on
    with the third; once the study is done, the requeued task is let start at once (Slurm holds a requeued task for
    ~2 minutes) and must end cleanly."""
    from tests.pg import create_database, drop_database

    url, database = create_database()
    base = tmp_path_factory.mktemp("slurm-array")
    study_file = write_study(base / "tiny.yaml", tiny_model_dir, n_trials=6, epochs=2, pruner="none")
    log_dir, registry, barrier = base / "logs", base / ".hpo", base / "barrier"
    options = {"array": 3, "time": "10", "gpus_per_task": 1}
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as env:
        env.chdir(base)
        env.delenv("HPO_STORAGE", raising=False)
        env.setenv("COLUMNS", "200")
        for key, value in barrier_env(barrier, holders=2).items():  # sbatch exports the environment to the tasks
            env.setenv(key, value)
        job_id = str(launch("slurm", study_file, storage=_with_password(url), log_dir=log_dir,
                            **options).record.job_id)
    try:
        reached = [_wait_for(lambda f=f: f.exists() and f.read_text(), 240, "two tasks at their barrier", log_dir)
                   for f in (barrier / "reached", barrier / "reached-1")]
        victim_number, held_number = (json.loads(text)["trial"] for text in reached)
        victim = next(t for t in _study(url, "tiny").trials if t.number == victim_number)
        held = next(t for t in _study(url, "tiny").trials if t.number == held_number)
        assert victim.state == TrialState.RUNNING and victim.intermediate_values, "mid-trial at the barrier"
        task, held_task = victim.user_attrs["slurm_array_task_id"], held.user_attrs["slurm_array_task_id"]
        assert task != held_task, "two tasks stand at the barrier"
        subprocess.run(["scancel", "--signal=USR2", f"{job_id}_{task}"], check=True, timeout=30)
        _wait_for(lambda: next(t for t in _study(url, "tiny").trials if t.number == victim_number).state
                  != TrialState.RUNNING, 120, "the preempted trial to leave RUNNING", log_dir)
        (barrier / "release").touch()

        seen: list[tuple[str, str, str]] = []

        def study_done():
            seen.extend(_queued(job_id))
            return _used(_study(url, "tiny")) >= 6

        _wait_for(study_done, 240, "the study to finish", log_dir)
        requeued = f"{job_id}_{task}"
        seen_requeued = any(t == requeued and state == "PENDING" for t, state, _ in seen + _queued(job_id))
        if any(t == requeued for t, _, _ in _queued(job_id)):
            subprocess.run(["scontrol", "update", f"jobid={requeued}", "StartTime=now"], check=True, timeout=30)
        _wait_for(lambda: not _queued(job_id), 120, "every task to leave the queue", log_dir)
        yield ArrayRun(url, job_id, log_dir, registry, study_file, task, held_number, held_task, seen_requeued,
                       time.monotonic() - started, options)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
        drop_database(database)


def test_a_three_task_array_runs_the_study_to_completion(array_run):
    study = _study(array_run.url, "tiny")
    trials = study.get_trials()
    assert _used(study) == 6, [(t.number, t.state.name) for t in trials]
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    for t in trials:
        assert t.user_attrs["slurm_job_id"] and t.user_attrs["slurm_array_task_id"] in ("0", "1", "2")
        assert t.user_attrs["gpu"] in ("0", "1"), "--gpus-per-task 1: Slurm's GPU reaches the trial's identity"
    held = next(t for t in trials if t.number == array_run.held_trial)
    assert held.state == TrialState.COMPLETE and array_run.held_task != array_run.victim_task, \
        "a second task ran its trial to the end while the first was preempted"
    tasks = {t.user_attrs["slurm_array_task_id"] for t in trials if t.state == TrialState.COMPLETE}

    recorded = launches("tiny", root=array_run.registry)
    assert [(r.launcher, r.job_id, r.tasks) for r in recorded] == [("slurm", array_run.job_id, 3)]
    out, err = launch_log_paths(recorded[0], int(next(iter(tasks))))
    log = out.read_text()
    assert "study tiny · storage postgresql+psycopg2://postgres:***@127.0.0.1" in log
    assert "Job completed successfully" in log, log[-3000:] + err.read_text()[-3000:]
    print(f"Slurm array {array_run.job_id} (3 tasks): {array_run.wall_seconds:.0f} s from sbatch to an empty queue")


def test_sigusr2_preempts_the_trial_which_is_retried_and_the_task_requeued(array_run):
    study = _study(array_run.url, "tiny")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, [(t.number, t.state.name, t.user_attrs.get("failure_reason")) for t in study.trials]
    preempted = failed[0]
    assert preempted.user_attrs["failure_reason"] == "preempted"
    assert preempted.user_attrs["slurm_array_task_id"] == array_run.victim_task
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == preempted.number)
    assert retry.state == TrialState.COMPLETE and retry.params == preempted.params
    assert retry.user_attrs["retry_reason"] == "preempted"

    out = slurm_log_path(array_run.log_dir, array_run.job_id, int(array_run.victim_task))
    err = slurm_log_path(array_run.log_dir, array_run.job_id, int(array_run.victim_task), stream="err")
    log, errors = out.read_text(), err.read_text()
    assert "preempted (SIGUSR2): a trial this worker was running is FAIL `preempted` and queued for a retry" in errors
    assert f"Requeued job {array_run.job_id}_{array_run.victim_task}" in log, "submitit requeued the task"
    assert array_run.seen_requeued, "the requeued task waited in the queue"
    assert log.count("Starting with JobEnvironment") == 2, "the requeued task ran again"
    assert log.rstrip().endswith("Exiting after successful completion"), log[-2000:]


def test_no_password_in_the_job_script_pickles_or_logs(array_run):
    files = [p for p in array_run.log_dir.rglob("*") if p.is_file()] + list(array_run.registry.rglob("*.json"))
    names = {p.name for p in files}
    assert f"{array_run.job_id}_submission.sh" in names and f"{array_run.job_id}_0_submitted.pkl" in names
    assert f"{array_run.job_id}_1_0_log.out" in names and f"{array_run.job_id}_2_0_log.err" in names
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
    submitted = (array_run.log_dir / f"{array_run.job_id}_submission.sh").read_text()
    dry_run = render_job_script(name="tiny", log_dir=array_run.log_dir, **array_run.options)
    assert submitted == dry_run, "the dry run shows the script that was submitted"


def test_hpo_stop_cancels_the_array_and_its_running_trials_are_retried(slurm, tmp_path, tiny_model_dir, pg_url,
                                                                         monkeypatch):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=50, epochs=2, pruner="none")
    barrier = tmp_path / "barrier"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_STORAGE", _with_password(pg_url))
    for key, value in barrier_env(barrier).items():
        monkeypatch.setenv(key, value)
    job_id = str(launch("slurm", spec, log_dir=tmp_path / "logs", array=2, time="10",
                        gpus_per_task=0).record.job_id)
    try:
        reached = _wait_for(lambda: (barrier / "reached").exists() and (barrier / "reached").read_text(), 240,
                            "a task at its barrier", tmp_path / "logs")
        held = json.loads(reached)["trial"]
        stopped = hpo_cli("stop", "tiny", cwd=tmp_path)
        assert stopped.returncode == 0 and "cancelled Slurm job" in stopped.stdout, stopped.stderr
        _wait_for(lambda: not _queued(job_id), 60, "the cancelled tasks to leave the queue", tmp_path / "logs")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)

    study = _study(pg_url, "tiny")
    assert not study.get_trials(states=(TrialState.RUNNING,))
    stopped_trial = study.trials[held]
    assert stopped_trial.state == TrialState.FAIL and stopped_trial.user_attrs["failure_reason"] == "preempted"
    assert any(t.user_attrs.get("retry_of") == held for t in study.get_trials(states=(TrialState.WAITING,)))
    errors = slurm_log_path(tmp_path / "logs", job_id, int(stopped_trial.user_attrs["slurm_array_task_id"]),
                            stream="err").read_text()
    assert "preempted (SIGTERM)" in errors and "Exited with exit code 75" in errors, errors[-3000:]
    assert "Requeued" not in slurm_log_path(tmp_path / "logs", job_id, 0).read_text(), "a cancel is not requeued"
    again = hpo_cli("stop", "tiny", cwd=tmp_path)
    assert f"Slurm job {job_id} has no task queued or running; nothing to cancel" in again.stdout
