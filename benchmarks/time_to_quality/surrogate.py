"""A surrogate of a whole fine-tune, fitted on the recorded table: for any configuration of the continuous space, its
validation macro-F1 at every evaluation, the test macro-F1 of its best step, and the noise between seeds.

As YAHPO Gym and HPOBench build theirs: one tree ensemble per evaluation index over the configuration's features
(log axes as logs), here scikit-learn's ExtraTreesRegressor fully grown without bootstrap, so that at a recorded
configuration it returns the recorded curve (the mean of its seeds) and between them it interpolates piecewise.
The noise between seeds is measured on the configurations recorded twice (the standard deviation of one run about
the mean of two: |a − b| / 2 averaged in quadrature, per evaluation), and a replay adds it to each curve it draws.
`validate` fits on all but a fold of configurations and predicts the held-out ones: rank correlation (Spearman)
and error of their best validation F1, beside the seed noise, so the surrogate is judged against how well a second
real run would predict the first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.time_to_quality.space import AXES, features

__all__ = ["Record", "Surrogate", "load_records", "seed_noise", "validate"]


@dataclass(frozen=True)
class Record:
    """One recorded fine-tune."""

    config: dict[str, Any]
    seed: int
    values: tuple[float, ...]  # validation macro-F1 at each evaluation
    test_f1: float  # the test macro-F1 of the weights of its best validation step

    @property
    def key(self) -> tuple[float, ...]:
        return tuple(float(self.config[a]) for a in AXES)


def load_records(paths: list[Path]) -> list[Record]:
    """Every run of the recorded shard files (JSON lines of record_table.py)."""
    records = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                raw = json.loads(line)
                records.append(Record({a: raw["params"][a] for a in AXES}, int(raw["seed"]),
                                      tuple(float(e["val_f1"]) for e in raw["curve"]), float(raw["test_f1"])))
    return records


def _model(seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(n_estimators=200, min_samples_leaf=1, bootstrap=False, random_state=seed, n_jobs=1)


@dataclass
class Surrogate:
    curves: Any  # one regressor predicting the whole curve (a multi-output target: one column per evaluation)
    test: Any  # the test F1 of the best step
    noise: tuple[float, ...]  # seed noise per evaluation (standard deviation)
    evaluations: int

    @classmethod
    def fit(cls, records: list[Record], seed: int = 0) -> Surrogate:
        x = np.array([features(r.config) for r in records])
        curves = _model(seed).fit(x, np.array([r.values for r in records]))
        test = _model(seed).fit(x, np.array([r.test_f1 for r in records]))
        return cls(curves, test, seed_noise(records), len(records[0].values))

    def curve(self, config: dict[str, Any]) -> np.ndarray:
        """The expected validation F1 at each evaluation of `config` (no seed noise)."""
        return self.curves.predict(np.array([features(config)]))[0]

    def test_f1(self, config: dict[str, Any]) -> float:
        return float(self.test.predict(np.array([features(config)]))[0])

    def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """A curve as one real run of `config` gives it: the expectation plus seed noise, within [0, 1]."""
        return np.clip(self.curve(config) + rng.normal(0.0, self.noise), 0.0, 1.0)


def seed_noise(records: list[Record]) -> tuple[float, ...]:
    """Per evaluation, the standard deviation of one run about the mean of its configuration's two seeds."""
    by_config: dict[tuple[float, ...], list[Record]] = {}
    for record in records:
        by_config.setdefault(record.key, []).append(record)
    pairs = [runs[:2] for runs in by_config.values() if len(runs) >= 2]
    if not pairs:
        return tuple(0.0 for _ in records[0].values)
    diffs = np.array([np.subtract(a.values, b.values) for a, b in pairs])
    return tuple(float(v) for v in np.sqrt(np.mean((diffs / 2) ** 2, axis=0)))


def validate(records: list[Record], folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Held-out accuracy of the surrogate: configurations (all their seeds) split into `folds`; each fold predicted
    by a surrogate fitted on the others. Spearman and mean absolute error of the best validation F1 of a curve (and
    of the final one), against those of a second seed predicting the first."""
    from scipy.stats import spearmanr

    keys = sorted({r.key for r in records})
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = {keys[i]: n % folds for n, i in enumerate(order)}
    predicted, real = [], []
    for fold in range(folds):
        train = [r for r in records if fold_of[r.key] != fold]
        held = [r for r in records if fold_of[r.key] == fold and r.seed == 0]
        if not held:
            continue
        model = Surrogate.fit(train, seed)
        predicted += [model.curve(r.config) for r in held]
        real += [np.array(r.values) for r in held]
    best_pred, best_real = [p.max() for p in predicted], [r.max() for r in real]
    pairs = _seed_pairs(records)
    return {
        "held_out_runs": len(real), "folds": folds,
        "spearman_best": float(spearmanr(best_pred, best_real).statistic),
        "mae_best": float(np.mean(np.abs(np.subtract(best_pred, best_real)))),
        "spearman_final": float(spearmanr([p[-1] for p in predicted], [r[-1] for r in real]).statistic),
        "mae_per_evaluation": [float(v) for v in np.mean(np.abs(np.subtract(predicted, real)), axis=0)],
        "seed_noise": list(seed_noise(records)),
        "second_seed": {  # how well one real run predicts another of the same configuration
            "pairs": len(pairs),
            "spearman_best": float(spearmanr([max(a) for a, _ in pairs], [max(b) for _, b in pairs]).statistic)
            if len(pairs) > 2 else math.nan,
            "mae_best": float(np.mean([abs(max(a) - max(b)) for a, b in pairs])) if pairs else math.nan,
        },
    }


def _seed_pairs(records: list[Record]) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    by_config: dict[tuple[float, ...], dict[int, Record]] = {}
    for record in records:
        by_config.setdefault(record.key, {})[record.seed] = record
    return [(runs[0].values, runs[1].values) for runs in by_config.values() if 0 in runs and 1 in runs]
