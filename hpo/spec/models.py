"""The study file's models: `StudySpec` and the search space's entries, sampler and pruner.

Pydantic checks the structure (unknown keys are errors); spec/checks.py checks what needs two fields at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from hpo.errors import HpoError
from hpo.spec.names import MAX_NAME_LENGTH, NAME_PATTERN
from hpo.spec.sources import NO_SOURCE, SourceChoices, SourceEntry, source_key
from hpo.spec.trackers import TrackersSpec
from hpo.train.config import LAMBDA, NOT_SEARCHABLE, Strict, TrainConfig, current_names
from hpo.train.metrics import OBJECTIVES, ObjectiveName, ValidationObjective
from hpo.train.sources import DatasetSpec, ModelSpec

__all__ = ["ENTRY_TAGS", "SEARCHABLE", "Choice", "ExportedFrom", "KeepModels", "PrunerSpec", "Range", "SamplerSpec",
           "SearchEntry", "StudySpec", "older_export_names", "study_level_problems"]

MAX_TIMEOUT_S = 365 * 24 * 3600  # a deadline past a year is a typo (1.0e308 overflowed the date after storing)
SEARCHABLE = tuple(name for name in TrainConfig.model_fields if name not in NOT_SEARCHABLE)


class Range(Strict):
    """A float or int distribution; the training field's type decides which."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None
    target_only_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="target_weight only: share of trials run at λ = 1 (target only)."
    )


class Choice(Strict):
    choices: list[Any] = Field(min_length=1)


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "choice-entry" if "choices" in value else "range-entry"
    if isinstance(value, Range | Choice):
        return "choice-entry" if isinstance(value, Choice) else "range-entry"
    return "fixed-entry"


# The tags name the union's members in pydantic's error locations; hpo/spec/checks.py leaves them out of field paths.
ENTRY_TAGS = ("range-entry", "choice-entry", "fixed-entry")


SearchEntry = Annotated[
    Annotated[Range, Tag("range-entry")] | Annotated[Choice, Tag("choice-entry")] | Annotated[Any, Tag("fixed-entry")],
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


class KeepModels(Strict):
    """`keep_models`: the weights of the `top` best COMPLETE trials, each at its best evaluation, saved in the
    saved-classifier format under `dir` as the trials finish (search/kept.py)."""

    top: Annotated[int, Field(ge=1, le=1000)]
    dir: Path | None = Field(
        None, description="Where (a folder every worker sees; relative to the study file). Default: "
                          "HPO_CACHE/kept/<study name>."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"top": value} if isinstance(value, int) and not isinstance(value, bool) else value


class PrunerSpec(Strict):
    """The default is asynchronous successive halving (Optuna's SuccessiveHalvingPruner, reduction factor 3, from
    the first evaluation): with the default TPE it reached 99% of the best validation F1 sooner than Hyperband,
    random search, ASHA alone and a grid on the time-to-quality benchmark (benchmarks/time_to_quality/)."""

    name: Literal["hyperband", "median", "successive_halving", "none"] = "successive_halving"
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


def study_level_problems(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """What needs several of a study file's fields at once, read from the file's fields as given (so it runs even
    when other fields fail, and one `hpo validate` reports everything); spec/load.py runs it on every file."""
    problems = []
    if fields.get("n_trials") is None and fields.get("timeout") is None:
        problems.append(("", "give n_trials, timeout or both"))
    target, source = fields.get("target"), fields.get("source")
    own_validation = [key for key in ("validation_path", "validation_split")
                      if isinstance(target, dict) and target.get(key) is not None]
    if own_validation and fields.get("validation_size") is not None:
        problems.append(("validation_size", f"the target brings its own validation split ({own_validation[0]}); "
                                            "leave validation_size out"))
    for key in ("validation_path", "validation_split"):
        if isinstance(source, dict) and source.get(key) is not None:
            problems.append((f"source -> {key}", "only the target is validated on; the source has no validation "
                                                 "split"))
    return problems


class ExportedFrom(Strict):
    """Where an exported study file (or the k best configs) came from, written by `hpo export`: the study, its
    file's hash, model, data fingerprint and package versions, and the trial (its number, value, parameters)."""

    study: str
    spec_sha256: str
    data: dict[str, Any]
    model: dict[str, Any]
    packages: dict[str, str | None]
    git_commit: str | None = None
    exported_at: str
    trial: int | None = None
    metric: str = "val_f1"
    value: float | None = None
    best_evaluation: int | None = None
    best_epoch: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, value: Any) -> Any:
        return older_export_names(value)


def older_export_names(value: Any) -> Any:
    """An export written before the names settled: `val_f1` is the value, `best_step` the best evaluation."""
    if isinstance(value, dict):
        renamed = {"val_f1": "value", "best_step": "best_evaluation"}
        value = {renamed.get(key, key): item for key, item in value.items()}
    return value


class StudySpec(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)
    model: ModelSpec = ModelSpec(id="bundled:all-MiniLM-L6-v2")
    source: SourceEntry
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
    timeout: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] | None = Field(
        None, description="Seconds from the study's creation after which no trial starts (at most a year)."
    )
    max_retries: Annotated[int, Field(ge=0, le=100)] = Field(
        3, description="Retries of a trial whose worker died or was preempted; then its params are poisonous."
    )
    objective: ObjectiveName = Field(
        "f1", description="The validation metric searched: f1 (training.f1_average), accuracy, mcc, auroc (macro, "
                          "one-vs-rest) or loss (cross-entropy, minimised). The study's direction follows it."
    )
    storage: str | None = Field(None, description="Storage URL without a password (use HPO_STORAGE for one).")
    keep_models: KeepModels | None = Field(
        None, description="Keep the K best trials' models as they finish (`keep_models: K` or {top: K, dir: PATH}); "
                          "`hpo export NAME --model DIR` writes one out with no retrain."
    )
    trackers: TrackersSpec | None = Field(
        None, description="Also record each trial as a run in MLflow and/or Weights & Biases (optional extras)."
    )
    exported_from: ExportedFrom | None = Field(
        None, description="Written by `hpo export`: the study, trial, its value and provenance it came from."
    )

    @model_validator(mode="before")
    @classmethod
    def _older_direction(cls, value: Any) -> Any:
        """Study texts written before `objective` existed (stored with a study, exported, beside a saved model)
        carry `direction: maximize`, which F1 implies; a direction that contradicts the objective is refused."""
        if not isinstance(value, dict) or "direction" not in value:
            return value
        value = dict(value)
        direction = value.pop("direction")
        objective = OBJECTIVES.get(str(value.get("objective", "f1")))
        if objective is not None and direction != objective.direction:
            raise ValueError(f"direction: {direction!r} contradicts objective {objective.name!r}, which is "
                             f"{objective.direction}d; leave direction out: the objective sets it")
        return value

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

    # -- derived, used by the space, pruner and provenance ------------------------------------------------

    @property
    def validation_objective(self) -> ValidationObjective:
        return OBJECTIVES[self.objective]

    @property
    def direction(self) -> str:
        """Optuna's direction for the study: the objective's (minimize for loss, else maximize)."""
        return self.validation_objective.direction

    def source_candidates(self) -> dict[str, DatasetSpec | None]:
        """The candidate source tasks by key (hpo/spec/sources.py); one for a study file with one source."""
        if isinstance(self.source, SourceChoices):
            return self.source.candidates()
        return {source_key(self.source): self.source}

    @property
    def searches_source(self) -> bool:
        return len(self.source_candidates()) > 1

    def trial_source(self, params: Mapping[str, Any]) -> str:
        """The key of the source a trial trained with: its `source` parameter, or the study's only source."""
        return str(params.get("source", next(iter(self.source_candidates()))))

    def searched(self) -> dict[str, Range | Choice]:
        return {k: v for k, v in self.search_space.items() if isinstance(v, Range | Choice)}

    def base_config(self) -> TrainConfig:
        """The training section with every fixed search-space value filled in."""
        fixed = {k: v for k, v in self.search_space.items() if not isinstance(v, Range | Choice)}
        return self.training.model_copy(update=fixed)

    def trial_config(self, params: Mapping[str, Any], **overrides: Any) -> TrainConfig:
        """The one way from a trial's parameters to what it trains with: the base config, the parameters (stored
        names read as today's: `source_weight` is `target_weight`) and `overrides` (any training field: a seed, a
        freeze depth), validated as the training section is. A trial without a source (`source: none`) trains on
        the target alone: λ = 1. HpoError for a parameter that is not a searchable field, or a value its field
        refuses."""
        params = current_names(params)
        if self.trial_source(params) == NO_SOURCE:
            overrides = {LAMBDA: 1.0, **overrides}
        params.pop("source", None)
        unknown = sorted(set(params) - set(SEARCHABLE)) + sorted(set(overrides) - set(TrainConfig.model_fields))
        if unknown:
            raise HpoError(f"study {self.name!r}: {', '.join(unknown)} is not a searchable training field "
                           f"(searchable: {', '.join(SEARCHABLE)})")
        try:
            return TrainConfig.model_validate({**self.base_config().model_dump(), **params, **overrides})
        except ValidationError as exc:
            bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                            for e in exc.errors())
            raise HpoError(f"study {self.name!r}: a trial's parameters do not make a training config: {bad}") from None

    def fixed_for(self, params: Mapping[str, Any], name: str) -> StudySpec:
        """This spec with a trial's values fixed in the search space and its source task (of a study that searches
        it) fixed too, one trial: what `hpo train` retrains, and the study text beside a kept or exported model."""
        config = self.trial_config(params)  # validated; λ under today's name (1 for a trial drawing no source)
        fixed = {field: getattr(config, field) for field in self.searched()}
        source = self.source_candidates()[self.trial_source(params)]
        return self.model_copy(update={
            "name": name, "search_space": {**self.search_space, **fixed},
            "source": source if source is not None else SourceChoices(choices=[NO_SOURCE]),  # `none`: target only
            "n_trials": 1, "timeout": None, "storage": None, "keep_models": None,
        })

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
