"""A large study, fast: N trials shaped like a real search's (COMPLETE, PRUNED and FAIL trials with the five
searched parameters, per-evaluation validation F1, the user attributes `hpo run` records), written in bulk.

Optuna's `add_trials` writes a trial in ~16 ms (its ORM, one transaction per trial): 10,000 trials take minutes.
This writes trial 0 through Optuna, then the rest with one executemany per table into Optuna's own schema, in one
transaction: seconds. tests/results/test_scale.py checks that `optuna.load_study` reads every generated trial
back exactly as generated, so a change of Optuna's schema fails there, not silently here.

    python -m benchmarks.big_study sqlite:///big.db --trials 10000
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution, distribution_to_json
from optuna.trial import FrozenTrial, TrialState, create_trial

__all__ = ["DISTRIBUTIONS", "build", "generated_trials"]

DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True), "target_weight": FloatDistribution(0.3, 1.0),
    "freeze_depth": IntDistribution(0, 6), "l1": CategoricalDistribution([0.0, 1e-6]),
    "l2": CategoricalDistribution([0.0, 1e-4]),
}
START = datetime(2026, 1, 1)


def _trial(rng: random.Random, i: int) -> FrozenTrial:
    params = {"learning_rate": 10 ** rng.uniform(-5, -3), "target_weight": rng.choice([1.0, rng.uniform(0.3, 1.0)]),
              "freeze_depth": rng.randint(0, 6), "l1": rng.choice([0.0, 1e-6]), "l2": rng.choice([0.0, 1e-4])}
    # F1 peaks near lr 2e-4 and λ 0.7 and falls with the freeze depth, so importances have something to find.
    quality = (0.9 - 0.08 * abs(math.log10(params["learning_rate"] / 2e-4)) - 0.1 * abs(params["target_weight"] - 0.7)
               - 0.01 * params["freeze_depth"])
    roll = rng.random()
    state = TrialState.FAIL if roll < 0.05 else TrialState.PRUNED if roll < 0.6 else TrialState.COMPLETE
    steps = 6 if state == TrialState.COMPLETE else rng.randint(1, 3)
    curve = {s: round(min(1.0, max(0.0, quality * (1 - 0.5 ** s) + rng.gauss(0, 0.01))), 5)
             for s in range(1, steps + 1)}
    attrs: dict[str, Any] = {"epochs_run": steps / 2, "hostname": f"node-{i % 4}", "pid": 1000 + i % 4,
                             "device": "cpu", "precision": "fp32",
                             "curve": [[s, s / 2, v] for s, v in curve.items()]}
    if state == TrialState.FAIL:
        attrs["failure_reason"] = "preempted"
    else:
        attrs["best_evaluation"] = max(curve, key=curve.__getitem__)
    trial = create_trial(state=state, value=max(curve.values()) if state == TrialState.COMPLETE else None,
                         params=params, distributions=DISTRIBUTIONS, user_attrs=attrs, intermediate_values=curve)
    trial.number = i
    trial.datetime_start = START + timedelta(seconds=60 * i)
    trial.datetime_complete = trial.datetime_start + timedelta(seconds=20 + 10 * steps)
    return trial


def generated_trials(n: int, seed: int = 0) -> list[FrozenTrial]:
    """The trials `build` writes, as FrozenTrials (numbered 0 .. n-1)."""
    rng = random.Random(seed)
    return [_trial(rng, i) for i in range(n)]


def _rows(trials: list[FrozenTrial], first_id: int, study_id: int, when: Any) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {"trials": [], "values": [], "params": [], "attrs": [], "steps": []}
    for offset, trial in enumerate(trials):
        tid = first_id + offset
        rows["trials"].append({"id": tid, "number": trial.number, "study": study_id, "state": trial.state.name,
                               "start": when(trial.datetime_start), "complete": when(trial.datetime_complete)})
        if trial.value is not None:
            rows["values"].append({"id": tid, "value": trial.value})
        rows["params"] += [{"id": tid, "name": name, "value": DISTRIBUTIONS[name].to_internal_repr(value),
                            "dist": distribution_to_json(DISTRIBUTIONS[name])} for name, value in trial.params.items()]
        rows["attrs"] += [{"id": tid, "key": k, "value": json.dumps(v)} for k, v in trial.user_attrs.items()]
        rows["steps"] += [{"id": tid, "step": s, "value": v} for s, v in trial.intermediate_values.items()]
    return rows


_INSERTS = {
    "trials": "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
              "VALUES (:id, :number, :study, :state, :start, :complete)",
    "values": "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (:id, 0, :value, 'FINITE')",
    "params": "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
              "VALUES (:id, :name, :value, :dist)",
    "attrs": "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (:id, :key, :value)",
    "steps": "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) "
             "VALUES (:id, :step, :value, 'FINITE')",
}


def build(url: str, n_trials: int, *, name: str = "big", seed: int = 0) -> optuna.Study:
    """Create study `name` in `url` holding `generated_trials(n_trials, seed)`, with a budget of n_trials."""
    from sqlalchemy import create_engine, text

    trials = generated_trials(n_trials, seed)
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.add_trial(trials[0])  # through Optuna: the study's first trial, and a check that the rows match its own
    study.set_user_attr("n_trials", n_trials)
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        study_id = connection.execute(text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}).scalar()
        first = connection.execute(text("SELECT max(trial_id) FROM trials")).scalar() + 1
        rows = _rows(trials[1:], first, study_id,
                     (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")) if sqlite else (lambda d: d))
        for table, statement in _INSERTS.items():
            if rows[table]:
                connection.execute(text(statement), rows[table])
        if not sqlite:  # explicit ids do not move PostgreSQL's sequence; Optuna's next insert would collide
            connection.execute(text("SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                                    "(SELECT max(trial_id) FROM trials))"))
    engine.dispose()
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="storage URL, e.g. sqlite:///big.db")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--name", default="big")
    args = parser.parse_args()
    build(args.url, args.trials, name=args.name)
    print(f"study {args.name!r}: {args.trials} trials in {args.url}")


if __name__ == "__main__":
    main()
