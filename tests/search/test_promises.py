"""What the README promises about a run that does not end well, through the real `hpo run` in a subprocess: Ctrl-C
fails the running trial as `interrupted` and exits 130 (the signal lands mid-trial, at the barrier of
tests/barrier_site); five failures in a row stop the run with the last reason, one line, no traceback."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

from tests.builders import hpo_cli, reach_barrier, start_hpo, study_from, write_study

HANG_S = 600  # a guard against a hang, never a timing the test relies on (a loaded 2-core machine is slow)


def _study(work, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{work / 'hpo.db'}")


@contextmanager
def _sigint_delivered() -> Iterator[None]:
    """A user's Ctrl-C reaches a foreground `hpo run`; a test runner started in the background may ignore SIGINT,
    and a child inherits an ignored signal (exec resets only handled ones)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_fails_the_running_trial_as_interrupted_and_exits_130(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=3, pruner="none")
    barrier, log = tmp_path / "barrier", tmp_path / "run.log"
    with _sigint_delivered():
        run = start_hpo("run", str(spec), cwd=tmp_path, log=log, barrier=barrier)
    try:
        reached = reach_barrier(barrier, run, log, timeout=HANG_S)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=HANG_S) == 130, log.read_text()[-3000:]
    finally:
        if run.poll() is None:  # never left standing at the barrier
            run.kill()
            run.wait()

    interrupted = _study(tmp_path).trials[reached["trial"]]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["failure_reason"] == "interrupted"
    assert interrupted.intermediate_values, "it was stopped mid-trial, after an evaluation"
    text = log.read_text()
    assert "interrupted: a running trial is marked FAIL `interrupted`; run again to continue" in text
    assert "Traceback" not in text
    assert not _study(tmp_path).get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    again = hpo_cli("run", str(spec), cwd=tmp_path)  # "run again to continue"
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(_study(tmp_path).get_trials(states=(TrialState.COMPLETE,))) == 3


def test_five_failures_in_a_row_stop_the_run_with_the_last_reason(tmp_path, tiny_model_dir):
    # L2 = 1e38 over the whole encoder's Σθ² (hundreds) overflows float32: every trial's loss is infinite at its
    # first step. A failure does not use the budget, so only the stop ends this run.
    spec = study_from(write_study(tmp_path / "base.yaml", tiny_model_dir, n_trials=20, pruner="none"),
                      tmp_path / "tiny.yaml", {"search_space": {"freeze_depth": 0, "l2": 1.0e38}})
    done = hpo_cli("run", str(spec), cwd=tmp_path, timeout=HANG_S)
    assert done.returncode == 1, done.stderr[-3000:]

    trials = _study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 5
    reasons = [t.user_attrs["failure_reason"] for t in trials]
    assert all(reason.startswith("non-finite loss") for reason in reasons), reasons
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors == [f"error: 5 trials in a row failed; stopping. Last reason: {reasons[-1]}"]
    assert done.stdout.count(" FAIL ") == 5, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
