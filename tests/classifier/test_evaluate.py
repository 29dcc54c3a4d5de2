"""Test metrics computed by hand, a saved classifier that reloads to the same function, `hpo predict` and
`hpo evaluate` on the real R8 test split, and the errors a user can cause."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from hpo.errors import HpoError
from tests.builders import cli, hpo_cli

R8_TEST_SIZE = 2189


# -- metrics, by hand ---------------------------------------------------------------------------------------------


def _by_hand(true: list[int], pred: list[int], n_classes: int) -> list[tuple[float, float, float, int]]:
    """(precision, recall, F1, support) per class from counts, with 0 where a denominator is 0."""
    rows = []
    for c in range(n_classes):
        tp = sum(1 for t, p in zip(true, pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(true, pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(true, pred, strict=True) if t == c and p != c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, tp + fn))
    return rows


def test_metrics_equal_hand_computed_values():
    from hpo.classifier.evaluate import compute_metrics

    names = ("acq", "earn", "crude", "ship")  # ship: in the label set, absent from this test split
    true = [0, 0, 0, 1, 1, 1, 2, 2]
    pred = [0, 0, 1, 1, 1, 0, 0, 1]  # crude is never predicted
    m = compute_metrics(np.array(true), np.array(pred), names)

    rows = _by_hand(true, pred, 4)
    for name, (precision, recall, f1, support) in zip(names, rows, strict=True):
        assert m["per_class"][name] == {
            "precision": pytest.approx(precision), "recall": pytest.approx(recall), "f1": pytest.approx(f1),
            "support": support, "predicted": pred.count(names.index(name)),
        }
    assert rows[0] == pytest.approx((2 / 4, 2 / 3, 4 / 7, 3))  # the counting above, checked once by eye
    assert rows[2] == (0.0, 0.0, 0.0, 2)

    n = len(true)
    assert m["accuracy"] == pytest.approx(sum(t == p for t, p in zip(true, pred, strict=True)) / n) == 0.5
    present = rows[:3]  # ship has no support and no prediction: left out of the macro average
    for i, key in enumerate(("precision", "recall", "f1")):
        assert m[key]["macro"] == pytest.approx(sum(r[i] for r in present) / 3)
        assert m[key]["weighted"] == pytest.approx(sum(r[i] * r[3] for r in rows) / n)
        assert m[key]["micro"] == pytest.approx(m["accuracy"])  # single-label, every class counted
    assert m["f1"]["macro"] == pytest.approx(8 / 21)
    assert m["f1"]["weighted"] == pytest.approx(3 / 7)
    assert m["macro_excluded"] == ["ship"]
    assert m["classes"] == list(names)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [1, 2, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    json.dumps(m)  # plain Python values only


def test_macro_counts_predicted_but_absent_classes_like_the_validation_f1():
    from hpo.classifier.evaluate import compute_metrics
    from hpo.train.metrics import f1

    true, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # c: predicted, never true; d: neither
    m = compute_metrics(true, pred, ("a", "b", "c", "d"))
    rows = _by_hand(true.tolist(), pred.tolist(), 4)
    assert m["f1"]["macro"] == pytest.approx((rows[0][2] + rows[1][2] + 0.0) / 3)
    assert m["macro_excluded"] == ["d"]
    for average in ("macro", "micro", "weighted"):
        assert m["f1"][average] == pytest.approx(f1(true, pred, average))


def test_metrics_refuse_an_empty_split():
    from hpo.classifier.evaluate import compute_metrics

    with pytest.raises(HpoError, match="no documents"):
        compute_metrics(np.array([], dtype=int), np.array([], dtype=int), ("a", "b"))


# -- a tiny saved classifier -------------------------------------------------------------------------------------


def _test_texts(k: int) -> list[str]:
    from hpo.train.corpora import builtin_file, read_tab

    texts, _ = read_tab(builtin_file("reuters-r8", "test"))
    return [text.strip() for text in texts[:k]]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, save_tiny):
    """A TransferModel on the tiny BERT (random heads) saved as `hpo train` saves one, and its in-memory twin."""
    return save_tiny(tmp_path_factory.mktemp("saved"))


def _stdin(text: str) -> io.TextIOWrapper:
    """Standard input as a process has it: bytes underneath (`sys.stdin.buffer`)."""
    return io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")


def _logits_one_by_one(saved, texts: list[str]) -> torch.Tensor:
    """The in-memory model on each text alone: no padding, no batching, fp32."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = saved["tokenizer"](text, truncation=True, max_length=32, return_tensors="pt")
            rows.append(saved["model"](enc["input_ids"], enc["attention_mask"])[0])
    return torch.stack(rows)


def test_saved_classifier_reloads_to_the_same_function(saved):
    from hpo.classifier.saved import load_classifier

    assert len(saved["labels"]) == 8
    loaded = load_classifier(saved["dir"])
    assert loaded.label_names == saved["labels"]
    assert loaded.config.max_length == 32
    assert not loaded.model.training
    texts = _test_texts(8)
    enc = saved["tokenizer"](texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = saved["model"](enc["input_ids"], enc["attention_mask"])
        got = loaded.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert expected.dtype == got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert loaded.tokenizer.model_max_length == 32  # the pipeline's truncation length is the trained one


def test_predict_gives_the_in_memory_model_s_labels_and_probabilities(saved, tmp_path):
    """`hpo predict DIR texts.csv -o out.csv`."""
    texts = _test_texts(40)
    pd.DataFrame({"id": range(len(texts)), "body": texts}).to_csv(tmp_path / "texts.csv", index=False)
    done = hpo_cli("predict", str(saved["dir"]), "texts.csv", "-o", "out.csv", "--text-column", "body",
                   cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wrote out.csv"
    table = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    # every input column kept, so the ids join back
    assert list(table.columns) == ["id", "body", "label", *(f"p_{name}" for name in saved["labels"])]
    assert table["id"].tolist() == list(range(len(texts))) and table["body"].tolist() == texts

    expected = _logits_one_by_one(saved, texts).softmax(-1).numpy()
    assert table["label"].tolist() == [saved["labels"][i] for i in expected.argmax(-1)]
    np.testing.assert_allclose(table[[f"p_{name}" for name in saved["labels"]]].to_numpy(), expected, atol=1e-5)


def test_predict_reads_and_writes_every_format(saved, tmp_path, monkeypatch, capsys):
    from hpo.classifier.predict import predict_file, predict_texts
    from hpo.classifier.saved import load_classifier

    texts = _test_texts(5)
    pd.DataFrame({"text": texts}).to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": texts}).to_parquet(tmp_path / "in.parquet")
    a = pd.read_parquet(predict_file(saved["dir"], tmp_path / "in.jsonl", tmp_path / "a.parquet"))
    b = pd.read_json(predict_file(saved["dir"], tmp_path / "in.parquet", tmp_path / "b.jsonl"), lines=True)
    c = pd.read_json(predict_file(saved["dir"], tmp_path / "in.parquet", tmp_path / "c.json"))
    assert a["text"].tolist() == b["text"].tolist() == c["text"].tolist() == texts
    assert a["label"].tolist() == b["label"].tolist() == c["label"].tolist()

    (tmp_path / "in.txt").write_text("\n".join(texts[2:4]) + "\n\n")
    d = pd.read_csv(predict_file(saved["dir"], tmp_path / "in.txt", tmp_path / "d.tsv"), sep="\t")
    assert d["label"].tolist() == a["label"].tolist()[2:4]

    monkeypatch.setattr("sys.stdin", _stdin("\n".join(["", texts[0], "   ", texts[1], ""]) + "\n"))
    assert predict_file(saved["dir"], "-", None) == "-"
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert printed["text"].tolist() == texts[:2]
    assert printed["label"].tolist() == a["label"].tolist()[:2]

    rows = predict_texts(load_classifier(saved["dir"]), texts)
    assert [row["label"] for row in rows] == a["label"].tolist()
    assert list(rows[0]["probabilities"]) == list(saved["labels"])
    assert rows[0]["probabilities"] == pytest.approx({name: a[f"p_{name}"][0] for name in saved["labels"]}, abs=1e-6)


# -- evaluation on the real R8 test split ------------------------------------------------------------------------


def test_evaluate_on_the_r8_test_split(saved, tmp_path):
    """`hpo evaluate DIR`."""
    done = hpo_cli("evaluate", str(saved["dir"]), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())
    assert "2189 documents" in shown and "weighted" in shown and "earn" in shown and "money-fx" in shown
    assert f"{saved['dir'] / 'confusion_matrix.html'}" in done.stdout.replace("\n", "")
    metrics = json.loads((saved["dir"] / "test_metrics.json").read_text())

    assert metrics["n"] == R8_TEST_SIZE  # the whole split: max_samples subsamples training data only
    assert metrics["dataset"] == "reuters-r8 (test split)"
    for key in ("precision", "recall", "f1"):
        assert set(metrics[key]) == {"macro", "micro", "weighted"}
        assert all(0.0 <= value <= 1.0 for value in metrics[key].values())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert list(metrics["per_class"]) == metrics["classes"] == list(saved["labels"])
    assert sum(row["support"] for row in metrics["per_class"].values()) == R8_TEST_SIZE
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (8, 8) and matrix.sum() == R8_TEST_SIZE
    assert np.trace(matrix) / R8_TEST_SIZE == pytest.approx(metrics["accuracy"])

    page = (saved["dir"] / "confusion_matrix.html").read_text()
    assert all(json.dumps(name) in page for name in saved["labels"])
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself is inside, not a CDN link
    assert 'src="https://cdn' not in page


# -- what a user can get wrong ----------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(saved, tmp_path, monkeypatch):
    from hpo.classifier.evaluate import evaluate_dir
    from hpo.classifier.predict import predict_file

    with pytest.raises(HpoError, match=r"nowhere: no such directory"):
        evaluate_dir(tmp_path / "nowhere")
    with pytest.raises(HpoError, match=r"nowhere: no such directory"):
        predict_file(tmp_path / "nowhere", tmp_path / "texts.csv", None)
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(HpoError, match="not a model saved by `hpo train`"):
        evaluate_dir(tmp_path / "empty-dir")

    pd.DataFrame({"id": [1, 2], "body": ["a", "b"]}).to_csv(tmp_path / "texts.csv", index=False)
    with pytest.raises(HpoError, match=r"texts\.csv: no column 'text'; columns: id, body \(choose one with"):
        predict_file(saved["dir"], tmp_path / "texts.csv", None)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(HpoError, match=r"empty\.csv: no texts"):
        predict_file(saved["dir"], tmp_path / "empty.csv", None)
    (tmp_path / "header.csv").write_text("text\n")
    with pytest.raises(HpoError, match=r"header\.csv: no texts"):
        predict_file(saved["dir"], tmp_path / "header.csv", None)
    with pytest.raises(HpoError, match=r"missing\.csv: no such file"):
        predict_file(saved["dir"], tmp_path / "missing.csv", None)
    with pytest.raises(HpoError, match=r"texts\.xlsx: unsupported file type"):
        predict_file(saved["dir"], tmp_path / "texts.xlsx", None)
    with pytest.raises(HpoError, match=r"out\.xlsx: unsupported output type"):
        predict_file(saved["dir"], tmp_path / "texts.csv", tmp_path / "out.xlsx", text_column="body")
    pd.DataFrame({"text": ["a"], "label": ["x"], "p_earn": [1]}).to_csv(tmp_path / "labelled.csv", index=False)
    with pytest.raises(HpoError, match=r"labelled\.csv: input columns 'label', 'p_earn' would be overwritten"):
        predict_file(saved["dir"], tmp_path / "labelled.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    monkeypatch.setattr("sys.stdin", _stdin("\n  \n"))
    with pytest.raises(HpoError, match="standard input: no texts"):
        predict_file(saved["dir"], "-", None)


def test_cli_errors_exit_1_without_a_traceback(saved, tmp_path):
    pd.DataFrame({"body": ["a"]}).to_csv(tmp_path / "texts.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    cases = [
        (("evaluate", "nowhere"), "nowhere: no such directory"),
        (("predict", str(saved["dir"]), "texts.csv"), "no column 'text'; columns: body"),
        (("predict", str(saved["dir"]), "empty.csv"), "empty.csv: no texts"),
        (("predict", str(saved["dir"]), "binary.txt"), "binary.txt: not UTF-8 text (byte 0 is 0x80)"),
        (("predict", str(saved["dir"]), "texts.csv", "--text-column", "body", "-o", "/sys/out.csv"),
         "/sys/out.csv: cannot write: Permission denied"),
        (("predict", str(saved["dir"]), "texts.csv", "--text-column", "body", "-o", "texts.csv/out.csv"),
         "texts.csv/out.csv: cannot write: texts.csv is a file, not a directory"),
    ]
    (tmp_path / "binary.txt").write_bytes(bytes(range(128, 256)) * 4)
    for args, message in cases:
        done = cli(*args, cwd=tmp_path)  # in this process: the same entry point, without a model load per case
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in " ".join(done.stderr.split()), (args, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
