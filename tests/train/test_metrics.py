"""The loop's metrics are scikit-learn's, on random and degenerate labels, and each objective gives the value worked
out by hand on a hand-made prediction set."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, matthews_corrcoef, roc_auc_score

from hpo.train.metrics import OBJECTIVES, Scores, auroc, cross_entropy, f1, mcc


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_equals_scikit_learn(average):
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n)) for k in (2, 5, 8) for n in (1, 7, 200)]
    cases += [(np.array([0, 0, 1]), np.array([2, 2, 2])),  # a class only predicted, classes never predicted
              (np.array([3, 3]), np.array([3, 3])), (np.array([5, 9, 9, 1]), np.array([5, 1, 9, 9]))]
    for labels, predictions in cases:
        expected = f1_score(labels, predictions, average=average, zero_division=0)
        assert f1(labels, predictions, average) == pytest.approx(expected, abs=1e-12), (labels, predictions)


def test_each_objective_on_a_hand_made_prediction_set():
    """Four documents, two classes; every value worked out by hand below."""
    labels = np.array([0, 0, 1, 1])
    logits = np.array([[0.0, -2.0], [0.0, 0.5], [0.0, 0.3], [0.0, 2.0]])  # class-1 margins -2, .5, .3, 2
    scores = Scores(labels, logits)
    assert list(scores.predictions) == [0, 1, 1, 1]
    # TP = 2, TN = 1, FP = 1, FN = 0: MCC = (2·1 − 1·0) / √(3·2·2·1) = 2/√12
    assert OBJECTIVES["mcc"].compute(scores, "macro") == pytest.approx(2 / 12**0.5, abs=1e-12)
    assert OBJECTIVES["accuracy"].compute(scores, "macro") == pytest.approx(0.75)
    # F1 class 0: 2·1/(2+1) = 2/3; class 1: 2·2/(2+3) = 4/5; macro 11/15
    assert OBJECTIVES["f1"].compute(scores, "macro") == pytest.approx(11 / 15)
    # AUROC: positives have margins .3 and 2, negatives −2 and .5: of the 4 pairs, .3 loses to .5, the rest win
    assert OBJECTIVES["auroc"].compute(scores, "macro") == pytest.approx(3 / 4)
    tied = Scores(labels, np.array([[0.0, -2.0], [0.0, 0.5], [0.0, 0.5], [0.0, 2.0]]))  # a positive ties .5
    assert OBJECTIVES["auroc"].compute(tied, "macro") == pytest.approx(3.5 / 4)  # a tie counts half
    # Loss: −log softmax of the true class, mean over the four: log(1+e^−2), log(1+e^.5), log(1+e^−.3), log(1+e^−2)
    by_hand = np.mean(np.log1p(np.exp([-2.0, 0.5, -0.3, -2.0])))
    assert OBJECTIVES["loss"].compute(scores, "macro") == pytest.approx(by_hand, abs=1e-12)
    assert OBJECTIVES["loss"].direction == "minimize" and OBJECTIVES["loss"].better(0.1, 0.2)
    assert all(o.direction == "maximize" for name, o in OBJECTIVES.items() if name != "loss")


def test_mcc_auroc_and_loss_equal_scikit_learn():
    rng = np.random.default_rng(1)
    for k in (2, 3, 6):
        for n in (7, 40, 300):
            labels = rng.integers(0, k, n)
            labels[:k] = np.arange(k)  # every class present: scikit-learn's multi-class AUROC needs each
            logits = rng.normal(size=(n, k))  # ties (counted half) are the hand-made case's: a softmax computed
            # two ways can break a tie one way here and not there
            probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            expected_auroc = roc_auc_score(labels, probabilities[:, 1]) if k == 2 else \
                roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
            assert mcc(labels, logits.argmax(-1)) == pytest.approx(matthews_corrcoef(labels, logits.argmax(-1)),
                                                                   abs=1e-12)
            assert auroc(labels, logits) == pytest.approx(expected_auroc, abs=1e-12)
            assert cross_entropy(labels, logits) == pytest.approx(log_loss(labels, probabilities, labels=range(k)),
                                                                  abs=1e-9)


def test_objective_values_undefined_on_a_split_are_neutral_not_errors():
    one_class = np.array([1, 1, 1])
    assert mcc(one_class, one_class) == 0.0  # scikit-learn's value where the correlation is undefined
    assert auroc(one_class, np.zeros((3, 2))) == 0.5  # no negative: no curve
