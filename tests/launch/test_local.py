"""`hpo launch local`, `hpo stop`, `hpo logs` and `hpo prepare` with real worker processes. Where a test needs
every worker inside a trial, the workers stand at a barrier (tests/barrier_site) until the test lets them go."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.launch.local import plan_workers, process_identity
from hpo.launch.records import LocalLaunchRecord, WorkerProcess, launches, record_launch
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


def _line(trial: FrozenTrial, worker: int) -> str:
    """What the launch prints for a finished trial when nobody watches its output."""
    return f"trial {trial.number} {trial.state.name} val F1 {trial.value:.4f} worker {worker}"


def test_three_local_workers_reach_the_budget_on_their_gpus(tmp_path, tiny_model_dir, pg_url):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=6, epochs=3, target_samples=240,
                       pruner="{name: median, n_startup_trials: 1}")
    barrier = tmp_path / "barrier"
    launcher = _launcher(spec, pg_url, tmp_path, "--workers", "3", "--gpus", "0,1", "--per-gpu", "2",
                         barrier=barrier, env={"HPO_TEST_BARRIER_HOLDERS": "3"})
    held = reach_barriers(barrier, launcher, 3)  # each worker stands in a trial of its own
    (barrier / "release").touch()
    out, _ = launcher.communicate(timeout=600)  # a pipe, not a terminal: plain lines
    assert launcher.returncode == 0, out[-3000:]
    (record,) = launches("tiny", root=tmp_path / ".hpo")
    pids = [worker.pid for worker in record.workers]
    assert sorted(h["pid"] for h in held) == sorted(pids)
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == 6 and len(study.trials) == 6
    assert {t.user_attrs["pid"] for t in done} == set(pids)
    for trial in done:
        assert trial.user_attrs["gpu"] == ["0", "1", "0"][pids.index(trial.user_attrs["pid"])]
        assert trial.user_attrs["hostname"] and trial.user_attrs["device"] == "cpu"

    lines = out.splitlines()
    assert sorted(line for line in lines if line.startswith("trial ")) == \
        sorted(_line(t, pids.index(t.user_attrs["pid"])) for t in done), "one line per trial, in its final state"
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number))
    pruned = len(done) - len(complete)
    assert lines[-2:] == [f"study tiny: {len(complete)} complete, {pruned} pruned, 0 failed; best val F1 "
                          f"{best.value:.4f} (trial {best.number})", "workers: 0 exited 0, 1 exited 0, 2 exited 0"]
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
    assert out.splitlines()[-1] == "workers: 0 exited 75, 1 exited 75"
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    preempted = {t.number for t in study.trials if t.user_attrs.get("failure_reason") == "preempted"}
    assert preempted == held and all(study.trials[n].state == TrialState.FAIL for n in held)
    retries = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in retries) == sorted(held)
    assert all(t.system_attrs["fixed_params"] == study.trials[t.user_attrs["retry_of"]].params for t in retries)
    assert not study.get_trials(states=(TrialState.RUNNING,))


def _stranger() -> subprocess.Popen:
    """A live process that is no worker of ours. It blocks SIGTERM, so a SIGTERM sent to it stays pending, to be
    seen in /proc: whether it was signalled does not depend on when anyone looks."""
    stranger = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                                 "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
                                 "print('ready', flush=True)\ntime.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert stranger.stdout.readline() == "ready\n"
    return stranger


def _sigterm_pending(pid: int) -> bool:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    pending = int(status["ShdPnd"], 16) | int(status["SigPnd"], 16)
    return bool(pending & (1 << (15 - 1)))  # SIGTERM is 15; bit n-1 stands for signal n


def test_hpo_stop_signals_no_process_that_merely_holds_a_recorded_pid(tmp_path):
    strangers = [_stranger(), _stranger()]
    try:
        identity = [process_identity(s.pid) for s in strangers]
        assert all(identity)
        (start, command), (start_b, command_b) = identity
        workers = (WorkerProcess(pid=strangers[0].pid, start_time="ticks:1", command=command, log="w0.log"),
                   WorkerProcess(pid=strangers[0].pid, start_time=start, command=(sys.executable, "-m", "hpo", "run",
                                                                                  "tiny.yaml"), log="w1.log"),
                   WorkerProcess(pid=strangers[1].pid, start_time=start_b, command=command_b, log="w2.log"))
        record_launch(LocalLaunchRecord(study="tiny", host=socket.gethostname(), storage="sqlite:///hpo.db",
                                        workers=workers), root=tmp_path / ".hpo")
        stopped = hpo_cli("stop", "tiny", cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
        pid = strangers[0].pid
        assert stopped.stdout.strip() == f"local: sent SIGTERM to 1 running worker(s); no longer running: worker " \
                                         f"0 (pid {pid}), 1 (pid {pid})"
        assert not _sigterm_pending(strangers[0].pid), "another start time or command line: left alone"
        assert _sigterm_pending(strangers[1].pid), "the recorded process itself: signalled"
    finally:
        for stranger in strangers:
            stranger.kill()
            stranger.wait()


def test_a_dry_run_prints_lines_that_run_when_pasted(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=2, epochs=1)
    url = f"sqlite:///{tmp_path}/kept-out-of-the-output.db"
    dry = hpo_cli("launch", "local", str(spec), "--workers", "2", "--storage", url, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "kept-out" not in dry.stdout and "sqlite" not in dry.stdout
    assert dry.stdout.startswith("# 2 workers on study tiny. Set HPO_STORAGE to the storage URL first")
    (tmp_path / "launch.sh").write_text(dry.stdout)
    env = {key: value for key, value in os.environ.items() if key != "HPO_STORAGE"}

    unset = subprocess.run(["bash", "launch.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert unset.returncode == 1 and "HPO_STORAGE: set HPO_STORAGE to the storage URL" in unset.stderr
    assert not (tmp_path / ".hpo").exists(), "nothing started"
    ran = subprocess.run(["bash", "launch.sh"], cwd=tmp_path, env={**env, "HPO_STORAGE": url}, capture_output=True,
                         text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2
    for worker in (0, 1):
        assert "study tiny" in (tmp_path / ".hpo" / "logs" / "tiny" / f"worker-{worker}.log").read_text()


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
