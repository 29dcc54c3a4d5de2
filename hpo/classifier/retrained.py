"""What `hpo train` measured, as a frozen object; `Retrained.to_json()` is the model directory's `metrics.json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from hpo.spec import ExportedFrom
from hpo.train.config import TrainConfig

__all__ = ["BestValidation", "Retrained", "TrainOn"]

TrainOn = Literal["train", "train+validation"]


@dataclass(frozen=True)
class BestValidation:
    """The evaluation whose weights were kept: the objective's value there, its validation F1 and accuracy, number
    and epoch."""

    metric: str  # the study's objective as stored (val_f1, val_loss, ...): what picked the step
    value: float  # its value at that step
    f1: float
    accuracy: float
    evaluation: int
    epoch: float


@dataclass(frozen=True)
class Retrained:
    """What `hpo train` measured; `to_json()` is `metrics.json`."""

    validation: BestValidation | None  # None when trained on train + validation: nothing held out to pick by
    curve: tuple[tuple[int, float, float], ...]  # (evaluation, epoch, the objective's value) per evaluation
    test: dict[str, Any]  # hpo.classifier.evaluate.compute_metrics on the test split, with `n` and `dataset`
    trained_on: TrainOn
    train_seconds: float  # optimisation only, evaluations excluded: the trial's clock of the same name
    fit_seconds: float  # the whole fit to its last evaluation, evaluations included: the trial's clock too
    test_seconds: float  # loading the saved model back and scoring the test split
    config: TrainConfig
    exported_from: ExportedFrom | None

    def to_json(self) -> dict[str, Any]:
        return {
            "validation": asdict(self.validation) if self.validation is not None else None,
            "curve": [list(row) for row in self.curve],
            "test": self.test,
            "trained_on": self.trained_on,
            "train_seconds": self.train_seconds,
            "fit_seconds": self.fit_seconds,
            "test_seconds": self.test_seconds,
            "config": self.config.model_dump(mode="json"),
            "exported_from": self.exported_from.model_dump(mode="json") if self.exported_from else None,
        }
