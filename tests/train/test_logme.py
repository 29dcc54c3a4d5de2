"""LogME on features whose answer is known: labels that are a linear function of the features score above the
same labels shuffled, and the returned fixed point satisfies the evidence formula written out in full here."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.train.logme import logme, max_evidence


def _linear_task(n: int, d: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and the class each one's linear scores (plus a little noise) pick."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    scores = features @ rng.normal(size=(d, n_classes)) + 0.05 * rng.normal(size=(n, n_classes))
    return features, scores.argmax(axis=1)


def _direct_log_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, α, β) / n straight from its definition, with D × D matrices and no SVD:
    n/2·log β + D/2·log α − n/2·log 2π − β/2·‖Fm − y‖² − α/2·‖m‖² − 1/2·log|A|, A = αI + βFᵀF, m = βA⁻¹Fᵀy."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    sign, log_det = np.linalg.slogdet(a)
    assert sign > 0
    value = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
             - beta / 2 * np.sum((features @ m - y) ** 2) - alpha / 2 * np.sum(m**2) - log_det / 2)
    return value / n


def test_labels_linear_in_the_features_score_above_the_same_labels_shuffled():
    features, labels = _linear_task(n=400, d=16, n_classes=3)
    shuffled = np.random.default_rng(1).permutation(labels)

    fitted, chance = logme(features, labels).score, logme(features, shuffled).score

    assert np.isfinite(fitted) and np.isfinite(chance)
    assert fitted > chance + 0.1, (fitted, chance)


@pytest.mark.parametrize(("n", "d"), [(300, 12), (40, 64)], ids=["more samples than dimensions",
                                                                   "fewer samples than dimensions"])
def test_the_score_is_the_evidence_formula_at_the_returned_fixed_point(n, d):
    """Both routes to the spectrum (the Gram matrix when n > D, F's own SVD otherwise). With n < D, F spans n of
    the D directions, and log|A| must still count α along the other D − n."""
    features, labels = _linear_task(n=n, d=d, n_classes=3, seed=n)
    features = features + 0.5  # not centred: the score uses the features as given
    found = logme(features, labels)

    direct = [_direct_log_evidence(features, (labels == c).astype(np.float64), found.alpha[c], found.beta[c])
              for c in range(3)]

    assert found.iterations > 1
    np.testing.assert_allclose(found.per_column, direct, rtol=0, atol=1e-6)
    assert abs(found.score - np.mean(direct)) < 1e-6


def test_the_fixed_point_is_where_the_updates_stop_moving():
    """At the returned α and β the paper's updates α = γ/‖m‖², β = (n − γ)/‖Fm − y‖² give them back."""
    features, labels = _linear_task(n=200, d=10, n_classes=2, seed=3)
    y = (labels == 1).astype(np.float64)
    found = max_evidence(features, y[:, None])
    alpha, beta = found.alpha[0], found.beta[0]

    a = alpha * np.eye(10) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    gamma = np.sum(np.linalg.eigvalsh(beta * features.T @ features) / np.linalg.eigvalsh(a))

    assert gamma / (m @ m + 1e-5) == pytest.approx(alpha, rel=1e-4)
    assert (200 - gamma) / (np.sum((features @ m - y) ** 2) + 1e-5) == pytest.approx(beta, rel=1e-4)


def test_a_class_no_sample_has_is_left_out():
    """An all-zero indicator column fits perfectly whatever the features; counting it would inflate the score."""
    features, labels = _linear_task(n=150, d=8, n_classes=3, seed=4)
    relabelled = np.where(labels == 2, 5, labels)  # classes 0, 1 and 5: 2, 3 and 4 have no sample

    assert logme(features, relabelled).per_column.shape == (3,)
    assert logme(features, relabelled).score == pytest.approx(logme(features, labels).score, abs=1e-12)


def test_features_with_nan_are_refused_with_the_count():
    features, labels = _linear_task(n=50, d=4, n_classes=2)
    features[[3, 7]] = np.nan

    with pytest.raises(ValueError, match="2 of 50 feature rows"):
        logme(features, labels)
