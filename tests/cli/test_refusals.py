"""Inputs the commands must refuse: each gives one message naming the file or option and what is wrong, exits
non-zero, prints no traceback, and leaves nothing half-written (no study, no database file, no output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.builders import cli, study_from, write_study

BASE = "source: {builtin: 20newsgroups}\ntarget: {builtin: reuters-r8}\n"


def _refused(result, *parts: str, code: int = 1) -> str:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert "Traceback" not in text
    for part in parts:
        assert part in " ".join(text.split()), text  # as one line, however the terminal wrapped it
    return text


def _study_file(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- study files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    (BASE + "n_trials: 2\nn_trials: 50\n", "line 4, column 1: key 'n_trials' is given twice (first on line 3)"),
    (BASE + "n_trials: true\n", "[n_trials] expected a number or text, got a boolean (true)"),
    (BASE + "n_trials: 3\ntimeout: .inf\n", "[timeout] input should be a finite number (got inf)"),
    (BASE + "n_trials: 3\nsearch_space:\n  learning_rate: {low: 1.0e-5, high: .inf}\n",
     "[search_space -> learning_rate -> high] input should be a finite number (got inf)"),
    (BASE + "n_trials: 3\nsearch_space:\n  epochs: {low: 1, high: 1000000000000}\n",
     "[search_space -> epochs -> high] input should be less than or equal to 1000 (got 1000000000000)"),
    (BASE + f"name: {'a' * 600}\nn_trials: 3\n", "[name] string should have at most 128 characters"),
    (BASE + "name: ../x\nn_trials: 3\n", "[name] string should match pattern"),
    # accepted before, then every trial failed (or the deadline overflowed) after the study was stored:
    (BASE + "n_trials: 3\ntraining: {seed: -1}\n", "[training -> seed] input should be greater than or equal to 0"),
    (BASE + "n_trials: 3\ntraining: {seed: 1180591620717411303424}\n",
     "[training -> seed] input should be less than or equal to 4294967295"),
    (BASE + "timeout: 1.0e308\n", "[timeout] input should be less than or equal to 31536000"),
    (BASE + "n_trials: 3\nsearch_space:\n  target_weight: {low: 0.1, high: 1.0, step: 1.0e-300}\n",
     "[search_space -> target_weight -> step] 1e-300 cannot step through 0.1 .. 1.0"),
    (BASE + "n_trials: 3\nsearch_space:\n  target_weight: {low: 0.1, high: 1.0, step: 0.25}\n",
     "[search_space -> target_weight -> step] 0.25 does not divide the range 0.1 .. 1.0 (0.9)"),
    (BASE + "n_trials: 3\nsearch_space:\n  learning_rate: {low: 1.0e-5, high: 1.0e-3, step: 1.0e-12}\n",
     "more than 1,000,000; leave step out for a continuous range"),
])
def test_a_bad_study_file_is_refused_before_anything_is_stored(tmp_path, text, message):
    spec = _study_file(tmp_path, text)
    _refused(cli("validate", str(spec), "--no-data", cwd=tmp_path), message)
    _refused(cli("run", str(spec), cwd=tmp_path), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"], "no storage file, no lock file"


def test_yaml_merge_keys_are_read_as_yaml_safe_load_reads_them(tmp_path):
    import yaml

    text = (BASE + "n_trials: 3\ntraining: &shared {epochs: 2, batch_size: 8}\n"
            "search_space:\n  <<: *shared\n  epochs: 3\n")
    spec = _study_file(tmp_path, text)
    assert yaml.safe_load(text)["search_space"] == {"epochs": 3, "batch_size": 8}
    shown = cli("validate", str(spec), "--no-data", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    resolved = yaml.safe_load(shown.stdout.split(f"{spec} is valid")[0])
    assert resolved["search_space"] == {"epochs": 3, "batch_size": 8} and resolved["training"]["epochs"] == 2


def test_a_model_directory_without_weights_is_refused_before_a_study_is_stored(tmp_path, tiny_model_dir):
    import shutil

    empty = tmp_path / "no-weights"
    shutil.copytree(tiny_model_dir, empty, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    spec = _study_file(tmp_path, f"model: {{id: {empty}}}\n" + BASE + "n_trials: 1\n")
    _refused(cli("run", str(spec), cwd=tmp_path), f"[model -> id] model {empty}: the directory {empty} holds no "
                                                   "weights")
    assert not (tmp_path / "hpo.db").exists()


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    spec = _study_file(tmp_path, BASE + "n_trials: 1\nexported_from:\n" + "\n".join(lines) + "\n")
    _refused(cli("validate", str(spec), "--no-data", cwd=tmp_path),
             "the document expands to more than 100,000 values (aliases repeat what they refer to)")


@pytest.mark.parametrize(("content", "message"), [
    ((BASE + "n_trials: 3\n").encode("utf-16"), "the file is UTF-16 text; save it as UTF-8"),
    ((BASE + "name: café\nn_trials: 3\n").encode("latin-1"), "not UTF-8 text (byte 71 is 0xe9); save it as UTF-8"),
    (b"name: " + b"a" * (10 << 20) + b"\n", "the file is 10,485,767 bytes; a study file is at most 1,048,576"),
])
def test_an_unreadable_study_file_is_one_line(tmp_path, content, message):
    spec = tmp_path / "s.yaml"
    spec.write_bytes(content)
    text = _refused(cli("validate", str(spec), "--no-data", cwd=tmp_path), f"{spec}: 1 problem", message)
    assert len(text) < 1000


def test_max_length_beyond_the_models_positions_is_refused(tmp_path, tiny_model_dir):
    spec = study_from(write_study(tmp_path / "base.yaml", tiny_model_dir), tmp_path / "s.yaml",
                      {"training": {"max_length": 200}})
    _refused(cli("validate", str(spec), "--no-data", cwd=tmp_path),
             "[training -> max_length] 200 exceeds the 128 positions of")


def _tiny_config_dir(tmp_path: Path, kind: str) -> Path:
    from transformers import AlbertConfig, T5Config

    config = {"albert": AlbertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, embedding_size=16),
              "t5": T5Config(vocab_size=100, d_model=32, num_layers=2, num_heads=2, d_ff=64)}[kind]
    path = tmp_path / kind
    config.save_pretrained(path)
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("albert", "(albert) has no separate layer per depth"),
    ("t5", "is an encoder-decoder model (t5)"),
])
def test_a_model_whose_layers_cannot_be_frozen_is_refused_before_any_trial(tmp_path, kind, message):
    spec = write_study(tmp_path / "s.yaml", _tiny_config_dir(tmp_path, kind))
    _refused(cli("validate", str(spec), "--no-data", cwd=tmp_path), "[model -> id]", message)
    _refused(cli("run", str(spec), cwd=tmp_path), message)
    assert not (tmp_path / "hpo.db").exists(), "no study row, not even a database"


# -- data --------------------------------------------------------------------------------------------------------


def _csv(path: Path, labels: list[str]) -> Path:
    pd.DataFrame({"text": [f"note {i} about {label}" for i, label in enumerate(labels)], "label": labels}).to_csv(
        path, index=False)
    return path


def _csv_study(tmp_path: Path, model_dir: Path, target: str, validation_size: int = 8,
               max_samples: str = "") -> Path:
    _csv(tmp_path / "train.csv", ["a", "b"] * 70)
    return _study_file(tmp_path, f"""
name: csv
model: {{id: {model_dir}}}
source: {{path: train.csv}}
target: {{{target}{max_samples}}}
validation_size: {validation_size}
training: {{epochs: 1, batch_size: 8, max_length: 16}}
n_trials: 1
""")


def test_max_samples_and_validation_size_are_checked_against_the_data(tmp_path, tiny_model_dir):
    spec = _csv_study(tmp_path, tiny_model_dir, "path: train.csv", max_samples=", max_samples: 100000")
    _refused(cli("validate", str(spec), cwd=tmp_path),
             f"{spec}: 1 problem [target -> max_samples] 100000 is more than the 140 usable rows of "
             f"{tmp_path / 'train.csv'}")
    spec = _csv_study(tmp_path, tiny_model_dir, "path: train.csv", validation_size=139)
    _refused(cli("run", str(spec), cwd=tmp_path),
             "[validation_size] 139 leaves 1 training and 139 validation documents of the 140",
             "each of its 2 classes needs a training document, so at most 138 can validate")
    assert not (tmp_path / "hpo.db").exists()


@pytest.mark.parametrize(("target", "message"), [
    ("path: train.csv, test_path: test.csv", "test split {dir}/test.csv: labels not in the training data: c"),
    ("path: train.csv", "target {dir}/train.csv: no test_path, so there is no test split to evaluate on"),
])
def test_hpo_train_checks_the_test_split_before_training(tmp_path, tiny_model_dir, target, message):
    _csv(tmp_path / "test.csv", ["a", "b", "c"])
    spec = _csv_study(tmp_path, tiny_model_dir, target)
    _refused(cli("train", str(spec), "--out", "model", cwd=tmp_path), message.format(dir=tmp_path))
    assert not (tmp_path / "model").exists(), "nothing trained, nothing saved"


# -- names that would be paths -------------------------------------------------------------------------------------


def test_a_study_name_is_never_a_path(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for you")
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    # what `.hpo/launches/../../../evil.json` points at, seen from `work`
    (tmp_path / "evil.json").write_text(json.dumps([{"launcher": "local", "pids": [victim.pid],
                                                     "logs": [str(secret)]}]))
    try:
        logs = _refused(cli("logs", "../../../evil", "--worker", "0", cwd=work), "'../../../evil' is not a study name")
        assert "not for you" not in logs
        _refused(cli("stop", "../../../evil", cwd=work), "is not a study name")
        assert victim.poll() is None, "no signal was sent"
        for command in (["status", "../x"], ["report", "../x"], ["export", "../x", "-o", "x.yaml"],
                        ["studies", "delete", "../x", "--yes"], ["transfer-effect", "../x"]):
            _refused(cli(*command, cwd=work), "'../x' is not a study name")
        assert not (work / "hpo.db").exists()
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()


# -- outputs -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory, tiny_model_dir):
    work = tmp_path_factory.mktemp("finished")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=1, epochs=1)
    assert cli("run", str(spec), cwd=work).returncode == 0
    return work


@pytest.mark.parametrize(("output", "reason"), [
    (".", "cannot write: it is a directory; give a file name"),
    ("/sys/hpo-out.yaml", "cannot write: Permission denied"),
    ("tiny.yaml/x.yaml", "cannot write: tiny.yaml is a file, not a directory"),
])
def test_an_output_path_that_cannot_be_written_is_one_line(finished_study, output, reason):
    for command in (["export", "tiny", "-o", output], ["report", "tiny", "-o", output]):
        _refused(cli(*command, cwd=finished_study), f"{output}: {reason}")
    assert not list(finished_study.glob("*.partial"))


def test_read_only_commands_leave_an_empty_directory_empty(tmp_path):
    result = cli("studies", cwd=tmp_path)
    assert result.returncode == 0 and "no studies in sqlite:///hpo.db (the file does not exist)" in result.stdout
    _refused(cli("status", "x", cwd=tmp_path), "no study named 'x': sqlite:///hpo.db does not exist")
    _refused(cli("report", "x", cwd=tmp_path), "no study named 'x'")
    _refused(cli("dashboard", cwd=tmp_path), "nothing to show: sqlite:///hpo.db does not exist")
    assert list(tmp_path.iterdir()) == []


def test_dashboard_refuses_a_port_out_of_range(tmp_path):
    _refused(cli("dashboard", "--port", "99999", cwd=tmp_path),
             "Invalid value for '--port': Input should be less than or equal to 65535", code=2)


def test_studies_delete_takes_storage_after_the_name(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="gone", storage=url)
    deleted = cli("studies", "delete", "gone", "--yes", "--storage", url, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted study 'gone' from {url}" in " ".join(deleted.stdout.split())
    assert optuna.get_all_study_names(url) == []
