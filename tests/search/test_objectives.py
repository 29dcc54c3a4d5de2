"""The metric a study searches (`objective:` in the study file): real tiny studies through `run_study`, read back
from their storage and through the commands' own functions; the direction follows the metric."""

from __future__ import annotations

import io
import re

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from hpo.errors import HpoError, StudyMismatchError
from hpo.results.status import study_status
from hpo.results.trials import best_trials
from hpo.search.progress import summary_table
from hpo.search.worker import run_study
from hpo.spec import load_study_file, spec_from_text
from tests.builders import write_study


def _run(tmp_path, model_dir, objective: str | None, name: str = "tiny", n_trials: int = 4) -> tuple[optuna.Study,
                                                                                                        str, str]:
    """A 4-trial study (median pruner) searched on `objective`; (the study, what `hpo run` printed, its URL)."""
    extra = f"objective: {objective}" if objective else ""
    path = write_study(tmp_path / f"{name}-{objective}.yaml", model_dir, name=name, n_trials=n_trials, epochs=1,
                       extra=extra)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    spec, text = load_study_file(path)
    printed = io.StringIO()
    run_study(spec, text, source=str(path), storage=url, console=Console(file=printed, width=200))
    return optuna.load_study(study_name=name, storage=url), printed.getvalue(), url


def _rendered(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(renderable)
    return out.getvalue()


def test_a_loss_objective_is_minimised_reported_pruned_on_and_shown(tmp_path, tiny_model_dir):
    study, printed, url = _run(tmp_path, tiny_model_dir, "loss")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and study.metric_names == ["val_loss"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete
    for trial in complete:  # the value is the lowest loss the trial reached, and a cross-entropy is positive
        assert trial.value == pytest.approx(min(trial.intermediate_values.values()))
        assert trial.value > 0 and [row[2] for row in trial.user_attrs["curve"]] == pytest.approx(
            [trial.intermediate_values[n] for n in sorted(trial.intermediate_values)], abs=1e-5)
    assert study.best_value == min(t.value for t in complete)
    assert "val loss" in printed and "val F1" not in printed
    closing = _rendered(summary_table(study, storage=url, wall_seconds=1.0, budget=4))
    assert re.search(rf"best val loss\W+{study.best_value:.4f}", closing), closing
    table = best_trials("tiny", url, top=2)
    assert "val loss" in table.splitlines()[1] and f"{study.best_value:.4f}" in table.splitlines()[2]
    status = _rendered(study_status("tiny", url))
    assert re.search(rf"best val loss\W+{study.best_value:.4f}", status), status


def test_an_accuracy_objective_reports_the_accuracy_of_the_step_it_keeps(tmp_path, tiny_model_dir):
    study, printed, _ = _run(tmp_path, tiny_model_dir, "accuracy")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.metric_names == ["val_accuracy"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete
    for trial in complete:
        assert trial.value == pytest.approx(max(trial.intermediate_values.values()))
        assert trial.value == pytest.approx(trial.user_attrs["best_accuracy"], abs=1e-5)
    assert "val accuracy" in printed


def test_the_default_objective_is_f1_and_its_value_is_the_trials_best_f1(tmp_path, tiny_model_dir):
    study, _, _ = _run(tmp_path, tiny_model_dir, None, n_trials=2)
    assert study.metric_names == ["val_f1"]
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert trial.value == pytest.approx(trial.user_attrs["best_f1"], abs=1e-5)


def test_a_study_keeps_the_objective_it_was_created_with(tmp_path, tiny_model_dir):
    _run(tmp_path, tiny_model_dir, None, n_trials=1)
    with pytest.raises(StudyMismatchError, match=r"searched on val_f1.*'mcc' is val_mcc"):
        _run(tmp_path, tiny_model_dir, "mcc", n_trials=2)


def test_the_study_file_names_the_objective_and_the_direction_follows_it(tmp_path, tiny_model_dir):
    base = write_study(tmp_path / "s.yaml", tiny_model_dir).read_text()
    assert spec_from_text(base + "objective: loss\n", source="s.yaml").direction == "minimize"
    # Study texts stored by earlier versions say `direction: maximize`, which F1 implies.
    assert spec_from_text(base + "direction: maximize\n", source="s.yaml").objective == "f1"
    with pytest.raises(HpoError, match=r"direction.*contradicts objective 'loss'"):
        spec_from_text(base + "objective: loss\ndirection: maximize\n", source="s.yaml")
    with pytest.raises(HpoError, match=r"objective.*'f1', 'accuracy', 'mcc', 'auroc' or 'loss'"):
        spec_from_text(base + "objective: auc\n", source="s.yaml")
