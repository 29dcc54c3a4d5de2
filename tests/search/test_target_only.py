"""Target-only trials (λ = 1) keep their share of a study under the shipped study files' own samplers and pruners.

The objective reports every evaluation and asks the pruner at each, as the real one does: Hyperband filters the
study it hands the sampler to the trial's bracket only once trials have reported, so an objective that never
reports would not tell a share counted per bracket from one counted over the whole study.
"""

from __future__ import annotations

import math

import optuna
import pytest

from hpo.search.algorithms import make_pruner, make_sampler
from hpo.search.space import suggest, target_only_share
from hpo.spec import PrunerSpec, SamplerSpec, StudySpec, load_spec
from hpo.storage import open_storage, study_storage
from tests.builders import REPO

SHIPPED = {
    "quickstart: tpe, hyperband rf 2": ("quickstart.yaml", None),
    "r8-from-20ng: tpe, successive halving rf 3 (the defaults)": ("r8-from-20ng.yaml", None),
    "quickstart with hyperband rf 3": ("quickstart.yaml", PrunerSpec(name="hyperband")),
    "quickstart with median": ("quickstart.yaml", PrunerSpec(name="median")),
    "quickstart without pruning": ("quickstart.yaml", PrunerSpec(name="none")),
}


def _shipped(file: str, pruner: PrunerSpec | None) -> StudySpec:
    """The shipped study file's sampler, pruner and space, with a target-only share of 0.25."""
    spec = load_spec(REPO / "studies" / file)
    weight = spec.search_space["target_weight"].model_copy(update={"target_only_share": 0.25})
    update = {"search_space": {**spec.search_space, "target_weight": weight}}
    return spec.model_copy(update={**update, "pruner": pruner} if pruner is not None else update)


def _score(trial: optuna.Trial, spec: StudySpec) -> float:
    """A made-up learning curve that depends on the parameters, so the pruners have something to prune."""
    config = suggest(trial, spec)
    quality = 1.0 - abs(math.log10(config.learning_rate) + 3.8) / 2 - 0.05 * config.freeze_depth
    value = 0.0
    for step in range(1, spec.max_evaluations() + 1):
        value = quality * step / spec.max_evaluations()
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.mark.parametrize("shipped", list(SHIPPED))
def test_trials_3_and_7_of_8_are_target_only_under_every_shipped_pruner(tmp_path, shipped):
    spec = _shipped(*SHIPPED[shipped])
    assert target_only_share(spec) == 0.25  # floor(0.25 × (n + 1)) steps up at n = 3 and n = 7
    study = optuna.create_study(study_name=spec.name, storage=study_storage(open_storage(f"sqlite:///{tmp_path}/s.db")),
                                direction="maximize", pruner=make_pruner(spec.pruner, spec.max_evaluations()))
    study.sampler = make_sampler(spec.sampler, 0, target_only_share(spec), study)
    study.optimize(lambda trial: _score(trial, spec), n_trials=8)

    trials = study.get_trials()
    assert all(len(t.intermediate_values) >= 1 for t in trials)
    if spec.pruner.name != "none":
        assert any(len(t.intermediate_values) >= 2 for t in trials)
    assert [t.number for t in trials if t.params["target_weight"] == 1.0] == [3, 7]
    assert [t.number for t in trials if t.user_attrs.get("target_only")] == [3, 7]


def test_a_queued_trial_keeps_its_own_lambda_and_the_share_holds_around_it():
    study = optuna.create_study(direction="maximize")
    study.sampler = make_sampler(SamplerSpec(name="random"), seed=0, target_only_share=0.25, study=study)
    study.enqueue_trial({"target_weight": 0.5})  # a queued trial keeps its own λ
    for _ in range(9):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("target_weight", 0.3, 1.0))
    weights = [t.params["target_weight"] for t in study.get_trials()]
    assert weights[0] == 0.5
    # floor(0.25 × (n + 1)) target-only trials among the n before: trials 3 and 7 are λ = 1, no others
    assert [i for i, w in enumerate(weights) if w == 1.0] == [3, 7]
