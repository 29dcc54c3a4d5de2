"""The study text stored with a study carries absolute paths: a later command, from any directory, reads the files
the study was run on. Here a study file names its model and data relative to itself; a directory elsewhere holds
a decoy of each under the same relative names. The stored spec, an export and a retrain from that other
directory all name (and train on) the study's own files, never the decoys."""

from __future__ import annotations

import json
import shutil

import optuna

from hpo.spec import stored_spec
from tests.builders import cli, hpo_cli


def _data(folder, words: tuple[str, str], rows: int) -> None:
    folder.mkdir(parents=True)
    for split, n in (("train", rows), ("test", rows // 2)):
        lines = ["text,label"] + [f"{words[i % 2]} film {i},{('pos', 'neg')[i % 2]}" for i in range(n)]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")


def test_a_stored_study_reads_its_own_files_from_any_directory(tmp_path, tiny_model_dir, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _data(project / "data", ("good", "bad"), 64)
    _data(elsewhere / "data", ("decoy", "decoy"), 8)  # same relative names, other contents
    shutil.copytree(tiny_model_dir, project / "fx")
    (elsewhere / "fx").mkdir()  # a decoy model folder with no weights: reading it would fail
    (project / "paths.yaml").write_text("""
name: paths
model: {id: fx}
source: {choices: [none]}
target: {path: data/train.csv, test_path: data/test.csv}
validation_size: 16
training: {epochs: 1, batch_size: 16, max_length: 16, evaluations_per_epoch: 1, learning_rate: 1.0e-3,
           precision: fp32}
search_space:
  learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}
n_trials: 1
""")
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    done = hpo_cli("run", "paths.yaml", "--storage", url, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr

    monkeypatch.chdir(elsewhere)
    spec, _ = stored_spec(optuna.load_study(study_name="paths", storage=url))
    assert spec.model.id == str(project / "fx")
    assert spec.target.path == project / "data" / "train.csv"
    assert spec.target.test_path == project / "data" / "test.csv"

    exported = cli("export", "paths", "-o", "best.yaml", "--storage", url, cwd=elsewhere)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    retrained = hpo_cli("train", "best.yaml", "--out", "model", cwd=elsewhere)
    assert retrained.returncode == 0, retrained.stdout + retrained.stderr
    metrics = json.loads((elsewhere / "model" / "metrics.json").read_text())
    assert metrics["test"]["dataset"] == str(project / "data" / "test.csv")
    assert metrics["test"]["n"] == 32  # the project's test split, not the decoy's 4 rows
