"""`hpo train` through the real CLI, its output read as a pipe reads it: `--train-on train+validation` trains on
both splits for ceil(best_epoch) epochs and keeps the last weights; off a terminal it prints one progress line per
evaluation and its summary, and no library's own progress bar."""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml

from tests.builders import hpo_cli, study_from, write_study


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    """A real 2-trial study (2 epochs, 2 evaluations an epoch) and its best trial exported to best.yaml."""
    work = tmp_path_factory.mktemp("train-on")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=2, pruner="none")
    for args in (("run", str(spec)), ("export", "tiny", "-o", "best.yaml")):
        done = hpo_cli(*args, cwd=work)
        assert done.returncode == 0, done.stderr[-3000:]
    return work


def _steps(stdout: str) -> list[tuple[int, int]]:
    return [(int(done), int(total)) for done, total in re.findall(r"\bstep (\d+)/(\d+)\b", stdout)]


def test_train_on_train_and_validation_fits_both_for_the_peak_epochs_and_keeps_the_last_weights(exported):
    # The trial peaked half-way through its second epoch of three: ceil(1.5) = 2 epochs, not the file's 3.
    study_from(exported / "best.yaml", exported / "peaked.yaml",
               {"training": {"epochs": 3}, "exported_from": {"best_epoch": 1.5}})
    done = hpo_cli("train", "peaked.yaml", "--out", "both", "--train-on", "train+validation", cwd=exported)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((exported / "both" / "metrics.json").read_text())
    assert metrics["trained_on"] == "train+validation"
    assert metrics["config"]["epochs"] == 2
    assert [row[1] for row in metrics["curve"]] == [0.5, 1.0, 1.5, 2.0], "2 epochs run, 2 evaluations each"
    assert metrics["validation"] is None, "no step picked by validation: the last weights are kept"
    # The validation documents were trained on: an epoch takes (train + validation) / batch steps, where the
    # trial's took train / batch (112 / 16 = 7 here).
    sizes = yaml.safe_load((exported / "best.yaml").read_text())["exported_from"]["data"]["target"]
    per_epoch = math.ceil((sizes["train"] + sizes["validation"]) / 16)
    assert per_epoch > math.ceil(sizes["train"] / 16)
    assert _steps(done.stdout)[-1] == (2 * per_epoch, 2 * per_epoch), done.stdout


def test_train_prints_its_progress_and_summary_and_no_library_bars_off_a_terminal(exported):
    done = hpo_cli("train", "best.yaml", "--out", "model", cwd=exported)
    assert done.returncode == 0, done.stderr[-3000:]
    # one plain line per evaluation (2 epochs × 2), the last at the last step, then the summary
    steps = _steps(done.stdout)
    assert len(steps) == 4 and steps[-1][0] == steps[-1][1], done.stdout
    assert "best validation F1" in done.stdout and "saved to model" in done.stdout
    # transformers 5 draws its own bars while it loads and saves weights; none of them reaches the user
    for shown in (done.stdout, done.stderr):
        assert "Loading weights" not in shown and "Writing model shards" not in shown
        assert "it/s]" not in shown, "a tqdm bar"
