"""What `hpo predict` and `hpo evaluate` are given may be hostile or odd: a model directory with an `auto_map`
planted in it (never followed, never asks "run custom code?", even with a terminal on stdin), a model trained on a
GPU used on this CPU-only machine, cells that are not text, bytes that are not UTF-8. Each through the real CLI."""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.builders import cli, hpo_cli

EVIL = """
from pathlib import Path
Path({marker!r}).write_text("ran")  # importing this file is running the directory's code
Config = Model = Tokenizer = None
"""


def _hpo_in_a_terminal(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `hpo` with a pseudo-terminal on stdin, as in a user's shell: transformers' "run custom code?"
    would wait there for an answer (15 s) instead of failing at once on a closed stdin."""
    controller, terminal = pty.openpty()
    try:
        return subprocess.run([sys.executable, "-m", "hpo", *args], cwd=cwd, stdin=terminal, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    finally:
        os.close(terminal)
        os.close(controller)


def _plant(model_dir: Path, marker: Path, *, tokenizer_class: bool = True) -> None:
    """An `auto_map` in config.json (with a model type transformers does not know) and in tokenizer_config.json,
    pointing at a file that leaves `marker` behind when imported."""
    (model_dir / "evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((model_dir / "config.json").read_text())
    config |= {"model_type": "planted", "auto_map": {"AutoConfig": "evil.Config",
                                                     "AutoModelForSequenceClassification": "evil.Model"}}
    (model_dir / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((model_dir / "tokenizer_config.json").read_text())
    tokenizer["auto_map"] = {"AutoTokenizer": ["evil.Tokenizer", "evil.Tokenizer"]}
    if not tokenizer_class:
        tokenizer.pop("tokenizer_class")
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, save_tiny):
    return save_tiny(tmp_path_factory.mktemp("untrusted"))


def test_predict_and_evaluate_never_run_code_planted_in_the_model_directory(saved, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(saved["dir"], model)
    _plant(model, tmp_path / "marker")
    (tmp_path / "texts.txt").write_text("Crude oil prices rose.\nThe bank cut its rates.\n")
    clean = hpo_cli("predict", str(saved["dir"]), "texts.txt", cwd=tmp_path, timeout=300)
    assert clean.returncode == 0, clean.stderr

    runs = {}
    for args in (("predict", str(model), "texts.txt"), ("evaluate", str(model))):
        done = runs[args[0]] = _hpo_in_a_terminal(*args, cwd=tmp_path)
        shown = done.stdout + done.stderr
        assert "[y/N]" not in shown and "custom code" not in shown, shown[-3000:]
        assert done.returncode == 0, shown[-3000:]
        assert not (tmp_path / "marker").exists(), f"{args[0]} ran the planted code"
    assert runs["predict"].stdout == clean.stdout  # the model and tokenizer as saved, not the planted classes
    assert json.loads((model / "test_metrics.json").read_text())["n"] == 2189


def test_a_tokenizer_that_exists_only_as_planted_code_is_refused_in_one_line(saved, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(saved["dir"], model)
    _plant(model, tmp_path / "marker", tokenizer_class=False)
    (tmp_path / "texts.txt").write_text("Crude oil prices rose.\n")
    done = _hpo_in_a_terminal("predict", str(model), "texts.txt", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[y/N]" not in done.stdout + done.stderr and not (tmp_path / "marker").exists()
    assert done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr
    assert "tokenizer_config.json: asks for a tokenizer defined by code in the directory (auto_map)" in \
        " ".join(done.stderr.split())


def test_a_model_trained_on_a_gpu_predicts_on_a_machine_without_one(save_tiny, saved, tmp_path):
    on_gpu = save_tiny(tmp_path, device="cuda")
    assert json.loads((on_gpu["dir"] / "hpo_classifier.json").read_text())["config"]["device"] == "cuda"
    (tmp_path / "texts.txt").write_text("Crude oil prices rose.\nThe bank cut its rates.\n")
    done = hpo_cli("predict", str(on_gpu["dir"]), "texts.txt", "-o", "out.csv", cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    same = hpo_cli("predict", str(saved["dir"]), "texts.txt", "-o", "same.csv", cwd=tmp_path, timeout=300)
    assert same.returncode == 0, same.stderr
    # the same weights (same seed), wherever they trained
    assert pd.read_csv(tmp_path / "out.csv").equals(pd.read_csv(tmp_path / "same.csv"))


def test_predict_refuses_cells_that_are_not_text_and_labels_numbers(saved, tmp_path):
    records = [{"id": 1, "text": "Crude oil prices rose."}, {"id": 2, "text": 2024},
               {"id": 3, "text": ["a", "list"]}, {"id": 4, "text": {"a": "mapping"}}]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pd.DataFrame({"text": [["oil", "prices"], ["bank"]]}).to_parquet(tmp_path / "lists.parquet")
    pd.DataFrame({"text": [b"oil prices", b"bank"]}).to_parquet(tmp_path / "bytes.parquet")
    pd.DataFrame({"text": ["oil", True]}, dtype=object).to_json(tmp_path / "flags.json", orient="records")
    cases = {  # file: the first bad row and what it holds, then what follows
        "mixed.jsonl": "row 3 (counting from 1) holds a list, not text (and 1 more row)",
        "lists.parquet": "row 1 (counting from 1) holds a list, not text (and 1 more row)",
        "bytes.parquet": "row 1 (counting from 1) holds bytes, not text (and 1 more row)",
        "flags.json": "row 2 (counting from 1) holds a boolean, not text; hpo predict labels texts",
    }
    for name, said in cases.items():
        message = f"{name}: column 'text', {said}"
        done = cli("predict", str(saved["dir"]), name, "-o", "out.csv", cwd=tmp_path)
        assert done.returncode == 1 and message in " ".join(done.stderr.split()), (name, done.stderr)
        assert "Traceback" not in done.stderr and not (tmp_path / "out.csv").exists()

    numbers = [{"id": 1, "text": "Crude oil prices rose."}, {"id": 2, "text": 2024}, {"id": 3, "text": 3.5}]
    (tmp_path / "numbers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in numbers))
    done = cli("predict", str(saved["dir"]), "numbers.jsonl", "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    labelled = pd.read_json(tmp_path / "out.jsonl", lines=True)
    (tmp_path / "as-text.txt").write_text("Crude oil prices rose.\n2024\n3.5\n")
    as_text = cli("predict", str(saved["dir"]), "as-text.txt", "-o", "as-text.csv", cwd=tmp_path)
    assert as_text.returncode == 0, as_text.stderr
    assert labelled["label"].tolist() == pd.read_csv(tmp_path / "as-text.csv")["label"].tolist()


def test_bytes_that_are_not_utf8_on_standard_input_are_one_line(saved, tmp_path):
    command = [sys.executable, "-m", "hpo", "predict", str(saved["dir"]), "-"]
    done = subprocess.run(command, input=b"oil prices\n\xff\xfe bank\n", capture_output=True, cwd=tmp_path,
                          timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b"", stderr
    assert stderr.strip().splitlines() == ["error: standard input: not UTF-8 text (byte 11 is 0xff); hpo predict "
                                           "reads UTF-8 (convert with iconv -t utf-8)"]
    fine = subprocess.run(command, input="oil prices\nbank rates ü\n".encode(), capture_output=True, cwd=tmp_path,
                          timeout=300)
    assert fine.returncode == 0, fine.stderr.decode()
    assert pd.read_csv(io.StringIO(fine.stdout.decode()))["text"].tolist() == ["oil prices", "bank rates ü"]
