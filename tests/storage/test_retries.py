"""Retries of lost or preempted trials: same parameters, a fresh trial, linked to the first; capped, after which
the parameters are reported as poisonous."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.storage import retry_trial


def _failed(study: optuna.Study, **user_attrs) -> optuna.trial.FrozenTrial:
    study.add_trial(create_trial(state=TrialState.FAIL, params={"learning_rate": 1e-4},
                                 distributions={"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)},
                                 user_attrs=user_attrs, intermediate_values={1: 0.5, 2: 0.6}))
    return study.trials[-1]


def test_a_retry_is_a_fresh_trial_with_the_same_parameters():
    study = optuna.create_study(direction="maximize")
    first = _failed(study, target_only=True)
    assert retry_trial(study, first, "preempted", max_retries=3) == 2
    study.optimize(lambda t: t.suggest_float("learning_rate", 1e-5, 1e-3, log=True), n_trials=1)
    retry = study.trials[-1]
    assert retry.params == first.params
    assert retry.intermediate_values == {}  # clean pruner state: nothing carried over
    assert retry.user_attrs == {"retry_of": 0, "retry_root": 0, "attempt": 2, "retry_reason": "preempted",
                                "target_only": True}


def test_retries_stop_at_the_cap_and_the_parameters_are_reported_poisonous():
    study = optuna.create_study(direction="maximize")
    trial = _failed(study)
    attempts = []
    while (attempt := retry_trial(study, trial, "worker lost: no heartbeat", max_retries=2)) is not None:
        attempts.append(attempt)
        trial = _failed(study, **study.get_trials(states=(TrialState.WAITING,))[-1].user_attrs)
    assert attempts == [2, 3]
    (poison,) = study.user_attrs["poisonous"]
    assert poison == {"params": {"learning_rate": 1e-4}, "first_trial": 0, "last_trial": trial.number,
                      "attempts": 3, "reason": "worker lost: no heartbeat"}


def test_a_queued_trial_preempted_before_it_samples_is_retried_with_its_queued_parameters(tmp_path):
    # The race a stop can hit: a worker pops a queued retry and is preempted before the objective suggests.
    study = optuna.create_study(direction="maximize", storage=f"sqlite:///{tmp_path / 'r.db'}")
    study.enqueue_trial({"learning_rate": 3e-4, "target_weight": 0.5}, user_attrs={"retry_of": 7, "attempt": 2})
    popped = study.ask()
    assert popped.params == {}  # nothing suggested yet
    assert retry_trial(study, popped, "preempted", max_retries=3) == 3
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["fixed_params"] == {"learning_rate": 3e-4, "target_weight": 0.5}
    assert retry.user_attrs["retry_of"] == popped.number


def test_a_fresh_trial_preempted_before_it_samples_has_nothing_to_retry():
    study = optuna.create_study(direction="maximize")
    assert retry_trial(study, study.ask(), "preempted", max_retries=3) is None
    assert not study.get_trials(states=(TrialState.WAITING,))
