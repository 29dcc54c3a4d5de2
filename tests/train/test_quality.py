"""Learning quality, the one place the real bundled MiniLM is fine-tuned: one fixed quickstart trial on real R8
reaches the validation macro-F1 that the quickstart's best of 8 trials (0.96-0.99) stands on."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.search.algorithms import make_pruner
from hpo.search.objective import Objective, TrialFailed
from hpo.spec import load_spec
from hpo.workbench import open_workbench
from tests.builders import REPO, SilentReporter


@pytest.mark.slow
@pytest.mark.parametrize("target_weight", [1.0, 0.6])
def test_a_fixed_quickstart_trial_reaches_095_macro_f1(target_weight):
    spec = load_spec(REPO / "studies" / "quickstart.yaml")
    # learning quality is the point here, not the search's per-trial time guard (a loaded CI machine may be slow)
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"time_limit_s": None})})
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec.pruner, spec.max_evaluations()))
    study.enqueue_trial({"learning_rate": 3e-4, "target_weight": target_weight, "freeze_depth": 2,
                         "l1": 0.0, "l2": 0.0})
    objective = Objective(spec, open_workbench(spec, "quickstart"), SilentReporter(), 0)
    study.optimize(objective, n_trials=1, catch=(TrialFailed,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("failure_reason")
    # Measured (seed 0, learning rate 3e-4, freeze depth 2, 3 epochs; 2-core AMD EPYC, bf16 and fp32 alike): λ = 1
    # 0.978 (accuracy 0.977), λ = 0.6 0.987 (accuracy 0.984). The 128 validation documents move macro-F1 in steps
    # of about 0.01, so 0.95 leaves one fixed trial room for another machine's arithmetic (2-3 documents) and
    # still fails a regression that costs a few points, which 0.80 let through.
    assert trial.value >= 0.95, trial.user_attrs["curve"]
    assert trial.user_attrs["best_accuracy"] >= 0.95
