"""A saved model is a real Hugging Face classifier: in a fresh process that runs only the README's import,
`pipeline("text-classification")` gives the trained model's probabilities (long texts truncated, any batch
size) and its test F1; without the import plain transformers refuses it (without asking anything, in a terminal
too) and loads its tokenizer, and importing the modeling file saved beside it loads it where the package is not
importable. Its model card says what metrics.json and the study say."""

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


@pytest.fixture(scope="module", params=[("bert", "mean", "full"), ("distilbert", "cls", "full"),
                                        ("bert", "last", "lora")], ids=lambda p: "-".join(p))
def saved(request, tmp_path_factory, minilm_tokenizer):
    """A trained-looking TransferModel (random weights, heads included; LoRA adapters on its top layer) saved as
    `hpo train` saves it, and the probabilities it gives in memory before saving: each text alone, truncated to the
    max length, fp32."""
    from hpo.classifier.saved import save_classifier
    from hpo.spec import ModelSpec, load_spec
    from hpo.train.adapters import add_lora
    from hpo.train.config import TrainConfig
    from hpo.train.model import TransferModel, load_encoder

    kind, pooling, adapter = request.param
    root = tmp_path_factory.mktemp(f"hf-{kind}-{pooling}")
    bundle = load_encoder(ModelSpec(id=str(_tiny(kind, root, minilm_tokenizer)), pooling=pooling))
    labels = _label_names("reuters-r8")
    torch.manual_seed(2)
    model = TransferModel(bundle.encoder, len(labels), len(_label_names("20newsgroups")), pooling).eval()
    if adapter == "lora":
        add_lora(model, TrainConfig(adapter="lora", freeze_depth=1, lora_r=4))
    with torch.no_grad():  # a head far from its initialisation (and adapters that change the weights): a randomly
        model.target_head.weight.mul_(40)  # re-initialised head, or adapters dropped on saving, would show
        for name, weight in model.encoder.named_parameters():
            if "lora_B" in name:
                weight.normal_(std=0.5)
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


def test_without_the_import_transformers_refuses_and_the_saved_modeling_file_loads(saved, tmp_path):
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

    copied = """
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import modeling_transfer_hpo  # the file saved beside the weights registers the model type
from transformers import AutoModelForSequenceClassification, AutoTokenizer
texts = json.load(sys.stdin)
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
assert "hpo" not in sys.modules  # the copied modeling file, not the package
with torch.inference_mode():
    rows = [model(**tok(t, truncation=True, return_tensors="pt")).logits.softmax(-1)[0].tolist() for t in texts]
json.dump({"rows": rows, "labels": [model.config.id2label[i] for i in range(len(rows[0]))]}, sys.stdout)
"""
    done = _fresh(copied, str(saved["dir"]), stdin=json.dumps(saved["texts"]), cwd=tmp_path, pythonpath=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert tuple(out["labels"]) == saved["labels"]
    np.testing.assert_allclose(np.array(out["rows"]), saved["expected"], atol=1e-5, rtol=0)


# Plain transformers in a terminal, as a user types it: no import of hpo, no trust_remote_code.
IN_A_TERMINAL = """
import json, sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("Crude oil prices rose after the OPEC meeting.")["input_ids"]
try:
    AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
    model = "loaded"
except ValueError:
    model = "refused"
print("RESULT", json.dumps({"tokenizer": type(tok).__name__, "ids": ids, "max": tok.model_max_length,
                            "model": model}))
"""


def test_plain_transformers_in_a_terminal_never_asks_to_run_code(saved, tmp_path, minilm_tokenizer):
    """transformers asks "run custom code? [y/N]" (and waits 15 s) when it can read a terminal and a directory's
    config.json has an `auto_map`; stdin and stdout are a pseudo-terminal here, as in a user's shell."""
    import os
    import pty
    import select
    import time

    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, "-c", IN_A_TERMINAL, str(saved["dir"])], stdin=terminal,
                               stdout=terminal, stderr=terminal, cwd=tmp_path, env=env)
    os.close(terminal)
    shown, deadline = b"", time.monotonic() + 240
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            shown += chunk
        elif process.poll() is not None:
            break
    process.kill()
    os.close(controller)
    text = shown.decode(errors="replace")
    assert "[y/N]" not in text and "custom code" not in text, text[-3000:]
    result = json.loads(text[text.index("RESULT ") + 7:].splitlines()[0])
    expected = minilm_tokenizer("Crude oil prices rose after the OPEC meeting.")["input_ids"]
    assert result == {"tokenizer": type(minilm_tokenizer).__name__, "ids": expected, "max": MAX_LENGTH,
                      "model": "refused"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir) -> Path:
    """`hpo train` of an exported trial of a real 1-trial study: the directory it wrote."""
    work = tmp_path_factory.mktemp("trained")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=1, pruner="none")
    for args in (("run", str(spec)), ("export", "tiny", "-o", "best.yaml"), ("train", "best.yaml", "--out", "m")):
        done = hpo_cli(*args, cwd=work)
        assert done.returncode == 0, done.stderr[-3000:]
    return work / "m"


def test_a_trained_model_s_pipeline_test_f1_is_its_metrics_json(trained, tmp_path):
    """The README's pipeline over the whole R8 test split."""
    from sklearn.metrics import f1_score

    from hpo.train.corpora import builtin_file, read_tab

    metrics = json.loads((trained / "metrics.json").read_text())
    texts, labels = read_tab(builtin_file("reuters-r8", "test"))
    done = _fresh(PIPELINE, str(trained), "64", stdin=json.dumps([t.strip() for t in texts]))
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = [max(row, key=row.get) for row in json.loads(done.stdout)]
    f1 = f1_score([label.strip() for label in labels], predicted, average="macro")
    assert len(predicted) == metrics["test"]["n"] == 2189
    assert abs(f1 - metrics["test"]["f1"]["macro"]) <= 1e-6
    # `hpo predict` agrees with the pipeline on every test document
    (tmp_path / "test.txt").write_text("\n".join(t.strip().replace("\n", " ") for t in texts) + "\n")
    done = hpo_cli("predict", str(trained), "test.txt", "-o", "p.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd

    assert pd.read_csv(tmp_path / "p.csv", keep_default_na=False)["label"].tolist() == predicted
    assert metrics["test"]["dataset"] == "reuters-r8 (test split)"  # the test split, not the training file


def _card_tables(card: str) -> dict[str, str]:
    """Every two- and three-column Markdown table row of the card: first cells -> last cell."""
    rows = {}
    for line in card.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= {"-"}:
            rows[" / ".join(cells[:-1])] = cells[-1]
    return rows


def test_the_model_card_says_what_the_saved_metadata_says(trained):
    import yaml

    card = (trained / "README.md").read_text()
    metrics = json.loads((trained / "metrics.json").read_text())
    meta = json.loads((trained / "hpo_classifier.json").read_text())
    study = yaml.safe_load((trained / "study.yaml").read_text())
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert yaml.safe_load(front) == {"library_name": "transformers", "pipeline_tag": "text-classification",
                                     "tags": ["transfer-hpo"]}
    assert f"**{study['model']['id']}** ({study['model']['pooling']} pooling" in body  # the base model
    assert "target **reuters-r8**" in body and "source task **20newsgroups** (20 classes)" in body
    assert f"{len(meta['label_names'])} classes" in body
    rows, origin, test, validation = _card_tables(body), metrics["exported_from"], metrics["test"], \
        metrics["validation"]
    assert rows["study"] == origin["study"] == "tiny" and rows["trial"] == str(origin["trial"])
    assert rows["study file sha256"] == origin["spec_sha256"]
    assert float(rows["trial's val_f1 in the search"]) == pytest.approx(origin["value"], abs=5e-5)
    where = f"test: reuters-r8 (test split), {test['n']} documents"
    for average in ("macro", "micro", "weighted"):
        assert float(rows[f"{where} / {average} F1"]) == pytest.approx(test["f1"][average], abs=5e-5)
    assert float(rows[f"{where} / accuracy"]) == pytest.approx(test["accuracy"], abs=5e-5)
    picked = f"validation (evaluation {validation['evaluation']}, epoch {validation['epoch']:g}; its weights are kept)"
    assert float(rows[f"{picked} / macro F1"]) == pytest.approx(validation["f1"], abs=5e-5)
    assert ", ".join(f"`{name}`" for name in meta["label_names"]) in body
    config = yaml.safe_load(body.split("```yaml\n")[1].split("```")[0])
    assert config == metrics["config"] == meta["config"]
    assert 'pipeline("text-classification", model="m")' in body  # the directory as given to --out
