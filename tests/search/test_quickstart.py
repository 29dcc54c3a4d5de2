"""The shipped quickstart study as a user runs it: its own sampler, pruner, budget and space, with only the model,
the data sizes and the epochs made tiny. Every quarter of the trials is target only (λ = 1), at trials 3 and 7,
and the report's transfer panel shows both groups."""

from __future__ import annotations

import optuna
import pytest

from tests.builders import REPO, figure_data, hpo_cli, study_from


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory, tiny_six_layer_dir):
    work = tmp_path_factory.mktemp("quickstart")
    spec = study_from(REPO / "studies" / "quickstart.yaml", work / "quickstart.yaml", {
        "model": str(tiny_six_layer_dir),
        "source": {"max_samples": 96}, "target": {"max_samples": 160},
        "training": {"epochs": 2},
    })
    done = hpo_cli("run", str(spec), cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, optuna.load_study(study_name="quickstart", storage=f"sqlite:///{work / 'hpo.db'}")


def test_trials_3_and_7_are_target_only(quickstart):
    _, study = quickstart
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert [t.number for t in trials if t.params["target_weight"] == 1.0] == [3, 7]
    assert [t.number for t in trials if t.user_attrs.get("target_only")] == [3, 7]


def test_the_reports_transfer_panel_shows_transfer_and_target_only_trials(quickstart):
    work, _ = quickstart
    done = hpo_cli("report", "quickstart", "-o", "report.html", cwd=work)
    assert done.returncode == 0, done.stderr
    traces = figure_data((work / "report.html").read_text(), "fig-transfer")
    by_group: dict[str, list[str]] = {}
    for trace in traces:
        by_group.setdefault(trace["name"].split(",")[0], []).extend(trace["text"])
    assert sorted(by_group["target only (λ = 1)"]) == ["trial 3", "trial 7"]
    assert len(by_group["transfer (λ < 1)"]) == 6
