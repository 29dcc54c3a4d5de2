"""Validation metrics, via scikit-learn so that they mean what everyone else's mean."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "f1"]


def f1(labels: np.ndarray, predictions: np.ndarray, average: str) -> float:
    """F1 over the classes that occur in the labels or the predictions (scikit-learn's default).

    A class the split holds but the model never predicts scores 0; a class absent from both is left out
    rather than counted as 0, so a small validation split is not punished for what it does not contain.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average=average, zero_division=0))


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(labels == predictions)) if len(labels) else 0.0
