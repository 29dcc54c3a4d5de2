"""A decoder trained with `last` pooling is saved as transformers' own `*ForSequenceClassification`: in a fresh
process that imports nothing of hpo, `pipeline("text-classification")` gives the trained model's probabilities,
padded on the right or (rotary families) the left; a LoRA fine-tune also saves its adapter, which peft loads back to
the trained logits; a decoder with `mean` pooling keeps the project's own class. Each model is trained by
`retrain` (what `hpo train` runs) on tiny random decoders with real byte-level BPE tokenizers."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.train.decoders import byte_bpe, r8_texts, saved_model

MAX_LENGTH = 32
TOKENIZER_STYLE = {"llama": "llama", "qwen2": "gpt2", "gpt2": "gpt2", "mistral": "llama", "phi3": "llama"}

# What a user without transfer-hpo runs: plain transformers, right padding as saved, then left padding.
PIPELINE = """
import json, sys
from transformers import pipeline

texts = json.load(sys.stdin)
classify = pipeline("text-classification", model=sys.argv[1], top_k=None, device="cpu")
out = {"padding_side": classify.tokenizer.padding_side, "alone": classify(texts, truncation=True, batch_size=1),
       "right": classify(texts, truncation=True, batch_size=8)}
classify.tokenizer.padding_side = "left"
out["left"] = classify(texts, truncation=True, batch_size=8)
out["hpo_imported"] = any(name == "hpo" or name.startswith("hpo.") for name in sys.modules)
json.dump(out, sys.stdout)
"""


def _texts() -> list[str]:
    """R8 test texts, several longer than the max length (truncated), and two short ones: real padding."""
    from hpo.train.corpora import builtin_file, read_tab

    texts, _ = read_tab(builtin_file("reuters-r8", "test"))
    return [t.strip() for t in texts[:10]] + ["short", "oil prices rose"]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Any]:
    corpus = r8_texts()
    return {style: byte_bpe(corpus, style=style) for style in ("llama", "gpt2")}


def _study(path: Path, model_dir: Path, pooling: str, adapter: str) -> Path:
    """A study file with every field fixed (what `hpo export` writes), a small source task beside the target; a
    learning rate high enough that the head moves far from its initialisation in one epoch."""
    lora = ", lora_r: 4, freeze_depth: 1" if adapter == "lora" else ""
    path.write_text(f"""
name: decoder-{path.stem}
model: {{id: {model_dir}, pooling: {pooling}}}
source: {{builtin: 20newsgroups, max_samples: 48}}
target: {{builtin: reuters-r8, max_samples: 96}}
validation_size: 32
training: {{epochs: 1, batch_size: 16, max_length: {MAX_LENGTH}, evaluations_per_epoch: 1, learning_rate: 1.0e-2,
            adapter: {adapter}{lora}}}
n_trials: 1
""")
    return path


@pytest.fixture(scope="module")
def train(tmp_path_factory, tokenizers) -> Iterator[Any]:
    """`train(family, pooling, adapter)`: `retrain` of a tiny `family` decoder; returns the directory it saved, the
    trained model as it was before saving (a copy: saving merges LoRA), its tokenizer, pad id and the probabilities
    it gives each of `_texts()` alone, truncated to the max length."""
    import hpo.classifier.saved as saved_module
    from hpo.classifier.retrain import retrain

    real_save = saved_module.save_classifier
    caught: dict[str, Any] = {}

    def save_and_catch(model, tokenizer, directory, **kwargs):  # the trained model, caught on its way to disk
        caught.update(model=copy.deepcopy(model).eval(), tokenizer=tokenizer, expected=_probabilities(model, tokenizer))
        return real_save(model, tokenizer, directory, **kwargs)

    done: dict[tuple[str, str, str], dict[str, Any]] = {}

    def run(family: str, pooling: str, adapter: str) -> dict[str, Any]:
        if (family, pooling, adapter) not in done:  # each model trained once, for every test that reads it
            root = tmp_path_factory.mktemp(f"{family}-{pooling}-{adapter}")
            base = saved_model(root / "base", family, tokenizers[TOKENIZER_STYLE[family]])
            _pad_left(base / "tokenizer_config.json")
            caught.clear()
            retrain(_study(root / "fixed.yaml", base, pooling, adapter), root / "model")
            done[family, pooling, adapter] = {**caught, "dir": root / "model", "base": base}
        return done[family, pooling, adapter]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(saved_module, "save_classifier", save_and_catch)
        yield run


def _pad_left(path: Path) -> None:
    """A tokenizer that pads on the left, as many hub decoders ship: the saved one must pad as training did."""
    path.write_text(json.dumps({**json.loads(path.read_text()), "padding_side": "left"}))


def _probabilities(model, tokenizer) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        rows = [tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt") for text in _texts()]
        return torch.cat([model(row["input_ids"], row["attention_mask"]) for row in rows]).softmax(-1).numpy()


def _fresh_pipeline(directory: Path, cwd: Path) -> dict[str, Any]:
    """PIPELINE in a new interpreter that cannot import hpo from this checkout (no PYTHONPATH, another cwd)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", PIPELINE, str(directory)], input=json.dumps(_texts()),
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _table(rows: list[list[dict]], labels: list[str]) -> np.ndarray:
    return np.array([[{r["label"]: r["score"] for r in row}[name] for name in labels] for row in rows])


@pytest.mark.parametrize(("family", "adapter", "stock"), [
    ("llama", "lora", "LlamaForSequenceClassification"),
    ("qwen2", "full", "Qwen2ForSequenceClassification"),
    ("gpt2", "lora", "GPT2ForSequenceClassification"),
])
def test_a_last_pooled_decoder_is_saved_as_the_stock_class_the_plain_pipeline_loads(train, tmp_path, family,
                                                                                     adapter, stock):
    trained = train(family, "last", adapter)
    config = json.loads((trained["dir"] / "config.json").read_text())
    assert config["architectures"] == [stock] and config["model_type"] == family
    assert "auto_map" not in config and not (trained["dir"] / "modeling_transfer_hpo.py").exists()
    assert config["pad_token_id"] == trained["model"].pad_id is not None
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert labels == list(json.loads((trained["dir"] / "hpo_classifier.json").read_text())["label_names"])

    out = _fresh_pipeline(trained["dir"], tmp_path)
    assert not out["hpo_imported"]
    expected = trained["expected"]
    assert np.ptp(expected, axis=0).max() > 1e-3, "the texts get different probabilities: a trained head"
    assert out["padding_side"] == "right"  # as trained
    for padded in ("alone", "right"):
        np.testing.assert_allclose(_table(out[padded], labels), expected, atol=1e-5, rtol=0, err_msg=padded)
    left = _table(out["left"], labels)
    if family == "gpt2":  # absolute positions count from the left edge, padding included: why right is saved
        assert np.abs(left - expected).max() > 1e-3
    else:  # rotary positions are relative: where the padding sits changes nothing
        np.testing.assert_allclose(left, _table(out["right"], labels), atol=1e-4, rtol=0)


def _batch(trained: dict[str, Any]) -> dict[str, torch.Tensor]:
    tokenizer = trained["tokenizer"]
    encoded = tokenizer(_texts(), truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_lora_fine_tune_saves_its_adapter_which_peft_loads_to_the_trained_logits(train, family):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification

    trained = train(family, "last", "lora")
    adapter = trained["dir"] / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(trained["base"])
    batch = _batch(trained)
    with torch.inference_mode():
        expected = trained["model"](**batch)
        # the card's recipe: the pretrained model with the saved model's config, then the adapter
        base = AutoModelForSequenceClassification.from_pretrained(
            trained["base"], config=AutoConfig.from_pretrained(trained["dir"])).eval()
        without = base(**batch).logits
        restored = PeftModel.from_pretrained(base, adapter).eval()(**batch).logits
    assert (without - expected).abs().max().item() > 1e-3, "the adapter and its head change the logits"
    assert (restored - expected).abs().max().item() <= 1e-5
    card = (trained["dir"] / "README.md").read_text()
    assert "PeftModel.from_pretrained(base" in card and "## The LoRA adapter" in card


def test_a_mean_pooled_decoder_keeps_the_project_s_own_class_and_its_adapter_loads(train):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from hpo.classifier.saved import load_classifier

    trained = train("llama", "mean", "lora")
    config = json.loads((trained["dir"] / "config.json").read_text())
    assert config["architectures"] == ["TransferForSequenceClassification"] and config["pooling"] == "mean"
    assert (trained["dir"] / "modeling_transfer_hpo.py").exists()
    batch = _batch(trained)
    with torch.inference_mode():
        expected = trained["model"](**batch)
        saved = load_classifier(trained["dir"]).model(**batch).logits
        # the card's recipe for the project's class: built from the config, the pretrained backbone put in
        base = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(trained["dir"]))
        base.encoder = AutoModel.from_pretrained(trained["base"])
        restored = PeftModel.from_pretrained(base.eval(), trained["dir"] / "adapter").eval()(**batch).logits
    assert (saved - expected).abs().max().item() <= 1e-5
    assert (restored - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family", ["mistral", "phi3"])
def test_every_stock_family_s_classifier_is_the_trained_model(tmp_path, tokenizers, family):
    """The families not trained above: a `last`-pooled model with a random head, saved and loaded back with plain
    transformers, gives its logits (their stock class is the base model, then a bias-free `score`)."""
    from transformers import AutoModelForSequenceClassification

    from hpo.classifier.saved import STOCK_CLASSES, save_classifier
    from hpo.train.config import TrainConfig
    from hpo.train.model import TransferModel, load_encoder
    from hpo.train.sources import ModelSpec

    bundle = load_encoder(ModelSpec(id=str(saved_model(tmp_path / "base", family, tokenizers["llama"])),
                                    pooling="last"))
    torch.manual_seed(3)
    model = TransferModel(bundle.encoder, 3, 2, "last").eval()
    trained = {"tokenizer": bundle.tokenizer}
    with torch.inference_mode():
        model.target_head.weight.mul_(40)
        expected = model(**_batch(trained))
    save_classifier(model, bundle.tokenizer, tmp_path / "model", label_names=("a", "b", "c"),
                    source_label_names=("x", "y"), config=TrainConfig(max_length=MAX_LENGTH), study_text="")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    assert type(loaded).__name__ == STOCK_CLASSES[family]
    with torch.inference_mode():
        assert (loaded(**_batch(trained)).logits - expected).abs().max().item() <= 1e-5


def test_the_stock_table_covers_every_decoder_family():
    from hpo.classifier.saved import STOCK_CLASSES
    from tests.train.decoders import DECODERS

    assert set(STOCK_CLASSES) == set(DECODERS)


def test_a_decoder_study_goes_search_export_train_pipeline_predict_through_the_commands(tmp_path, tokenizers):
    """The whole path a user takes with a decoder, each step the real `hpo` command: a LoRA search with `last`
    pooling, its best trial exported, retrained and saved as the stock class, then read by a plain pipeline and by
    `hpo predict`, which agree on every label."""
    from tests.builders import hpo_cli, study_from, write_study

    base = saved_model(tmp_path / "base", "llama", tokenizers["llama"])
    spec = write_study(tmp_path / "s.yaml", base, n_trials=2, epochs=1, target_samples=96,
                       pruner="{name: none}")
    study_from(spec, spec, {"model": {"id": str(base), "pooling": "last"},
                            "training": {"adapter": "lora", "lora_r": 4}})
    for step in (("run", str(spec)), ("export", "tiny", "-o", "best.yaml"),
                 ("train", "best.yaml", "--out", "model")):
        done = hpo_cli(*step, cwd=tmp_path)
        assert done.returncode == 0, (step, done.stderr[-3000:])
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and "auto_map" not in config
    import pandas as pd

    pd.DataFrame({"text": _texts()}).to_json(tmp_path / "texts.jsonl", orient="records", lines=True)
    predicted = hpo_cli("predict", "model", "texts.jsonl", "-o", "predicted.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    labels = pd.read_csv(tmp_path / "predicted.csv")["label"].tolist()
    piped = _fresh_pipeline(tmp_path / "model", tmp_path)
    assert not piped["hpo_imported"]
    assert [max(row, key=lambda r: r["score"])["label"] for row in piped["alone"]] == labels
