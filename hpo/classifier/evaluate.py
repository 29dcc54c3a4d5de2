"""`hpo evaluate`: a saved classifier on the held-out test split of the study it was trained from.

Metrics come from scikit-learn, so they mean what everyone else's mean. `evaluate_saved` also writes
`test_metrics.json` and `confusion_matrix.html` (one self-contained file, plotly.js inside, works offline) into the
model directory. No optuna here; torch, scikit-learn and plotly are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from hpo.errors import HpoError
from hpo.files import write_output
from hpo.spec import StudySpec, spec_from_text

if TYPE_CHECKING:
    from rich.table import Table

    from hpo.classifier.saved import SavedClassifier

__all__ = ["check_model_dir", "compute_metrics", "evaluate_dir", "evaluate_saved", "format_metrics", "open_classifier",
           "saved_study"]

log = logging.getLogger("hpo")

AVERAGES = ("macro", "micro", "weighted")
METRICS_FILE = "test_metrics.json"
CONFUSION_FILE = "confusion_matrix.html"


def compute_metrics(labels: np.ndarray, predictions: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy; precision, recall and F1 (macro, micro, weighted); a per-class table; the confusion matrix.

    `labels` and `predictions` are integer indices into `label_names`, the training label set. Every class of the
    label set appears in the per-class table and the confusion matrix (rows = true class, columns = predicted
    class), in `label_names` order. A class the model never predicts has precision 0 (`zero_division=0`).

    Which classes the **macro** average runs over: those that occur in the test labels or in the predictions,
    scikit-learn's default and the rule of the validation F1 the search optimised (`hpo.train.metrics.f1`), so the
    test macro F1 is comparable with it. A class present in the test split but never predicted counts with 0; a
    class of the training label set that the test split does not hold and the model never predicts is left out
    (it has no precision, no recall and nothing to average), and is listed under `macro_excluded`. Micro and
    weighted averages are unaffected by that choice: such a class has no true positive, false positive, false
    negative or support. With every class counted, micro precision = recall = F1 = accuracy.

    Returns plain JSON values: `accuracy`; `precision`, `recall`, `f1`, each `{macro, micro, weighted}`;
    `per_class` (class name -> precision, recall, f1, support, predicted); `classes`; `confusion_matrix`;
    `macro_excluded`.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    names = [str(name) for name in label_names]
    if labels.shape != predictions.shape:
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not len(labels):
        raise HpoError("no documents to evaluate on")
    every = np.arange(len(names))
    if min(labels.min(), predictions.min()) < 0 or max(labels.max(), predictions.max()) >= len(names):
        raise ValueError(f"labels and predictions must index the {len(names)} label names")

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=every, average=None, zero_division=0
    )
    predicted = np.bincount(predictions, minlength=len(names))
    in_macro = every[(support > 0) | (predicted > 0)]
    result: dict[str, Any] = {"accuracy": float(np.mean(labels == predictions))}
    averaged = {"precision": {}, "recall": {}, "f1": {}}
    for average in AVERAGES:
        values = precision_recall_fscore_support(
            labels, predictions, labels=in_macro if average == "macro" else every, average=average,
            zero_division=0,
        )
        for key, value in zip(averaged, values[:3], strict=True):
            averaged[key][average] = float(value)
    result |= averaged
    result["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i]), "predicted": int(predicted[i])}
        for i, name in enumerate(names)
    }
    result["classes"] = names
    result["confusion_matrix"] = confusion_matrix(labels, predictions, labels=every).tolist()
    result["macro_excluded"] = [names[i] for i in sorted(set(every.tolist()) - set(in_macro.tolist()))]
    return result


def check_model_dir(model_dir: Path) -> Path:
    """Raise a clear HpoError unless `model_dir` is an existing directory."""
    if not model_dir.exists():
        raise HpoError(f"{model_dir}: no such directory (give a directory written by `hpo train --out`)")
    if not model_dir.is_dir():
        raise HpoError(f"{model_dir}: not a directory (give a directory written by `hpo train --out`)")
    return model_dir


def open_classifier(model_dir: Path) -> SavedClassifier:
    """`load_classifier`, with a missing or unreadable directory as one clear HpoError."""
    from hpo.classifier.saved import load_classifier

    model_dir = check_model_dir(Path(model_dir))
    try:
        return load_classifier(model_dir)
    except HpoError:
        raise
    except Exception as exc:  # a half-copied or hand-edited directory: missing weights, bad JSON, bad config
        raise HpoError(f"{model_dir}: cannot load the saved classifier: {exc}") from None


def evaluate_dir(model_dir: Path) -> dict[str, Any]:
    """`hpo evaluate MODEL_DIR`: load the classifier saved there and evaluate it (see `evaluate_saved`)."""
    return evaluate_saved(open_classifier(model_dir))


def evaluate_saved(saved: SavedClassifier) -> dict[str, Any]:
    """Metrics of a saved classifier on the test split of its study's target dataset (`saved_study`).

    Returns `compute_metrics(...)` plus `n` (test documents) and `dataset`; writes them to `test_metrics.json` and
    the confusion matrix to `confusion_matrix.html`, both in the model directory.
    """
    from hpo.classifier.saved import predict_proba
    from hpo.train.data import load_test

    spec = saved_study(saved)
    test = load_test(spec.target, tuple(saved.label_names))
    if not len(test):
        raise HpoError(f"test split {spec.target.test_label}: no documents to evaluate on")
    predictions = predict_proba(saved, list(test.texts)).argmax(-1).numpy()
    metrics = compute_metrics(test.labels, predictions, saved.label_names)
    metrics |= {"n": len(test), "dataset": spec.target.test_label}
    write_output(saved.directory / METRICS_FILE, json.dumps(metrics, indent=2))
    page = confusion_html(metrics, title=f"test split {spec.target.test_label}")
    write_output(saved.directory / CONFUSION_FILE, page)
    return metrics


def saved_study(saved: SavedClassifier) -> StudySpec:
    """The study file saved beside the model, which says where the test split is, whatever the working directory.

    `hpo train` saves it with absolute paths. One saved by an older version may hold a relative `test_path`,
    relative to a directory it did not record (the study file's, or wherever that command ran): refused with one
    line rather than guessed, since a guess scores some other file of the same name and overwrites
    test_metrics.json with it.
    """
    source = saved.directory / "study.yaml"
    relative = _relative_test_path(saved.study_text)
    if relative is not None:
        raise HpoError(f"{source}: target -> test_path is a relative path ({relative}), saved by an older hpo train "
                       "that did not record what it is relative to; write the test file's absolute path there")
    return spec_from_text(saved.study_text, source=str(source), base_dir=saved.directory)


def _relative_test_path(text: str) -> str | None:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # spec_from_text names the problem
    target = raw.get("target") if isinstance(raw, dict) else None
    value = target.get("test_path") if isinstance(target, dict) else None
    return value if isinstance(value, str) and not Path(value).expanduser().is_absolute() else None


def confusion_html(metrics: dict[str, Any], *, title: str) -> str:
    """One self-contained HTML page: the confusion matrix as a plotly heatmap, counts in the cells."""
    import plotly.graph_objects as go

    names = metrics["classes"]
    counts = np.array(metrics["confusion_matrix"])
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # of each true class
    figure = go.Figure(go.Heatmap(
        z=counts, x=names, y=names, text=counts, texttemplate="%{text}", customdata=share,
        colorscale="Blues", colorbar={"title": {"text": "documents"}},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} documents (%{customdata:.1%} of the true class)"
                      "<extra></extra>",
    ))
    size = max(450, 60 * len(names) + 200)
    summary = (f"{title}: {metrics['n']} documents, accuracy {metrics['accuracy']:.4f}, "
               f"macro F1 {metrics['f1']['macro']:.4f}")
    figure.update_layout(
        template="plotly_white", width=size + 120, height=size, margin_t=60,
        title={"text": summary.replace("<", "&lt;")},
        xaxis={"title": {"text": "predicted class"}, "type": "category", "side": "bottom"},
        yaxis={"title": {"text": "true class"}, "type": "category", "autorange": "reversed"},
    )
    return figure.to_html(full_html=True, include_plotlyjs=True, config={"displaylogo": False},
                          div_id="confusion-matrix")


def format_metrics(metrics: dict[str, Any]) -> tuple[Table, Table]:
    """Two rich tables for the terminal: the summary (accuracy, P/R/F1 by average) and the per-class table."""
    from rich.table import Table

    n = metrics.get("n")
    title = "test split" + (f" of {metrics['dataset']}" if metrics.get("dataset") else "")
    title += f": {n} documents" if n is not None else ""
    summary = Table(title=title, title_justify="left")
    summary.add_column("metric")
    for average in AVERAGES:
        summary.add_column(average, justify="right")
    summary.add_row("accuracy", f"{metrics['accuracy']:.4f}", "", "")
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        summary.add_row(label, *(f"{metrics[key][average]:.4f}" for average in AVERAGES))
    excluded = metrics.get("macro_excluded") or []
    if excluded:
        summary.caption = f"macro without {', '.join(excluded)} (not in the test split, never predicted)"
        summary.caption_justify = "left"

    per_class = Table(title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support", "predicted"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        per_class.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                          str(row["support"]), str(row.get("predicted", "")))
    return summary, per_class
