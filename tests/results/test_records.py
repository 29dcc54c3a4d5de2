"""`hpo trials`, `hpo best`, `hpo status` and `hpo studies` as JSON and YAML, read with a few SQL queries, compared
with what `optuna.load_study(...).trials` says of the same study, on PostgreSQL and SQLite: every state (COMPLETE,
PRUNED, FAIL, RUNNING, WAITING), a retry chain, and the report's selection above 2,000 trials."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpo.storage import open_storage, retry_trial
from tests.builders import cli

DISTRIBUTIONS = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True), "freeze_depth": IntDistribution(0, 6),
                 "l2": CategoricalDistribution([0.0, 1e-4])}
WORKER = {"hostname": "node-1", "pid": 4242}

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/r.db"


def _params(i: int) -> dict:
    return {"learning_rate": 1e-5 * (i + 1), "freeze_depth": i % 7, "l2": [0.0, 1e-4][i % 2]}


def _trial(state: TrialState, i: int, value: float | None = None, **attrs) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, value=value, params=_params(i), distributions=DISTRIBUTIONS,
                        user_attrs={**WORKER, **attrs}, intermediate_values={1: 0.3, 2: 0.4})


def _every_state(url: str) -> optuna.Study:
    """Two COMPLETE (one tied best value broken by number), PRUNED, FAIL with its retry chain (FAIL -> FAIL ->
    WAITING), a RUNNING trial and an enqueued WAITING one."""
    study = optuna.create_study(study_name="mixed", storage=open_storage(url), direction="maximize")
    study.add_trial(_trial(TrialState.COMPLETE, 0, 0.81, epochs_run=2.0))
    study.add_trial(_trial(TrialState.PRUNED, 1, None, epochs_run=0.5))
    study.add_trial(_trial(TrialState.FAIL, 2, None, failure_reason="preempted", epochs_run=1.0))
    retry_trial(study, study.trials[2], "preempted", max_retries=3)  # trial 3, WAITING
    study.add_trial(_trial(TrialState.COMPLETE, 4, 0.93, epochs_run=2.0))
    study.add_trial(_trial(TrialState.COMPLETE, 5, 0.93, epochs_run=2.0))
    running = study.ask()  # pops the retry (trial 3) into RUNNING
    running.set_user_attr("failure_reason", "worker lost: no heartbeat")
    study.tell(running, state=TrialState.FAIL)
    retry_trial(study, study.trials[3], "worker lost: no heartbeat", max_retries=3)  # trial 6, WAITING
    study.ask()  # trial 6 RUNNING
    study.enqueue_trial(_params(7))  # trial 7, WAITING
    return study


def _records(url: str, *args: str, fmt: str = "json", cwd=None):
    done = cli(*args, "--storage", url, "-f", fmt, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if fmt == "json" else yaml.safe_load(done.stdout)


def _expected(trial: optuna.trial.FrozenTrial) -> dict:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "epochs_run": trial.user_attrs.get("epochs_run"), "duration_s": duration,
            "worker": "node-1:4242" if "pid" in trial.user_attrs else None,
            "failure_reason": trial.user_attrs.get("failure_reason")}


def _same(record: dict, trial: optuna.trial.FrozenTrial) -> None:
    expected = _expected(trial)
    assert record.keys() == expected.keys()
    assert record.pop("duration_s") == pytest.approx(expected.pop("duration_s"), abs=1e-3)
    params = record.pop("params")
    assert params == pytest.approx(expected.pop("params"), rel=1e-12)
    assert record == expected


def test_trials_as_json_and_yaml_are_optunas_trials(url, tmp_path):
    _every_state(url)
    trials = optuna.load_study(study_name="mixed", storage=url).trials
    assert {t.state for t in trials} == set(TrialState)  # every state present
    as_json = _records(url, "trials", "mixed", cwd=tmp_path)
    assert _records(url, "trials", "mixed", fmt="yaml", cwd=tmp_path) == as_json
    assert [r["number"] for r in as_json] == [t.number for t in trials]
    for record, trial in zip(as_json, trials, strict=True):
        _same(record, trial)
    chosen = _records(url, "trials", "mixed", "--state", "FAIL", "--state", "WAITING", cwd=tmp_path)
    assert [r["number"] for r in chosen] == [t.number for t in trials if t.state.name in ("FAIL", "WAITING")]


def test_best_status_and_studies_count_as_optuna_does(url, tmp_path):
    _every_state(url)
    study = optuna.load_study(study_name="mixed", storage=url)
    ranked = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    best = _records(url, "best", "mixed", "--top", "2", cwd=tmp_path)
    assert [r["number"] for r in best] == [t.number for t in ranked[:2]] == [4, 5]
    assert best[0]["number"] == study.best_trial.number

    status = _records(url, "status", "mixed", cwd=tmp_path)
    counts = Counter(t.state.name for t in study.trials)
    words = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "running": "RUNNING", "waiting": "WAITING"}
    assert status["counts"] == {word: counts[state] for word, state in words.items()}  # the words `hpo studies` uses
    assert status["best"]["number"] == study.best_trial.number and status["best"]["value"] == study.best_value
    assert [r["number"] for r in status["running"]] == [t.number for t in study.trials if t.state.name == "RUNNING"]
    chain = {r["number"]: r["retry_of"] for r in status["retries"]}
    assert chain == {t.number: t.user_attrs["retry_of"] for t in study.trials if "retry_of" in t.user_attrs}
    assert chain == {3: 2, 6: 3}  # 2 -> 3 -> 6

    (summary,) = _records(url, "studies", cwd=tmp_path)
    assert summary["study"] == "mixed" and summary["best_value"] == study.best_value
    assert {word: summary[word] for word in words} == status["counts"]


def test_json_output_pipes_into_a_json_tool(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    _every_state(url)
    shell = f"{sys.executable} -m hpo trials mixed --storage {url} -f json | {sys.executable} -m json.tool"
    done = subprocess.run(shell, shell=True, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 8


def test_a_study_without_a_complete_trial_has_no_best(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    optuna.create_study(study_name="empty", storage=url)
    done = cli("best", "empty", "--storage", url, cwd=tmp_path)
    assert done.returncode == 1 and "study 'empty' has no complete trial yet" in done.stderr
