"""`hpo rank-models` end to end on a real study file (R8, subsampled) and tiny local models of two widths: one
record per candidate with its LogME, which is the LogME of that model's mean-pooled features of the target's
training split computed here independently; the table shows every candidate; a candidate that cannot load is one
line and exit 1 while the others still rank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.builders import cli, write_study

TARGET_DOCUMENTS = 120


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory, minilm_tokenizer) -> Path:
    """A randomly initialised 2-layer BERT 48 wide (the shared tiny one is 32 wide), MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=48, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=96, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("tiny-bert-48")
    BertModel(config).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def study(tmp_path, tiny_model_dir) -> Path:
    return write_study(tmp_path / "rank.yaml", tiny_model_dir, target_samples=TARGET_DOCUMENTS)


def _independent_logme(model_dir: Path, study_file: Path) -> float:
    """LogME of the model's mean-pooled last hidden states of the target's training split, one text at a time
    (no padding), with the study's max length 32: nothing here goes through hpo's feature code."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hpo.spec import load_spec
    from hpo.train.data import load_corpus
    from hpo.train.logme import logme

    spec = load_spec(study_file)
    corpus = load_corpus(spec.target, "target", spec.training.seed)
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        features = np.stack([model(**tokenizer(text, truncation=True, max_length=32, return_tensors="pt"))
                             .last_hidden_state[0].mean(0).double().numpy() for text in corpus.texts])
    return logme(features, corpus.labels).score


def test_json_has_one_finite_record_per_candidate_scored_on_the_training_split(study, tiny_model_dir,
                                                                              wide_model_dir, tmp_path):
    done = cli("rank-models", str(study), "--model", str(tiny_model_dir), "--model", str(wide_model_dir),
               "-f", "json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert sorted(r["model"] for r in records) == sorted([str(tiny_model_dir), str(wide_model_dir)])
    assert [r["logme"] for r in records] == sorted((r["logme"] for r in records), reverse=True)  # best first
    assert [r["rank"] for r in records] == [1, 2]
    by_model = {Path(r["model"]): r for r in records}
    for model_dir, width in ((tiny_model_dir, 32), (wide_model_dir, 48)):
        record = by_model[model_dir]
        assert np.isfinite(record["logme"]) and record["seconds"] > 0
        assert (record["pooling"], record["dimensions"], record["documents"]) == ("mean", width, TARGET_DOCUMENTS)
        assert record["logme"] == pytest.approx(_independent_logme(model_dir, study), abs=1e-4)
    assert by_model[wide_model_dir]["parameters"] > by_model[tiny_model_dir]["parameters"] > 0


def test_the_piped_table_shows_every_candidate_with_its_pooling(study, tiny_model_dir, wide_model_dir, tmp_path):
    done = cli("rank-models", str(study), "--model", str(tiny_model_dir), "--model", f"{wide_model_dir}:cls",
               "-f", "table", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"{TARGET_DOCUMENTS} documents" in lines[0] and "max length 32" in lines[0]
    assert lines[1].split() == ["rank", "model", "pooling", "LogME", "dims", "parameters", "seconds"]
    rows = {line.split()[1]: line.split() for line in lines[2:]}
    assert set(rows) == {str(tiny_model_dir), str(wide_model_dir)}
    assert (rows[str(tiny_model_dir)][2], rows[str(tiny_model_dir)][4]) == ("mean", "32")
    assert (rows[str(wide_model_dir)][2], rows[str(wide_model_dir)][4]) == ("cls", "48")


def test_without_a_candidate_the_study_s_own_model_ranks(study, tiny_model_dir, tmp_path):
    done = cli("rank-models", str(study), "-f", "json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert [(r["model"], r["pooling"]) for r in json.loads(done.stdout)] == [(str(tiny_model_dir), "mean")]


def test_a_candidate_that_cannot_load_is_one_line_and_exit_1_while_the_others_rank(study, tiny_model_dir,
                                                                                  tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    done = cli("rank-models", str(study), "--model", "./no-such-model", "--model", str(empty), "--model",
               str(tiny_model_dir), "--model", "bundled:all-MiniLM-L6-v2:max", "-f", "json", cwd=tmp_path)

    assert done.returncode == 1
    assert [r["model"] for r in json.loads(done.stdout)] == [str(tiny_model_dir)]
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 3, done.stderr
    assert errors[0].startswith("error: ./no-such-model: ") and "no such model directory" in errors[0]
    assert errors[1].startswith(f"error: {empty}: ")
    assert errors[2].startswith("error: bundled:all-MiniLM-L6-v2:max: unknown pooling 'max'")
