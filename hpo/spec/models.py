"""The study file's models: `StudySpec` and the search space's entries, sampler and pruner.

Pydantic checks the structure (unknown keys are errors); spec/checks.py checks what needs two fields at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from hpo.spec.names import MAX_NAME_LENGTH, NAME_PATTERN
from hpo.train.config import NOT_SEARCHABLE, Strict, TrainConfig
from hpo.train.sources import DatasetSpec, ModelSpec

__all__ = ["SEARCHABLE", "Choice", "PrunerSpec", "Range", "SamplerSpec", "SearchEntry", "StudySpec"]

SEARCHABLE = tuple(name for name in TrainConfig.model_fields if name not in NOT_SEARCHABLE)


class Range(Strict):
    """A float or int distribution; the training field's type decides which."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None
    target_only_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="source_weight only: share of trials run at λ = 1 (target only)."
    )


class Choice(Strict):
    choices: list[Any] = Field(min_length=1)


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "choices" if "choices" in value else "range"
    if isinstance(value, Range | Choice):
        return "choices" if isinstance(value, Choice) else "range"
    return "fixed"


SearchEntry = Annotated[
    Annotated[Range, Tag("range")] | Annotated[Choice, Tag("choices")] | Annotated[Any, Tag("fixed")],
    Discriminator(_entry_kind),
]


class SamplerSpec(Strict):
    name: Literal["tpe", "random", "gp", "qmc", "cmaes"] = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0)] = Field(
        10, description="Random trials before TPE/GP/CMA-ES start modelling."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class PrunerSpec(Strict):
    name: Literal["hyperband", "median", "successive_halving", "none"] = "hyperband"
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    min_resource: Annotated[int, Field(ge=1)] = Field(1, description="Evaluations before the first rung.")
    n_startup_trials: Annotated[int, Field(ge=0)] = Field(2, description="median: trials before pruning.")
    n_warmup_steps: Annotated[int, Field(ge=0)] = Field(0, description="median: evaluations never pruned.")
    patience: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Also require this many evaluations without improvement (Optuna's PatientPruner)."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class StudySpec(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)
    model: ModelSpec = ModelSpec(id="bundled:all-MiniLM-L6-v2")
    source: DatasetSpec
    target: DatasetSpec
    validation_size: Annotated[float, Field(gt=0, lt=1)] | Annotated[int, Field(ge=2)] = Field(
        0.2, description="Carved from the target's training split: a fraction, or a number of documents."
    )
    training: TrainConfig = TrainConfig()
    search_space: dict[str, SearchEntry] = Field(default_factory=dict)
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    n_trials: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="The study's total budget: COMPLETE + PRUNED trials over every run and process."
    )
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds from the study's creation after which no trial starts."
    )
    max_retries: Annotated[int, Field(ge=0, le=100)] = Field(
        3, description="Retries of a trial whose worker died or was preempted; then its params are poisonous."
    )
    direction: Literal["maximize"] = "maximize"
    storage: str | None = Field(None, description="Storage URL without a password (use HPO_STORAGE for one).")
    exported_from: dict[str, Any] | None = Field(
        None, description="Written by `hpo export`: the study, trial, validation F1 and provenance it came from."
    )

    @field_validator("storage")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from hpo.errors import StorageError
        from hpo.settings import StorageURL

        try:
            url = StorageURL.parse(value)
        except StorageError:
            raise ValueError("not a database URL (e.g. sqlite:///hpo.db, postgresql+psycopg2://user@host/db)") from None
        if url.secrets:
            raise ValueError("must not hold a password or other secret (user:password@, ?password=, "
                             "?sslpassword=, ...); put the URL in HPO_STORAGE or pass --storage instead")
        return value

    @model_validator(mode="after")
    def _has_budget(self) -> StudySpec:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give n_trials, timeout or both")
        return self

    # -- derived, used by the space, pruner and provenance ------------------------------------------------

    def searched(self) -> dict[str, Range | Choice]:
        return {k: v for k, v in self.search_space.items() if isinstance(v, Range | Choice)}

    def base_config(self) -> TrainConfig:
        """The training section with every fixed search-space value filled in."""
        fixed = {k: v for k, v in self.search_space.items() if not isinstance(v, Range | Choice)}
        return self.training.model_copy(update=fixed)

    def max_evaluations(self) -> int:
        """The pruner's resource: evaluations in the longest trial the space allows."""
        epochs = self.search_space.get("epochs", self.training.epochs)
        if isinstance(epochs, Range):
            epochs = epochs.high
        elif isinstance(epochs, Choice):
            epochs = max(epochs.choices)
        return int(epochs) * self.training.evaluations_per_epoch

    def space_fingerprint(self) -> dict[str, Any]:
        """What a re-run must keep: every tunable field, searched or fixed."""
        base = self.base_config().model_dump(mode="json")
        fixed = {k: base[k] for k in SEARCHABLE}
        searched = {k: v.model_dump(mode="json") for k, v in self.searched().items()}
        return {"fixed": {k: v for k, v in fixed.items() if k not in searched}, "searched": searched}
