"""`hpo launch local`, `hpo stop`, `hpo logs` and `hpo prepare` with real worker processes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.errors import HpoError
from hpo.launch.local import plan_workers
from tests.builders import FAST_HEARTBEAT, hpo_cli, reach_barriers, start_hpo, write_study


def test_workers_are_pinned_round_robin_and_packed_per_gpu():
    plans = plan_workers(5, ["0", "2", "3"], 2, available=["0", "1", "2", "3"], cpus=16)
    assert [p.gpu for p in plans] == ["0", "2", "3", "0", "2"]
    cpu = plan_workers(3, None, 1, available=[], cpus=8)
    assert {p.env["OMP_NUM_THREADS"] for p in cpu} == {"2"} and {p.gpu for p in cpu} == {None}


@pytest.mark.parametrize(("workers", "gpus", "per_gpu", "message"), [
    (2, ["0", "7"], 1, "unknown GPU id 7; this machine offers 0, 1"),
    (2, ["0"], 0, "--per-gpu must be at least 1"),
    (5, ["0", "1"], 2, "5 workers do not fit on 2 GPU(s) at 2 per GPU"),
    (0, None, 1, "--workers must be at least 1"),
])
def test_bad_launch_options_are_refused(workers, gpus, per_gpu, message):
    with pytest.raises(HpoError, match=re.escape(message)):
        plan_workers(workers, gpus, per_gpu, available=["0", "1"], cpus=2)


def _launcher(spec: Path, url: str, cwd: Path, *args: str, barrier: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
    return start_hpo("launch", "local", str(spec), "--storage", url, *args, cwd=cwd, barrier=barrier,
                     env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", **FAST_HEARTBEAT, **(env or {})})


def test_three_local_workers_reach_the_budget_on_their_gpus(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=6, epochs=3, target_samples=240,
                       pruner="none")
    launcher = _launcher(spec, pg_url, tmp_path, "--workers", "3", "--gpus", "0,1", "--per-gpu", "2")
    out, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, out[-3000:]
    (record,) = json.loads((tmp_path / ".hpo" / "launches" / "tiny.json").read_text())
    expected_gpu = {pid: ["0", "1", "0"][i] for i, pid in enumerate(record["pids"])}
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == 6
    assert {t.user_attrs["pid"] for t in done} == set(record["pids"]), "each worker ran at least one trial"
    for trial in done:
        assert trial.user_attrs["gpu"] == expected_gpu[trial.user_attrs["pid"]]
        assert trial.user_attrs["hostname"] and trial.user_attrs["device"] == "cpu"
    log = hpo_cli("logs", "tiny", "--worker", "1", cwd=tmp_path)
    assert log.returncode == 0 and "study tiny" in log.stdout


def test_hpo_stop_preempts_the_running_trials(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=50, epochs=2, pruner="none")
    barrier = tmp_path / "barrier"
    launcher = _launcher(spec, pg_url, tmp_path, "--workers", "2", barrier=barrier,
                         env={"HPO_TEST_BARRIER_HOLDERS": "2"})
    held = {r["trial"] for r in reach_barriers(barrier, launcher, 2)}  # both workers stand mid-trial
    stopped = hpo_cli("stop", "tiny", cwd=tmp_path)
    assert stopped.returncode == 0 and "sent SIGTERM to 2 running worker(s)" in stopped.stdout
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 75, out[-3000:]
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    preempted = {t.number for t in study.trials if t.user_attrs.get("failure_reason") == "preempted"}
    assert preempted == held and all(study.trials[n].state == TrialState.FAIL for n in held)
    retries = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in retries) == sorted(held)
    assert all(t.system_attrs["fixed_params"] == study.trials[t.user_attrs["retry_of"]].params for t in retries)
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_an_in_memory_storage_is_refused(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir)
    done = hpo_cli("launch", "local", str(spec), "--storage", "sqlite:///:memory:", cwd=tmp_path)
    assert done.returncode == 1 and "cannot be shared by worker processes" in done.stderr


def test_prepared_cache_serves_workers_without_a_registry(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1)
    cache = tmp_path / "cache"
    prepares = [start_hpo("prepare", str(spec), "--cache", str(cache), cwd=tmp_path) for _ in range(2)]
    for prepare in prepares:  # two at once: the file locks keep them from corrupting the cache
        out, _ = prepare.communicate(timeout=600)
        assert prepare.returncode == 0, out[-3000:]
    assert len(list((cache / "tokens").glob("*.npz"))) == 3  # source, train, validation at max length 32
    offline = {"HPO_CACHE": str(cache), "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1",
               "HF_HUB_OFFLINE": "1"}
    done = hpo_cli("run", str(spec), cwd=tmp_path, env=offline, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 complete" in done.stdout
