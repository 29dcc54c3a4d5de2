"""The loop's F1 is scikit-learn's F1, for every average, on random and degenerate labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpo.train.metrics import f1


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_equals_scikit_learn(average):
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n)) for k in (2, 5, 8) for n in (1, 7, 200)]
    cases += [(np.array([0, 0, 1]), np.array([2, 2, 2])),  # a class only predicted, classes never predicted
              (np.array([3, 3]), np.array([3, 3])), (np.array([5, 9, 9, 1]), np.array([5, 1, 9, 9]))]
    for labels, predictions in cases:
        expected = f1_score(labels, predictions, average=average, zero_division=0)
        assert f1(labels, predictions, average) == pytest.approx(expected, abs=1e-12), (labels, predictions)
