"""`hpo evaluate DIR` scores the test file of the study the model was trained from, whatever directory it runs in:
a relative `test_path` in the study file is saved absolute. A model saved by an older version, whose study.yaml
holds a relative path, is refused in one line instead of scoring whatever file of that name the working directory
has."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from tests.builders import hpo_cli


def _r8_rows(split: str, rows: slice, labels: set[str] | None = None) -> pd.DataFrame:
    from hpo.train.corpora import builtin_file, read_tab

    texts, classes = read_tab(builtin_file("reuters-r8", split))
    frame = pd.DataFrame({"text": [t.strip() for t in texts], "label": [c.strip() for c in classes]})
    if labels is not None:
        frame = frame[frame["label"].isin(labels)]
    return frame.iloc[rows]


def test_evaluate_scores_the_study_s_own_test_file_from_any_directory(tmp_path, tiny_model_dir):
    trained_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    trained_in.mkdir()
    elsewhere.mkdir()
    train = _r8_rows("train", slice(0, 240))
    train.to_csv(trained_in / "train.csv", index=False)
    _r8_rows("test", slice(0, 60), set(train["label"])).to_csv(trained_in / "test.csv", index=False)
    _r8_rows("test", slice(-25, None), set(train["label"])).to_csv(elsewhere / "test.csv", index=False)  # a decoy
    (trained_in / "paths.yaml").write_text(yaml.safe_dump({
        "name": "paths", "model": {"id": str(tiny_model_dir)},
        "source": {"builtin": "20newsgroups", "max_samples": 96},
        "target": {"path": "train.csv", "test_path": "test.csv"},  # relative to the study file
        "validation_size": 40,
        "training": {"epochs": 1, "batch_size": 16, "max_length": 32, "evaluations_per_epoch": 1,
                     "learning_rate": 1.0e-3, "target_weight": 1.0},
        "n_trials": 1,
    }))
    done = hpo_cli("train", "paths.yaml", "--out", "m", cwd=trained_in)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((trained_in / "m" / "metrics.json").read_text())["test"]
    assert trained["n"] == 60 and trained["dataset"] == str(trained_in / "test.csv")

    done = hpo_cli("evaluate", str(trained_in / "m"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((trained_in / "m" / "test_metrics.json").read_text()) == trained  # the study's file, again

    # a model directory from an older version: its study.yaml's test_path relative to a directory it never recorded
    saved = trained_in / "m" / "study.yaml"
    study = yaml.safe_load(saved.read_text())
    study["target"]["test_path"] = "test.csv"
    saved.write_text(yaml.safe_dump(study, sort_keys=False))
    before = (trained_in / "m" / "test_metrics.json").read_text()
    done = hpo_cli("evaluate", str(trained_in / "m"), cwd=elsewhere)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"error: {saved}: target -> test_path is a relative path (test.csv), saved by an older hpo train that did "
        "not record what it is relative to; write the test file's absolute path there"]
    assert (trained_in / "m" / "test_metrics.json").read_text() == before  # nothing overwritten
