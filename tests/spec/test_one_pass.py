"""A study file's paths are relative to the study file, wherever the command runs; `hpo validate` reports every
problem in one pass (fields, model, data), prints the paths resolved, and warns what a missing test split rules
out; a target may bring its own validation split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from tests.builders import cli, hpo_cli


def _csv(path: Path, labels: list[str], prefix: str = "note") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": [f"{prefix} {i} about {label}" for i, label in enumerate(labels)],
                  "label": labels}).to_csv(path, index=False)
    return path


def _problems(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("[")]


def test_eleven_mistakes_are_reported_in_one_run(tmp_path, tiny_model_dir):
    _csv(tmp_path / "data" / "train.csv", ["a", "b"] * 20)
    study = tmp_path / "study.yaml"
    study.write_text(f"""
name: many
model: {{id: {tiny_model_dir}}}
source: {{path: data/missing.csv}}
target: {{path: data/train.csv, max_samples: 500}}
validation_size: 1.5
training: {{epochs: 0, batch_size: 16, max_length: 4096, seed: -3, warmup_ratio: 2}}
search_space:
  learning_rate: {{low: 1.0e-3, high: 1.0e-5}}
  freeze_depth: {{low: 0, high: 9}}
  target_weight: {{low: 0.2, high: 0.9, target_only_share: 0.25}}
  colour: {{choices: [red]}}
sampler: {{name: tpe}}
pruner: {{name: hyperband, reduction_factor: 1}}
""")
    done = cli("validate", str(study), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    problems = _problems(done.stderr)
    expected = {
        "[validation_size]", "[training -> epochs]", "[training -> seed]", "[training -> warmup_ratio]",
        "[pruner -> reduction_factor]", "[search_space -> learning_rate]", "[search_space -> colour]",
        "[search_space -> target_weight -> target_only_share]", "give n_trials, timeout or both",
        "[search_space -> freeze_depth] 9 exceeds the 2 layers", "[training -> max_length] 4096 exceeds the 128",
        "[source] ", "[target -> max_samples] 500 is more than the 40 usable rows",
    }
    missing = [part for part in expected if not any(part in line for line in problems)
               and part not in done.stderr]
    assert not missing, done.stderr
    assert f"{study}: {len(problems) + 1} problems" in done.stderr  # the budget line has no field path


def test_every_path_is_relative_to_the_study_file_and_printed_resolved(tmp_path, tiny_model_dir):
    project = tmp_path / "project"
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")
    _csv(project / "data" / "train.csv", ["a", "b"] * 40)
    _csv(project / "data" / "test.csv", ["a", "b"] * 5)
    (project / "studies").mkdir()
    study = project / "studies" / "s.yaml"
    study.write_text("""
model: ../models/tiny
source: {path: ../data/train.csv}
target: {path: ../data/train.csv, test_path: ../data/test.csv}
validation_size: 8
training: {epochs: 1, batch_size: 8, max_length: 16}
n_trials: 1
""")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = hpo_cli("validate", str(study), cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    resolved = yaml.safe_load(done.stdout.split(f"{study} is valid")[0].split("\ndata:")[0])
    assert resolved["model"]["id"] == str(project / "models" / "tiny")
    assert resolved["target"]["test_path"] == str(project / "data" / "test.csv")
    assert resolved["source"]["path"] == str(project / "data" / "train.csv")
    assert "warning" not in done.stdout  # it has a test split

    missing = project / "studies" / "missing-model.yaml"
    missing.write_text(study.read_text().replace("../models/tiny", "../models/nothing-here"))
    refused = cli("validate", str(missing), "--no-data", cwd=elsewhere)
    assert refused.returncode == 1
    assert f"[model -> id] {project / 'models' / 'nothing-here'}: no such model directory" in \
        " ".join(refused.stderr.split())
    assert "Repo id" not in refused.stderr


def test_a_target_without_a_test_split_is_valid_with_a_warning(tmp_path, tiny_model_dir):
    _csv(tmp_path / "train.csv", ["a", "b"] * 40)
    study = tmp_path / "s.yaml"
    study.write_text(f"model: {tiny_model_dir}\nsource: {{path: train.csv}}\ntarget: {{path: train.csv}}\n"
                     "validation_size: 8\nn_trials: 1\n")
    done = hpo_cli("validate", str(study), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "warning: target" in text and "has no test split (test_path)" in text
    assert "`hpo train`, `hpo evaluate` and `hpo transfer-effect` need one" in text


def test_a_target_brings_its_own_validation_split(tmp_path, tiny_model_dir):
    _csv(tmp_path / "train.csv", ["a", "b"] * 30)
    _csv(tmp_path / "val.csv", ["a", "b"] * 6, prefix="held out")
    study = tmp_path / "s.yaml"
    study.write_text(f"model: {tiny_model_dir}\nsource: {{path: train.csv}}\n"
                     "target: {path: train.csv, validation_path: val.csv}\nn_trials: 1\n")
    from hpo.workbench import check_study_file

    checked = check_study_file(study)
    assert len(checked.data.target_train) == 60 and len(checked.data.target_val) == 12
    assert all(text.startswith("held out") for text in checked.data.target_val.texts)

    both = tmp_path / "both.yaml"
    both.write_text(study.read_text() + "validation_size: 0.2\n")
    refused = cli("validate", str(both), cwd=tmp_path)
    assert refused.returncode == 1 and "[validation_size] the target brings its own validation split" in \
        " ".join(refused.stderr.split())
    _csv(tmp_path / "val.csv", ["a", "c"] * 6)
    unknown = cli("validate", str(study), cwd=tmp_path)
    assert unknown.returncode == 1 and "labels not in the training data: c" in unknown.stderr
