"""Validation metrics and the objectives a study may choose among them: scikit-learn's definitions, with numpy.

Hand-written because the loop must run where scikit-learn is not installed (a GPU node with torch and
transformers only: benchmarks/gpu_check.py); tests/train/test_metrics.py checks each equals its `sklearn.metrics`
counterpart. `hpo evaluate` keeps scikit-learn for its full report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

__all__ = ["OBJECTIVES", "ObjectiveName", "Scores", "ValidationObjective", "accuracy", "auroc", "cross_entropy", "f1",
           "mcc", "objective_for", "objective_for_metric", "objective_of"]

ObjectiveName = Literal["f1", "accuracy", "mcc", "auroc", "loss"]


@dataclass(frozen=True)
class Scores:
    """What one evaluation of the validation split gives the objectives: true labels, the model's logits."""

    labels: np.ndarray  # (n,) class indices
    logits: np.ndarray  # (n, classes) float

    @cached_property  # the loop's F1 and accuracy and the objective all read it: one argmax per evaluation
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


@dataclass(frozen=True)
class ValidationObjective:
    """One metric a study can be searched on: its study-file name, the name Optuna stores (`study.metric_names`,
    the dashboard's axis, the trackers' step series), the label shown beside a value, and the direction."""

    name: str
    metric: str
    label: str
    direction: Literal["maximize", "minimize"]
    compute: Callable[[Scores, str], float]  # (scores, the study's f1_average) -> value

    def better(self, a: float, b: float) -> bool:
        """Is value `a` strictly better than `b`?"""
        return a < b if self.direction == "minimize" else a > b


def _confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray | None:
    """Counts of (true class, predicted class) over the classes in the labels or the predictions, as floats; None
    for an empty split."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if not len(labels):
        return None
    classes, both = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    truth, guess, n = both[: len(labels)], both[len(labels) :], len(classes)
    return np.bincount(truth * n + guess, minlength=n * n).reshape(n, n).astype(float)


def f1(labels: np.ndarray, predictions: np.ndarray, average: str) -> float:
    """F1 over the classes that occur in the labels or the predictions (scikit-learn's default, zero_division=0).

    A class the split holds but the model never predicts scores 0; a class absent from both is left out
    rather than counted as 0, so a small validation split is not punished for what it does not contain.
    """
    confusion = _confusion(labels, predictions)
    if confusion is None:
        return 0.0
    true_positive, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    if average == "micro":
        return float(true_positive.sum() / confusion.sum())  # micro precision = recall = F1 = accuracy here
    denominator = support + predicted  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted)
    per_class = np.divide(2 * true_positive, denominator, out=np.zeros(len(support)), where=denominator > 0)
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        return float((per_class * support).sum() / support.sum()) if support.sum() else 0.0
    raise ValueError(f"unknown average {average!r}: macro, micro or weighted")


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(labels == predictions)) if len(labels) else 0.0


def mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation, multi-class (Gorodkin's R_K, scikit-learn's `matthews_corrcoef`); 0 where undefined."""
    confusion = _confusion(labels, predictions)
    if confusion is None:
        return 0.0
    support, predicted = confusion.sum(1), confusion.sum(0)
    total, correct = confusion.sum(), np.trace(confusion)
    covariance = correct * total - support @ predicted
    spread = np.sqrt((total**2 - predicted @ predicted) * (total**2 - support @ support))
    return float(covariance / spread) if spread > 0 else 0.0


def auroc(labels: np.ndarray, logits: np.ndarray) -> float:
    """Macro one-vs-rest area under the ROC curve from the class scores (scikit-learn's `roc_auc_score` with
    multi_class="ovr", average="macro"; for two classes, the AUROC of the second class's score). A class the labels
    hold no positive or no negative of has no curve and is left out; 0.5 when no class has one."""
    labels, logits = np.asarray(labels), np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities = shifted / shifted.sum(-1, keepdims=True)  # OvR on probabilities, as scikit-learn takes them
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    areas = [_binary_auroc(labels == k, probabilities[:, k]) for k in classes]
    areas = [a for a in areas if a is not None]
    return float(np.mean(areas)) if areas else 0.5


def _binary_auroc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """The Mann-Whitney statistic with ties counted half: the probability a positive outscores a negative."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average ranks, 1-based
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cross_entropy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean cross-entropy of the true classes (scikit-learn's `log_loss` on the softmax), in nats."""
    labels, logits = np.asarray(labels), np.asarray(logits, dtype=np.float64)
    if not len(labels):
        return 0.0
    top = logits.max(-1, keepdims=True)
    log_normaliser = (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(log_normaliser - logits[np.arange(len(labels)), labels]))


OBJECTIVES: dict[str, ValidationObjective] = {o.name: o for o in (
    ValidationObjective("f1", "val_f1", "val F1", "maximize",
                        lambda s, average: f1(s.labels, s.predictions, average)),
    ValidationObjective("accuracy", "val_accuracy", "val accuracy", "maximize",
                        lambda s, _: accuracy(s.labels, s.predictions)),
    ValidationObjective("mcc", "val_mcc", "val MCC", "maximize", lambda s, _: mcc(s.labels, s.predictions)),
    ValidationObjective("auroc", "val_auroc", "val AUROC", "maximize", lambda s, _: auroc(s.labels, s.logits)),
    ValidationObjective("loss", "val_loss", "val loss", "minimize", lambda s, _: cross_entropy(s.labels, s.logits)),
)}


def objective_for(name: str) -> ValidationObjective:
    return OBJECTIVES[name]


def objective_for_metric(metric: str | None) -> ValidationObjective:
    """The objective whose stored metric name is `metric` (a study's `metric_names[0]`); F1 for a study that
    stored none (made before metric names were set) or a name this version does not know."""
    return next((o for o in OBJECTIVES.values() if o.metric == metric), OBJECTIVES["f1"])


def objective_of(metric_names: list[str] | None) -> ValidationObjective:
    """The objective of a study from its `study.metric_names` (None or empty: made before names were stored)."""
    return objective_for_metric((metric_names or [None])[0])
