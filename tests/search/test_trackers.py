"""A study's trials recorded in MLflow and Weights & Biases (`trackers:`): real tiny studies, a real local MLflow
store read back with MLflow's own client, a real W&B offline directory read back record by record, real worker
processes. Nothing of the trackers is mocked."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from hpo.preemption import EXIT_PREEMPTED
from hpo.search.trackers import PARENT_RUN_ATTR
from hpo.search.worker import run_study
from hpo.spec import load_study_file, structure_problems
from hpo.spec.trackers import mask_tracking_uri
from tests.builders import barrier_env, reach_barriers, start_worker, study_from, write_study

HANG_S = 600  # a guard against a hung worker, never a timing a test relies on
GOOD = {"learning_rate": 3.0e-3, "target_weight": 1.0, "freeze_depth": 0, "l1": 0.0, "l2": 0.0}
# In this order the three trials end FAIL (the penalty overflows: an infinite loss), COMPLETE, and PRUNED (it learns
# nothing, and the median pruner has one complete trial to compare it with). The re-run's one trial is enqueued too:
# sampled, it could draw l2 = 1e38, fail, and leave the budget one trial short, so the run would add a fifth.
FAILS, LEARNS, LEARNS_NOTHING = {**GOOD, "l2": 1.0e38}, GOOD, {**GOOD, "learning_rate": 1.0e-4, "freeze_depth": 2}
RERUN = {**GOOD, "learning_rate": 2.0e-3}


def _spec_file(work: Path, model_dir: Path, trackers: dict, n_trials: int = 2, overflows: bool = False) -> Path:
    """A tiny study (1 epoch, 2 evaluations) with `trackers`; with `overflows`, l2 may be 1e38 (an infinite loss)."""
    base = write_study(work / "base.yaml", model_dir, epochs=1, n_trials=n_trials,
                       pruner="{name: median, n_startup_trials: 1}")
    space = {"search_space": {"l2": {"choices": [0.0, 1.0e38]}}} if overflows else {}
    return study_from(base, work / "tiny.yaml", {**space, "trackers": trackers})


def _run(spec_path: Path, url: str, n_trials: int | None = None) -> str:
    """`hpo run` in this process; what it printed."""
    spec, text = load_study_file(spec_path)
    printed = io.StringIO()
    run_study(spec, text, source=str(spec_path), storage=url, n_trials=n_trials,
              console=Console(file=printed, width=200))
    return printed.getvalue()


def _mlflow_runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def _parent_and_children(runs: list) -> tuple[object, list]:
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1, [run.info.run_name for run in parents]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1, "every other run is a child of the one parent"
    return parents[0], children


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model_dir):
    """A study tracked in MLflow (a local SQLite store) and W&B (offline): three enqueued trials ending FAIL,
    COMPLETE and PRUNED, then a re-run with its budget raised by one."""
    work = tmp_path_factory.mktemp("tracked")
    uri, url = f"sqlite:///{work / 'mlflow.db'}", f"sqlite:///{work / 'hpo.db'}"
    spec = _spec_file(work, tiny_model_dir, {
        "mlflow": {"tracking_uri": uri, "experiment": "transfer"},
        "wandb": {"project": "tiny", "mode": "offline"}}, overflows=True)
    queued = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    for params in (FAILS, LEARNS, LEARNS_NOTHING, RERUN):
        queued.enqueue_trial(params)
    caller_uri = os.environ.get("MLFLOW_TRACKING_URI")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("WANDB_DIR", str(work / "wandb-out"))  # where W&B writes offline runs (wandb/ in it)
        first = _run(spec, url)
        parent_after_first = optuna.load_study(study_name="tiny", storage=url).user_attrs[PARENT_RUN_ATTR]
        second = _run(spec, url, n_trials=3)
    return {"work": work, "uri": uri, "study": optuna.load_study(study_name="tiny", storage=url),
            "printed": first + second, "parent_after_first": parent_after_first,
            "uri_left_behind": (caller_uri, os.environ.get("MLFLOW_TRACKING_URI"))}


def test_mlflow_has_one_parent_and_a_child_run_per_trial_with_its_state(tracked):
    trials = tracked["study"].trials
    assert [t.state for t in trials[:3]] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.PRUNED]
    parent, children = _parent_and_children(_mlflow_runs(tracked["uri"], "transfer"))
    assert len(children) == len(trials) == 4
    by_number = {int(run.data.tags["number"]): run for run in children}
    for trial in trials:
        run = by_number[trial.number]
        assert run.data.tags["state"] == trial.state.name
        assert run.info.status == ("FAILED" if trial.state == TrialState.FAIL else "FINISHED")
        assert run.data.params == {name: str(value) for name, value in trial.params.items()}
        assert run.data.metrics["trainable_params"] == trial.user_attrs["trainable_params"]
        expected_s = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert run.data.metrics["duration_s"] == pytest.approx(expected_s, abs=1e-3)
        assert ("value" in run.data.metrics) == (trial.value is not None)
    assert by_number[2].data.tags["state"] == "PRUNED" and by_number[2].info.status == "FINISHED"
    failed = by_number[0]
    assert failed.data.tags["failure_reason"] == trials[0].user_attrs["failure_reason"]
    assert failed.data.tags["failure_reason"].startswith("non-finite loss")
    assert by_number[1].data.metrics["value"] == pytest.approx(trials[1].value)
    assert parent.info.run_name == "tiny" and parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_f1"] == pytest.approx(tracked["study"].best_value)
    assert "tracking: MLflow sqlite:///" in tracked["printed"] and "experiment 'transfer'" in tracked["printed"]
    before, after = tracked["uri_left_behind"]
    assert after == before, "the process's MLFLOW_TRACKING_URI is as it was (workers it starts inherit it)"


def test_mlflow_step_series_is_the_trials_curve(tracked):
    from mlflow import MlflowClient

    client = MlflowClient(tracked["uri"])
    _, children = _parent_and_children(_mlflow_runs(tracked["uri"], "transfer"))
    curves = {t.number: t.user_attrs.get("curve", []) for t in tracked["study"].trials}
    assert sum(len(curve) for curve in curves.values()) >= 4, "two evaluations of the complete trial, at least"
    for run in children:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_f1"))
        curve = curves[int(run.data.tags["number"])]
        assert [step for step, _ in history] == [evaluation for evaluation, _, _ in curve]
        assert [value for _, value in history] == pytest.approx([f1 for _, _, f1 in curve], abs=1e-5)


def test_a_rerun_finds_the_parent_run_stored_with_the_study(tracked):
    parent, children = _parent_and_children(_mlflow_runs(tracked["uri"], "transfer"))
    assert tracked["study"].user_attrs[PARENT_RUN_ATTR] == tracked["parent_after_first"] == parent.info.run_id
    assert tracked["printed"].count(f"parent run {parent.info.run_id}") == 2  # the first run, and the re-run
    assert {run.data.tags["pid"] for run in children} == {str(t.user_attrs["pid"]) for t in tracked["study"].trials}


def test_wandb_offline_writes_one_run_per_trial_with_the_step_series(tracked):
    runs = _wandb_runs(tracked["work"] / "wandb-out")
    trials = tracked["study"].trials
    assert len(runs) == len(trials) == 4
    by_name = {run["name"]: run for run in runs}
    for trial in trials:
        run = by_name[f"tiny-trial-{trial.number}"]
        assert run["group"] == "tiny" and run["job_type"] == "trial"
        curve = trial.user_attrs.get("curve", [])
        assert [step for step, _ in run["val_f1"]] == [evaluation for evaluation, _, _ in curve]
        assert [value for _, value in run["val_f1"]] == pytest.approx([f1 for _, _, f1 in curve], abs=1e-5)
        assert run["summary"]["state"] == trial.state.name
        assert run["summary"]["trainable_params"] == trial.user_attrs["trainable_params"]
        assert run["exit_code"] == (1 if trial.state == TrialState.FAIL else 0)
    assert by_name["tiny-trial-0"]["summary"]["failure_reason"] == trials[0].user_attrs["failure_reason"]
    assert by_name["tiny-trial-1"]["summary"]["value"] == pytest.approx(trials[1].value)


def _wandb_runs(folder: Path) -> list[dict]:
    """Each offline run under `folder`, read from its `.wandb` file: W&B's own protobuf records, in the LevelDB log
    framing W&B writes them in (32 KiB blocks; a chunk is CRC, length, type and bytes)."""
    from wandb.proto import wandb_internal_pb2

    runs = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"val_f1": [], "summary": {}}
        for data in _chunks(path.read_bytes()):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(name=record.run.display_name, group=record.run.run_group, job_type=record.run.job_type)
            elif kind == "history":
                row = _items(record.history.item)
                if "val_f1" in row:
                    run["val_f1"].append((row["_step"], row["val_f1"]))
            elif kind == "summary":
                run["summary"].update(_items(record.summary.update))
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
        runs.append(run)
    return runs


def _items(items) -> dict:
    """A history row or summary update: W&B names a key in `key`, or path by path in `nested_key`."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def _chunks(data: bytes, block: int = 32768):
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            yield pending
            pending = b""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_mlflow_fails_no_trial_and_warns_once(tmp_path, tiny_model_dir, monkeypatch):
    # The URI comes from the environment (where a password may be) and is never shown with it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://me:s3cret@127.0.0.1:{_closed_port()}")
    spec = _spec_file(tmp_path, tiny_model_dir, {"mlflow": {}}, n_trials=2)
    printed = _run(spec, f"sqlite:///{tmp_path / 'hpo.db'}")
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'hpo.db'}").trials
    assert len(trials) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), printed
    warnings = [line for line in printed.splitlines() if "warning:" in line]
    assert len(warnings) == 1, printed
    assert "MLflow failed for 5 s" in warnings[0] and "me:***@127.0.0.1" in warnings[0], warnings[0]
    assert "s3cret" not in printed


def test_a_tracking_uri_with_a_secret_is_refused_where_the_study_file_is_checked(tmp_path):
    import yaml

    for uri in ("http://me:s3cret@mlflow.example:5000", "https://mlflow.example/?token=s3cret"):
        path = study_from(write_study(tmp_path / "base.yaml", tmp_path), tmp_path / "s.yaml",
                          {"trackers": {"mlflow": {"tracking_uri": uri}}})
        _, problems = structure_problems(yaml.safe_load(path.read_text()), source=str(path))
        assert [field for field, _ in problems] == ["trackers -> mlflow -> tracking_uri"], problems
        assert "MLFLOW_TRACKING_URI" in problems[0][1] and "s3cret" not in problems[0][1]
    accepted = study_from(write_study(tmp_path / "base.yaml", tmp_path), tmp_path / "ok.yaml",
                          {"trackers": {"mlflow": {"tracking_uri": "http://mlflow.example:5000"}}})
    assert structure_problems(yaml.safe_load(accepted.read_text()), source=str(accepted))[1] == []
    assert mask_tracking_uri("http://me:s3cret@h:5000/?token=t0ken") == "http://me:***@h:5000/?token=***"
    assert mask_tracking_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


# `import wandb` refused as it is where the package is not installed; nothing of transfer-hpo is touched.
_WITHOUT_WANDB = """
import sys

class RefuseWandb:
    def find_spec(self, name, path=None, target=None):
        if name == "wandb" or name.startswith("wandb."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, RefuseWandb())
from hpo.cli import main
sys.argv = ["hpo", *sys.argv[1:]]
main()
"""


def test_a_tracker_that_is_not_installed_is_one_error_before_the_study_exists(tmp_path, tiny_model_dir):
    spec = _spec_file(tmp_path, tiny_model_dir, {"wandb": {"project": "tiny", "mode": "offline"}})
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    done = subprocess.run([sys.executable, "-c", _WITHOUT_WANDB, "run", str(spec), "--storage", url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "[trackers -> wandb] wandb not installed; install the extra: pip install 'transfer-hpo[wandb]'" in output
    assert "Traceback" not in output and not re.search(r"trial +\d", output), output
    assert not (tmp_path / "hpo.db").exists() or optuna.get_all_study_names(url) == []


def test_workers_opening_the_parent_together_create_one(tmp_path, monkeypatch):
    """Four workers (threads here, each with its own study object and tracker) open the study's parent run at
    the same moment on a file store: the storage's lock lets one create it and the others find it."""
    from hpo.search.trackers._mlflow import MlflowTracker
    from hpo.settings import StorageURL
    from hpo.spec.trackers import TrackersSpec

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)  # what the trackers set while open is put back after the test
    url, uri = f"sqlite:///{tmp_path / 'hpo.db'}", f"file://{tmp_path / 'mlruns'}"
    optuna.create_study(study_name="together", storage=url)
    trackers = TrackersSpec.model_validate({"mlflow": {"tracking_uri": uri}})
    start, parents, warned = threading.Barrier(4), [], []

    def worker() -> None:
        study = optuna.load_study(study_name="together", storage=url)
        tracker = MlflowTracker(trackers, study, StorageURL.parse(url), "val_f1", warned.append)
        start.wait()
        tracker.open()
        parents.append(tracker.parent)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert warned == []
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    runs = _mlflow_runs(uri, "together")
    assert len(runs) == 1 and parents == [runs[0].info.run_id] * 4


def test_two_workers_share_one_parent_run_and_a_retry_links_to_its_trial(tmp_path, tiny_model_dir):
    uri, url = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'hpo.db'}"
    spec = _spec_file(tmp_path, tiny_model_dir, {"mlflow": {"tracking_uri": uri}}, n_trials=3)
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    barrier = tmp_path / "barrier"
    workers = [start_worker(spec, url, tmp_path, log, env=barrier_env(barrier, holders=2)) for log in logs]
    try:
        held = {h["pid"]: h["trial"] for h in reach_barriers(barrier, _AnyOf(workers), 2, logs[0], HANG_S)}
        victim, survivor = workers
        victim.send_signal(signal.SIGTERM)  # preempted mid-trial: FAIL `preempted`, its retry queued
        assert victim.wait(timeout=HANG_S) == EXIT_PREEMPTED, logs[0].read_text()[-3000:]
        (barrier / "release").touch()
        assert survivor.wait(timeout=HANG_S) == 0, logs[1].read_text()[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    parent, children = _parent_and_children(_mlflow_runs(uri, "tiny"))
    assert len(children) == len(trials)
    assert {run.data.tags["pid"] for run in children} == {str(w.pid) for w in workers}, "both workers' trials"
    by_number = {int(run.data.tags["number"]): run for run in children}
    preempted = by_number[held[victim.pid]]
    assert preempted.data.tags["failure_reason"] == "preempted" and preempted.info.status == "FAILED"
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == held[victim.pid]]
    assert by_number[retry.number].data.tags["retry_of"] == str(held[victim.pid])
    assert parent.info.run_id == optuna.load_study(study_name="tiny", storage=url).user_attrs[PARENT_RUN_ATTR]
    assert all("Traceback" not in log.read_text() for log in logs)


class _AnyOf:
    """Workers as one process for `reach_barriers`: it has ended as soon as one of them has."""

    def __init__(self, workers: list[subprocess.Popen]) -> None:
        self.workers = workers

    def poll(self) -> int | None:
        return next((code for code in (w.poll() for w in self.workers) if code is not None), None)
