"""The storage's admission (hpo/budget.py), its one-round-trip reports (hpo/intermediate_values.py) and the
target-only share (hpo/algorithms.py), on the real PostgreSQL and on SQLite."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.trial import TrialState

from hpo.search.algorithms import make_sampler
from hpo.spec import SamplerSpec
from hpo.storage import BudgetSpent, open_storage, study_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/b.db"


def _study(url: str, budget: int | None) -> tuple[optuna.Study, object]:
    storage = open_storage(url)
    study = optuna.create_study(study_name="budget", storage=storage, load_if_exists=True, direction="maximize")
    storage.limit_trials(storage.get_study_id_from_name("budget"), budget)
    return study, storage


def _states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def test_a_new_trial_is_refused_once_the_budget_is_taken_and_a_failure_frees_a_place(url):
    study, _ = _study(url, budget=2)
    first, second = study.ask(), study.ask()
    with pytest.raises(BudgetSpent):
        study.ask()
    study.tell(first, state=TrialState.FAIL)
    third = study.ask()
    study.tell(second, 0.5)
    study.tell(third, 0.7)
    with pytest.raises(BudgetSpent):
        study.ask()
    assert _states(study) == {"FAIL": 1, "COMPLETE": 2}


def test_a_waiting_retry_holds_its_place_against_fresh_trials(url):
    study, storage = _study(url, budget=2)
    running = study.ask()
    study.enqueue_trial({"x": 0.25}, user_attrs={"retry_of": 99})
    # COMPLETE + PRUNED + RUNNING + WAITING = 2: no fresh trial, but the waiting one may start.
    with pytest.raises(BudgetSpent):
        storage.create_new_trial(storage.get_study_id_from_name("budget"))
    popped = study.ask()
    assert popped.suggest_float("x", 0, 1) == 0.25 and popped.user_attrs["retry_of"] == 99
    study.tell(running, 0.1)
    study.tell(popped, 0.2)
    assert _states(study) == {"COMPLETE": 2}


def test_a_waiting_trial_starts_only_within_the_budget(url):
    study, _ = _study(url, budget=1)
    study.ask()
    study.enqueue_trial({"x": 0.5})  # queued beyond the budget (an exported config, say)
    with pytest.raises(BudgetSpent):
        study.ask()
    assert _states(study) == {"RUNNING": 1, "WAITING": 1}


WORKER = textwrap.dedent("""
    import sys
    from collections import Counter

    import optuna

    from hpo.search.worker import run_trials
    from hpo.storage import open_storage

    class Display:
        counts = Counter()
        def trial_finished(self, trial): pass
        def note(self, text): pass

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        for step in range(5):
            trial.report(x * step, step)
        return x

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(sys.argv[1])
    study = optuna.load_study(study_name="budget", storage=storage)
    run_trials(study, objective, budget=int(sys.argv[2]), display=Display())
""")


@pytest.mark.slow
def test_eight_processes_spend_the_budget_exactly(url, tmp_path):
    study, _ = _study(url, budget=None)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), url, "40"], stderr=subprocess.PIPE, text=True)
               for _ in range(8)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * 8, errors
    assert _states(study) == {"COMPLETE": 40}
    assert all(len(t.intermediate_values) == 5 for t in study.get_trials())


def test_reports_take_one_round_trip_and_keep_optunas_semantics(url):
    study, _ = _study(url, budget=None)
    trial = study.ask()
    for step, value in enumerate([0.5, float("nan"), float("inf"), float("-inf")]):
        trial.report(value, step)
    study._storage.set_trial_intermediate_value(trial._trial_id, 0, 0.75)  # overwrites, as Optuna's storage does
    stored = study.get_trials()[0].intermediate_values
    assert stored[0] == 0.75 and math.isnan(stored[1]) and stored[2] == math.inf and stored[3] == -math.inf
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_intermediate_value(trial._trial_id, 5, 0.1)


def test_the_target_only_share_is_kept_by_the_sampler(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.sampler = make_sampler(SamplerSpec(name="random"), seed=0, target_only_share=0.25, study=study)
    study.enqueue_trial({"source_weight": 0.5})  # a queued trial keeps its own λ
    for _ in range(9):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("source_weight", 0.3, 1.0))
    weights = [t.params["source_weight"] for t in study.get_trials()]
    assert weights[0] == 0.5
    # floor(0.25 × (n + 1)) target-only trials among the n before: trials 3 and 7 are λ = 1, no others
    assert [i for i, w in enumerate(weights) if w == 1.0] == [3, 7]


def test_a_running_worker_runs_a_trial_queued_by_another_process(url):
    # The worker's study has finished a trial before the other process queues one; Optuna's trial cache never
    # reads a queued trial older than the newest finished one, and starting it used to fail with a KeyError.
    study = optuna.create_study(study_name="queued", storage=study_storage(open_storage(url)), direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    optuna.load_study(study_name="queued", storage=url).enqueue_trial({"x": 0.125}, user_attrs={"queued_by": "other"})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    second = optuna.load_study(study_name="queued", storage=url).trials[1]
    assert second.state == TrialState.COMPLETE
    assert second.params == {"x": 0.125} and second.user_attrs == {"queued_by": "other"}
