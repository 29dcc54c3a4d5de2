"""`hpo.retrain`, `hpo.evaluate`, `hpo.predict`: the chosen model from Python, through the functions `hpo train`,
`hpo evaluate` and `hpo predict` call. Importing this module imports torch (the saved format registers itself with
transformers), which is why `hpo` imports it only when one of these is first used."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

from hpo.api._console import Progress, console_for
from hpo.classifier.evaluate import evaluate_dir, open_classifier
from hpo.classifier.predict import predict_texts
from hpo.classifier.retrain import Retrained
from hpo.classifier.retrain import retrain as _retrain
from hpo.classifier.retrained import TrainOn
from hpo.errors import HpoError
from hpo.search.progress import FitProgress

__all__ = ["Prediction", "Retrained", "TestMetrics", "evaluate", "predict", "retrain"]


@dataclass(frozen=True)
class TestMetrics:
    """A saved classifier on its study's test split: what `hpo evaluate` prints and writes to test_metrics.json
    (`hpo.classifier.evaluate.compute_metrics`, plus `n` and `dataset`)."""

    __test__ = False  # a name pytest would otherwise collect as a test class

    accuracy: float
    precision: dict[str, float]  # macro, micro, weighted
    recall: dict[str, float]
    f1: dict[str, float]
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support, predicted
    classes: list[str]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class, in `classes` order
    macro_excluded: list[str]  # classes neither in the test split nor predicted: outside the macro average
    n: int  # test documents
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        """test_metrics.json, as written."""
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """One text's label: the most probable class and every class's probability (`hpo predict`'s `label` and
    `p_<class>` columns)."""

    label: str
    probabilities: dict[str, float]


def retrain(study_file: str | os.PathLike[str], *, out: str | os.PathLike[str], train_on: TrainOn = "train",
            progress: Progress = None) -> Retrained:
    """`hpo train EXPORTED.yaml --out DIR`: retrain an exported config (every field fixed), save it as a Hugging
    Face classifier in `out`, evaluate it on the test split; returns what `out/metrics.json` holds. `progress`:
    the live epoch, step, validation objective and ETA line on the terminal (or on the Console given)."""
    choices = get_args(TrainOn)
    if train_on not in choices:
        raise HpoError(f"train_on must be one of {', '.join(choices)} (got {train_on!r})")
    console = console_for(progress)
    with FitProgress(console, f"training {study_file}") as shown:
        return _retrain(Path(study_file), Path(out), train_on=train_on, on_eval=shown.evaluated, on_step=shown.step,
                        on_start=shown.started_training)


def evaluate(model_dir: str | os.PathLike[str]) -> TestMetrics:
    """`hpo evaluate MODEL_DIR`: a classifier saved by `retrain` on its study's test split; also writes
    test_metrics.json and confusion_matrix.html into `model_dir`, as the command does."""
    console_for(None)
    return TestMetrics(**evaluate_dir(Path(model_dir)))


def predict(model_dir: str | os.PathLike[str], texts: Sequence[str]) -> list[Prediction]:
    """`hpo predict MODEL_DIR -`: the label of each text, in order (the command's rows for the same texts)."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise HpoError(f"texts: give a list of strings, not a {type(texts).__name__}")
    console_for(None)
    return [_prediction(row) for row in predict_texts(open_classifier(Path(model_dir)), texts)]


def _prediction(row: Mapping[str, Any]) -> Prediction:
    return Prediction(label=row["label"], probabilities=dict(row["probabilities"]))
