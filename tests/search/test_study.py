"""End to end through the real `hpo` command on SQLite: a study runs to its budget with every trial recorded;
re-runs continue to a raised budget, stop when finished, and refuse a changed search space; two runs of
one study file sample different parameters."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from hpo.storage import provenance_of
from tests.builders import hpo_cli, study_from, write_study

RECORDED = {"curve", "epochs_run", "train_seconds", "samples_per_second", "trainable_params", "device",
            "precision", "hostname", "pid", "worker_seed"}


def _study(work, name="tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{work / 'hpo.db'}")


def spec_model(spec) -> str:
    import yaml

    return yaml.safe_load(spec.read_text())["model"]["id"]


def _used(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_model_dir):
    work = tmp_path_factory.mktemp("study")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=4)
    return work, spec, hpo_cli("run", str(spec), cwd=work)


def test_study_runs_to_its_budget_and_records_every_trial(first_run):
    work, _, done = first_run
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    for shown in ("best val F1", "complete", "pruned", "wall time", "sqlite:///hpo.db"):
        assert shown in done.stdout
    study = _study(work)
    trials = study.get_trials()
    assert _used(study) == 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for trial in trials:
        assert trial.user_attrs.keys() >= RECORDED, trial.number
        assert [point[0] for point in trial.user_attrs["curve"]] == sorted(trial.intermediate_values)
    for trial in (t for t in trials if t.state == TrialState.COMPLETE):
        curve = trial.user_attrs["curve"]
        assert len(curve) == 4  # 2 epochs × 2 evaluations
        best = max(trial.intermediate_values.values())
        assert trial.value == pytest.approx(best)
        assert trial.intermediate_values[trial.user_attrs["best_evaluation"]] == pytest.approx(best)
        assert trial.user_attrs["epochs_run"] == 2
    # target-only trials keep their share: floor(0.25 × 4) = 1, with λ exactly 1
    target_only = [t for t in trials if t.params["target_weight"] == 1.0]
    assert len(target_only) == math.floor(0.25 * 4)
    provenance = provenance_of(study)
    assert provenance["spec_sha256"] and provenance["packages"]["optuna"] == optuna.__version__
    assert provenance["data"]["target"]["validation"] == 48
    # the dashboard shows a readable line and the hash, not the record as an escaped JSON blob
    shown = study.user_attrs["provenance"]
    assert isinstance(shown, str) and len(shown) < 400 and "reuters-r8" in shown and "{" not in shown
    assert study.user_attrs["spec_sha256"] == provenance["spec_sha256"]
    assert study.user_attrs["n_trials"] == 4
    assert study.metric_names == ["val_f1"]


def test_rerun_continues_to_a_raised_budget_then_stops(first_run):
    work, spec, _ = first_run
    more = hpo_cli("run", str(spec), "--n-trials", "6", cwd=work)
    assert more.returncode == 0, more.stderr
    study = _study(work)
    assert _used(study) == 6
    assert study.user_attrs["n_trials"] == 6
    count = len(study.get_trials())
    again = hpo_cli("run", str(spec), cwd=work)
    assert again.returncode == 0
    assert "is finished: 6 of 6 trials done" in again.stdout
    assert len(_study(work).get_trials()) == count


def test_rerun_with_a_changed_search_space_is_refused(first_run):
    work, spec, _ = first_run
    changed = study_from(spec, work / "changed.yaml", {"search_space": {"learning_rate": {"high": 5.0e-3}}})
    refused = hpo_cli("run", str(changed), "--n-trials", "8", cwd=work)
    assert refused.returncode == 1
    assert "search space: searched -> learning_rate -> high: 0.003 -> 0.005" in refused.stderr
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr


def test_two_runs_sample_different_parameters(first_run, tiny_model_dir):
    work, _, _ = first_run
    other = write_study(work / "tiny-b.yaml", tiny_model_dir, name="tiny-b", n_trials=4)
    done = hpo_cli("run", str(other), cwd=work)
    assert done.returncode == 0, done.stderr
    first = {tuple(sorted(t.params.items())) for t in _study(work).get_trials()}
    second = {tuple(sorted(t.params.items())) for t in _study(work, "tiny-b").get_trials()}
    assert len(second) == 4
    assert not first & second
    listing = hpo_cli("studies", cwd=work)
    assert listing.returncode == 0
    assert "tiny-b" in listing.stdout and "tiny " in listing.stdout


def test_a_changed_model_or_dataset_is_refused_and_force_continues(first_run, tiny_six_layer_dir):
    work, spec, _ = first_run
    other_model = study_from(spec, work / "other-model.yaml", {"model": {"id": str(tiny_six_layer_dir)}})
    refused = hpo_cli("run", str(other_model), "--n-trials", "7", cwd=work)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "study 'tiny' was created with a different setup:" in refused.stderr
    assert f"model: id: '{spec_model(spec)}' -> '{tiny_six_layer_dir}'" in " ".join(refused.stderr.split())
    other_data = study_from(spec, work / "other-data.yaml", {"target": {"max_samples": 200}})
    refused = hpo_cli("run", str(other_data), "--n-trials", "7", cwd=work)
    assert refused.returncode == 1 and "data: target -> train: 112 -> 152" in " ".join(refused.stderr.split())
    before = len(_study(work).get_trials())
    forced = hpo_cli("run", str(other_data), "--n-trials", "7", "--force", cwd=work)
    assert forced.returncode == 0, forced.stderr
    assert "--force: continuing a study whose setup changed" in forced.stdout
    study = _study(work)
    assert len(study.get_trials()) > before and _used(study) == 7
    assert provenance_of(study, forced=True)["data"]["target"]["train"] == 152


def test_no_trial_starts_after_the_deadline(tmp_path, tiny_model_dir):
    from datetime import datetime, timedelta

    spec = write_study(tmp_path / "timed.yaml", tiny_model_dir, name="timed", n_trials=1000, extra="timeout: 4")
    done = hpo_cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = _study(tmp_path, "timed")
    deadline = datetime.fromisoformat(study.user_attrs["deadline"])
    created = datetime.fromisoformat(study.user_attrs["created_at"])
    assert timedelta(seconds=3) <= deadline - created <= timedelta(seconds=5)
    trials = study.get_trials()
    assert 1 <= len(trials) < 1000
    assert all(t.datetime_start.astimezone() < deadline for t in trials), "a trial started after the deadline"
    again = hpo_cli("run", str(spec), cwd=tmp_path)
    assert again.returncode == 0 and "passed its deadline" in again.stdout and "nothing to run" in again.stdout
    assert len(_study(tmp_path, "timed").get_trials()) == len(trials)
