"""Validation metrics: scikit-learn's definitions, computed with numpy.

Hand-written because the loop must run where scikit-learn is not installed (a GPU node with torch and
transformers only: benchmarks/gpu_check.py); tests/train/test_metrics.py checks these equal
`sklearn.metrics.f1_score` for every average. `hpo evaluate` keeps scikit-learn for its full report.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "f1"]


def f1(labels: np.ndarray, predictions: np.ndarray, average: str) -> float:
    """F1 over the classes that occur in the labels or the predictions (scikit-learn's default, zero_division=0).

    A class the split holds but the model never predicts scores 0; a class absent from both is left out
    rather than counted as 0, so a small validation split is not punished for what it does not contain.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if not len(labels):
        return 0.0
    classes, both = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    truth, guess = both[: len(labels)], both[len(labels) :]
    n = len(classes)
    true_positive = np.bincount(truth[truth == guess], minlength=n).astype(float)
    support = np.bincount(truth, minlength=n).astype(float)
    predicted = np.bincount(guess, minlength=n).astype(float)
    if average == "micro":
        return float(true_positive.sum() / len(labels))  # micro precision = recall = F1 = accuracy here
    denominator = support + predicted  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted)
    per_class = np.divide(2 * true_positive, denominator, out=np.zeros(n), where=denominator > 0)
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        return float((per_class * support).sum() / support.sum()) if support.sum() else 0.0
    raise ValueError(f"unknown average {average!r}: macro, micro or weighted")


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(labels == predictions)) if len(labels) else 0.0
