"""LogME (You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"): how
well a pretrained model's frozen features suit a target task, without fine-tuning it.

For each target column y (a class's one-hot indicator, for classification) a Bayesian linear model
y = F·w + noise, w ~ N(0, α⁻¹I), noise ~ N(0, β⁻¹I), is fitted by maximising its evidence p(y | F, α, β) over α
and β with the paper's fixed-point iteration (Algorithm 1). The score is the log of that maximum evidence divided
by the number of samples n, averaged over the columns: higher means the features explain the labels better.

One SVD of F serves every column and every iteration: with F = U·Σ·Vᵀ and z = Uᵀy, each iteration is a sum over
the singular values (O(min(n, D)) per column), done for all columns at once. Features are used as given, in
float64: not centred, not scaled (as the paper and the authors' reference code, github.com/thuml/LogME, do), so
the score depends on the pooling's scale as the paper's does. Pure numpy: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Evidence", "logme", "max_evidence"]

# The reference code's guard in the α and β updates: a column fitted exactly (zero residual) or an all-zero column
# (zero ‖m‖²) would otherwise divide by zero. It moves the fixed point by nothing measurable elsewhere.
EPSILON = 1e-5
TOLERANCE = 1e-6  # relative change of α/β between iterations that counts as converged
MAX_ITERATIONS = 1000  # the paper sees convergence in a few; a pathological column stops here instead of looping


@dataclass(frozen=True)
class Evidence:
    """The maximum evidence of each target column and where it was reached."""

    per_column: np.ndarray  # log p(y | F, α, β) / n at the fixed point, one per column (class)
    alpha: np.ndarray  # the weights' prior precision α at the fixed point, one per column
    beta: np.ndarray  # the noise precision β at the fixed point, one per column
    iterations: int  # fixed-point iterations until every column converged (or MAX_ITERATIONS)

    @property
    def score(self) -> float:
        """LogME: the per-sample log maximum evidence, averaged over the columns."""
        return float(self.per_column.mean())


@dataclass(frozen=True)
class _Spectrum:
    """What the evidence of any column needs from F: its squared non-zero singular values and the columns'
    coordinates z = Uᵀy along the left singular vectors, plus ‖y‖² − ‖z‖², the part of y that F cannot reach."""

    sigma2: np.ndarray  # (k, 1), k = rank of F
    z2: np.ndarray  # (k, C)
    outside: np.ndarray  # (C,)
    n: int
    d: int


def logme(features: np.ndarray, labels: np.ndarray) -> Evidence:
    """LogME of `features` (n × D) for the class `labels` (n integers): one-vs-all regression on the one-hot
    indicator of each class that occurs in `labels` (a class with no sample would be an all-zero column that any
    model fits perfectly, so it is left out), averaged over those classes."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one integer per sample (got shape {labels.shape})")
    classes = np.unique(labels)
    return max_evidence(features, (labels[:, None] == classes[None, :]).astype(np.float64))


def max_evidence(features: np.ndarray, targets: np.ndarray) -> Evidence:
    """The maximum evidence of a Bayesian linear regression of each column of `targets` (n × C) on `features`
    (n × D), by the fixed-point iteration of α and β."""
    spectrum = _spectrum(*_checked(features, targets))
    alpha, beta = np.ones(spectrum.z2.shape[1]), np.ones(spectrum.z2.shape[1])
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):  # noqa: B007 - the count is reported
        ratio = alpha / beta
        gamma, m2, residual2 = _posterior(spectrum, ratio)
        alpha, beta = gamma / (m2 + EPSILON), (spectrum.n - gamma) / (residual2 + EPSILON)
        if np.all(np.abs(alpha / beta - ratio) <= TOLERANCE * ratio):
            break
    return Evidence(_log_evidence(spectrum, alpha, beta), alpha, beta, iterations)


def _checked(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features, targets = np.asarray(features, np.float64), np.asarray(targets, np.float64)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets) or len(features) < 2:
        raise ValueError(f"features must be n × D and targets n × C with n ≥ 2 (got {features.shape} and "
                         f"{targets.shape})")
    bad = int((~np.isfinite(features)).any(axis=1).sum())
    if bad:
        raise ValueError(f"{bad} of {len(features)} feature rows hold NaN or infinity")
    return features, targets


def _spectrum(features: np.ndarray, targets: np.ndarray) -> _Spectrum:
    """The SVD of F, through the D × D Gram matrix when n > D (its eigen-decomposition costs O(nD² + D³), where
    the SVD of a tall F costs more for the same values), otherwise F's own thin SVD."""
    n, d = features.shape
    eps = np.finfo(np.float64).eps
    if n > d:
        eigenvalues, vectors = np.linalg.eigh(features.T @ features)
        keep = eigenvalues > max(eigenvalues.max(), 0.0) * d * eps  # below: rounding noise of a zero direction
        sigma2 = eigenvalues[keep]
        z = (vectors[:, keep].T @ (features.T @ targets)) / np.sqrt(sigma2)[:, None]
    else:
        u, s, _ = np.linalg.svd(features, full_matrices=False)
        keep = s > s.max() * max(n, d) * eps
        sigma2, z = s[keep] ** 2, u[:, keep].T @ targets
    if not keep.any():
        raise ValueError("the features are all zero: no direction to fit the labels along")
    z2 = z**2
    outside = np.maximum((targets**2).sum(axis=0) - z2.sum(axis=0), 0.0)  # ≥ 0 but for rounding
    return _Spectrum(sigma2[:, None], z2, outside, n, d)


def _posterior(spectrum: _Spectrum, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For t = α/β per column: γ, the effective number of parameters; ‖m‖², the posterior mean's squared norm;
    and ‖F·m − y‖², its squared residual (m = β·A⁻¹·Fᵀy, A = αI + βFᵀF, in the singular basis)."""
    sigma2, z2 = spectrum.sigma2, spectrum.z2
    shrink = sigma2 + ratio  # (k, C)
    gamma = (sigma2 / shrink).sum(axis=0)
    m2 = (sigma2 * z2 / shrink**2).sum(axis=0)
    residual2 = (z2 * (ratio / shrink) ** 2).sum(axis=0) + spectrum.outside
    return gamma, m2, residual2


def _log_evidence(spectrum: _Spectrum, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """log p(y | F, α, β) / n per column, at exactly these α and β:
    n/2·log β + D/2·log α − n/2·log 2π − β/2·‖Fm − y‖² − α/2·‖m‖² − 1/2·log|A|.
    log|A| runs over all D eigenvalues of A: α + β·σ² along F's k singular directions and α along the D − k
    directions F does not span (the reference code's SVD route drops those when n < D)."""
    n, d, k = spectrum.n, spectrum.d, len(spectrum.sigma2)
    _, m2, residual2 = _posterior(spectrum, alpha / beta)
    log_det = np.log(alpha + beta * spectrum.sigma2).sum(axis=0) + (d - k) * np.log(alpha)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * residual2 - alpha / 2 * m2 - log_det / 2)
    return evidence / n
