"""A saved model is a real Hugging Face classifier: in a fresh process that runs only the README's import,
`pipeline("text-classification")` gives the trained model's probabilities (long texts truncated, any batch
size) and its test F1; without the import plain transformers refuses it, and `trust_remote_code=True` loads it
where the package is not importable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.builders import hpo_cli, write_study

MAX_LENGTH = 32

# What a user runs (README, "Using the saved model"): one import, then plain transformers.
PIPELINE = """
import json, sys
import hpo.classifier  # registers the saved format with transformers' Auto classes
from transformers import pipeline

model_dir, batch_size, texts = sys.argv[1], int(sys.argv[2]), json.load(sys.stdin)
classify = pipeline("text-classification", model=model_dir, top_k=None, device="cpu")
out = classify(texts, truncation=True, batch_size=batch_size)
json.dump([{row["label"]: row["score"] for row in scores} for scores in out], sys.stdout)
"""


def _fresh(code: str, *args: str, stdin: str = "", cwd: Path | None = None, pythonpath: bool = True):
    """`code` in a new interpreter: nothing of this test process (no registration, no imports) carries over."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(Path(__file__).parents[2])
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def _texts(k: int) -> list[str]:
    from hpo.train.corpora import builtin_file, read_tab

    texts, _ = read_tab(builtin_file("reuters-r8", "test"))
    return [t.strip() for t in texts[:k]] + ["short", "oil prices rose"]


def _label_names(name: str) -> tuple[str, ...]:
    from hpo.train.corpora import builtin_file, read_tab

    _, labels = read_tab(builtin_file(name, "train"))
    return tuple(sorted({label.strip() for label in labels if label.strip()}))


def _tiny(kind: str, root: Path, tokenizer) -> Path:
    """A random tiny encoder of `kind` with MiniLM's tokenizer, saved like a hub model."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(1)
    shape = {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2} if kind == "distilbert" else \
        {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = AutoConfig.for_model(kind, vocab_size=tokenizer.vocab_size, max_position_embeddings=128, **shape)
    path = root / kind
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=[("bert", "mean"), ("distilbert", "cls")], ids=lambda p: "-".join(p))
def saved(request, tmp_path_factory, minilm_tokenizer):
    """A trained-looking TransferModel (random weights, heads included) saved as `hpo train` saves it, and the
    probabilities it gives in memory before saving: each text alone, truncated to the max length, fp32."""
    from hpo.classifier.saved import save_classifier
    from hpo.spec import ModelSpec, load_spec
    from hpo.train.model import TransferModel, load_encoder

    kind, pooling = request.param
    root = tmp_path_factory.mktemp(f"hf-{kind}")
    bundle = load_encoder(ModelSpec(id=str(_tiny(kind, root, minilm_tokenizer)), pooling=pooling))
    labels = _label_names("reuters-r8")
    torch.manual_seed(2)
    model = TransferModel(bundle.encoder, len(labels), len(_label_names("20newsgroups")), pooling).eval()
    with torch.no_grad():  # a head far from its initialisation: a randomly re-initialised one would show
        model.target_head.weight.mul_(40)
    texts = _texts(12)
    lengths = [len(bundle.tokenizer(t)["input_ids"]) for t in texts]
    assert sum(n > MAX_LENGTH for n in lengths) >= 3, "at least 3 texts longer than the max length"
    with torch.inference_mode():
        encoded = [bundle.tokenizer(t, truncation=True, max_length=MAX_LENGTH, return_tensors="pt") for t in texts]
        expected = torch.stack([model(e["input_ids"], e["attention_mask"])[0] for e in encoded]).softmax(-1).numpy()
    study = write_study(root / "study.yaml", root / kind)
    config = load_spec(study).base_config().model_copy(update={"max_length": MAX_LENGTH})
    out = root / "model"
    save_classifier(model, bundle.tokenizer, out, label_names=labels, source_label_names=_label_names("20newsgroups"),
                    config=config, study_text=study.read_text())
    return {"dir": out, "labels": labels, "texts": texts, "expected": expected}


@pytest.mark.parametrize("batch_size", [1, 8])
def test_the_pipeline_gives_the_probabilities_of_the_model_before_saving(saved, batch_size):
    done = _fresh(PIPELINE, str(saved["dir"]), str(batch_size), stdin=json.dumps(saved["texts"]))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert set(rows[0]) == set(saved["labels"])  # the dataset's label names, not LABEL_0 …
    got = np.array([[row[name] for name in saved["labels"]] for row in rows])
    np.testing.assert_allclose(got, saved["expected"], atol=1e-5, rtol=0)
    assert len(set(got.argmax(-1))) > 1 or got.max() - got.min() > 0.1  # a real head, not a uniform guess


def test_without_the_import_transformers_refuses_and_trust_remote_code_loads(saved, tmp_path):
    plain = """
import sys
from transformers import AutoModelForSequenceClassification
try:
    AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
except Exception as exc:
    print("refused:", type(exc).__name__)
else:
    print("loaded")
"""
    done = _fresh(plain, str(saved["dir"]), cwd=tmp_path, pythonpath=False)
    assert done.returncode == 0 and done.stdout.splitlines()[-1].endswith("refused: ValueError"), \
        done.stdout + done.stderr[-2000:]

    remote = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
texts = json.load(sys.stdin)
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
assert "hpo" not in sys.modules  # the copied modeling file, not the package
with torch.inference_mode():
    rows = [model(**tok(t, truncation=True, return_tensors="pt")).logits.softmax(-1)[0].tolist() for t in texts]
json.dump({"rows": rows, "labels": [model.config.id2label[i] for i in range(len(rows[0]))]}, sys.stdout)
"""
    done = _fresh(remote, str(saved["dir"]), stdin=json.dumps(saved["texts"]), cwd=tmp_path, pythonpath=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert tuple(out["labels"]) == saved["labels"]
    np.testing.assert_allclose(np.array(out["rows"]), saved["expected"], atol=1e-5, rtol=0)


def test_a_trained_model_s_pipeline_test_f1_is_its_metrics_json(tmp_path, tiny_model_dir):
    """`hpo train` of an exported trial, then the README's pipeline over the whole R8 test split."""
    from sklearn.metrics import f1_score

    from hpo.train.corpora import builtin_file, read_tab

    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1, pruner="none")
    for args in (("run", str(spec)), ("export", "tiny", "-o", "best.yaml"), ("train", "best.yaml", "--out", "m")):
        done = hpo_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    texts, labels = read_tab(builtin_file("reuters-r8", "test"))
    done = _fresh(PIPELINE, str(tmp_path / "m"), "64", stdin=json.dumps([t.strip() for t in texts]))
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = [max(row, key=row.get) for row in json.loads(done.stdout)]
    f1 = f1_score([label.strip() for label in labels], predicted, average="macro")
    assert len(predicted) == metrics["test"]["n"] == 2189
    assert abs(f1 - metrics["test"]["f1"]["macro"]) <= 1e-6
    # `hpo predict` agrees with the pipeline on every test document
    (tmp_path / "test.txt").write_text("\n".join(t.strip().replace("\n", " ") for t in texts) + "\n")
    done = hpo_cli("predict", "m", "test.txt", "-o", "p.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd

    assert pd.read_csv(tmp_path / "p.csv", keep_default_na=False)["label"].tolist() == predicted
    assert metrics["test"]["dataset"] == "reuters-r8 (test split)"  # the test split, not the training file
