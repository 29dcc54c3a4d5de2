"""The objective inside real Optuna studies (SQLite): pruning acts on a clearly bad trial and spares a good
one; a trial that fails for its own reason is FAIL with that reason and the study goes on."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from hpo.search.algorithms import make_pruner, make_sampler
from hpo.search.objective import Objective, TrialFailed
from hpo.spec import load_spec
from hpo.workbench import open_workbench
from tests.builders import DELETE, SilentReporter, study_from, write_study


def _study_and_objective(tmp_path, model_dir, space: dict, training: dict | None = None):
    """A tiny study with λ = 1 and freeze depth 0 fixed, 3 epochs, the given search space, and its objective."""
    path = study_from(write_study(tmp_path / "base.yaml", model_dir), tmp_path / "s.yaml", {
        "search_space": {"learning_rate": DELETE, "target_weight": 1.0, "freeze_depth": 0, "l1": DELETE,
                         "l2": DELETE, **space},
        "training": {"epochs": 3, **(training or {})},
        "target": {"max_samples": 240}, "validation_size": 64,
    })
    spec = load_spec(path)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'o.db'}", direction="maximize",
        sampler=make_sampler(spec.sampler, 0), pruner=make_pruner(spec.pruner, spec.max_evaluations()),
    )
    return study, Objective(spec, open_workbench(spec, str(path)), SilentReporter(), worker_seed=0)


def test_bad_trial_is_pruned_and_good_control_is_not(tmp_path, tiny_model_dir):
    study, objective = _study_and_objective(tmp_path, tiny_model_dir, {
        "learning_rate": {"low": 1.0e-8, "high": 1.0e-1, "log": True},
        "l1": {"choices": [0.0, 1.0e-6]}, "l2": {"choices": [0.0, 1.0e-4]},
    })
    good = {"learning_rate": 1e-2, "l1": 0.0, "l2": 0.0}
    for _ in range(3):
        study.enqueue_trial(good)
    study.enqueue_trial({**good, "learning_rate": 1e-7})  # learns nothing: F1 stays near zero
    study.enqueue_trial(good)  # the control: the configuration that completed
    study.optimize(objective, n_trials=5, catch=(TrialFailed,))

    trials = study.get_trials()
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 3
    bad, control = trials[3], trials[4]
    assert bad.state == TrialState.PRUNED
    assert len(bad.intermediate_values) < 6, "pruned before its last evaluation"
    assert control.state == TrialState.COMPLETE
    assert len(control.intermediate_values) == 6
    assert control.value > max(bad.intermediate_values.values())
    # a pruned trial still records what it did
    assert bad.user_attrs["epochs_run"] < 3
    assert len(bad.user_attrs["curve"]) == len(bad.intermediate_values)


def test_failing_trial_records_its_reason_and_the_study_goes_on(tmp_path, tiny_model_dir):
    study, objective = _study_and_objective(tmp_path, tiny_model_dir, {
        "learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "l1": {"choices": [0.0, 1.0e-6]}, "l2": {"choices": [0.0, 1.0e38]},
    })
    study.enqueue_trial({"learning_rate": 1e-2, "l1": 0.0, "l2": 1.0e38})  # the penalty overflows: inf loss
    study.enqueue_trial({"learning_rate": 1e-2, "l1": 0.0, "l2": 0.0})
    study.optimize(objective, n_trials=2, catch=(TrialFailed,))
    failed, ok = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["failure_reason"].startswith("non-finite loss")
    assert ok.state == TrialState.COMPLETE


def test_trial_past_its_time_limit_fails_with_that_reason(tmp_path, tiny_model_dir):
    study, objective = _study_and_objective(tmp_path, tiny_model_dir, {
        "learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "l1": {"choices": [0.0, 1.0e-6]}, "l2": {"choices": [0.0, 1.0e-4]},
    }, training={"time_limit_s": 0.001})
    study.optimize(objective, n_trials=1, catch=(TrialFailed,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure_reason"].startswith("time limit: passed the time limit of 0.001 s")
