"""The transfer effect's statistics: a mean over seeds with its Student's t interval, a paired gain, and what the
gain's interval says."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["CI_METHOD", "CONFIDENCE", "INCONCLUSIVE", "NEGATIVE", "POSITIVE", "is_negative_transfer", "json_number",
           "json_numbers", "mean_ci", "paired_gain", "verdict"]

CONFIDENCE = 0.95
CI_METHOD = (
    "95% confidence interval over seeds with Student's t: mean ± t(0.975, n-1) · s / √n, s the sample standard "
    "deviation of the n per-seed values (scipy.stats.t). The gain is transfer - target only paired by seed: the "
    "same interval over the n per-seed differences. Zero-shot involves no training or seed, so its n values are "
    "identical and its interval has width 0. With n = 1 the intervals are undefined."
)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its two-sided Student's t interval (n - 1 degrees of freedom).
    One value: (value, nan, nan), the interval is undefined. Identical values: an interval of width 0."""
    if not len(values):
        raise ValueError("mean_ci needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_gain(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of a - b paired element by element (by seed): the t interval of the differences."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same length (got {len(a)} and {len(b)})")
    return mean_ci([x - y for x, y in zip(a, b, strict=True)], confidence)


POSITIVE, NEGATIVE, INCONCLUSIVE = "positive", "NEGATIVE TRANSFER", "inconclusive"


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    """What the gain's interval says: positive (all of it above 0), NEGATIVE TRANSFER (all below 0), or
    inconclusive (it holds 0, or is undefined)."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    return POSITIVE if ci_low > 0 else NEGATIVE if ci_high < 0 else INCONCLUSIVE


def is_negative_transfer(ci_high: float) -> bool:
    """The source task hurt: the gain's whole interval is below 0. An undefined interval (NaN) flags nothing."""
    return not math.isnan(ci_high) and ci_high < 0


def json_number(value: float | None) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def json_numbers(values: Sequence[float]) -> list[float | None]:
    return [json_number(v) for v in values]
