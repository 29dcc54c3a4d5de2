"""A study file, validated once: `load_spec(path) -> StudySpec`.

Pydantic checks the structure (unknown keys are errors); a second pass checks what needs two fields at once
(search-space bounds against the training field's constraints, the sampler against the space). Every problem
is reported with the file, the field path and what would be right, all at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from hpo.errors import SpecError
from hpo.train.config import NOT_SEARCHABLE, TrainConfig

__all__ = [
    "BUILTIN_DATASETS",
    "BUNDLED_MODELS",
    "Choice",
    "DatasetSpec",
    "ModelSpec",
    "PrunerSpec",
    "Range",
    "SamplerSpec",
    "StudySpec",
    "load_spec",
    "parse_spec",
]

BUILTIN_DATASETS = ("20newsgroups", "reuters-r8", "reuters-r52")
BUNDLED_MODELS = ("all-MiniLM-L6-v2",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SEARCHABLE = tuple(name for name in TrainConfig.model_fields if name not in NOT_SEARCHABLE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    id: str = Field(description="Hub id, local directory, or `bundled:all-MiniLM-L6-v2` (offline).")
    pooling: Literal["mean", "cls"] = "mean"
    trust_remote_code: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @field_validator("id")
    @classmethod
    def _known_bundle(cls, value: str) -> str:
        if value.startswith("bundled:") and value.removeprefix("bundled:") not in BUNDLED_MODELS:
            raise ValueError(f"unknown bundled model {value!r}; bundled: {', '.join(BUNDLED_MODELS)}")
        return value


class DatasetSpec(_Strict):
    """Exactly one of `builtin`, `path` or `hub` says where the data comes from."""

    builtin: str | None = Field(None, description=f"One of {', '.join(BUILTIN_DATASETS)}.")
    path: Path | None = Field(None, description="Local CSV, JSON/JSONL or Parquet file (training data).")
    test_path: Path | None = Field(None, description="Local file holding the test split, if any.")
    hub: str | None = Field(None, description="A Hugging Face dataset id, loaded with `datasets`.")
    hub_config: str | None = None
    train_split: str = "train"
    test_split: str | None = "test"
    text_column: str = "text"
    label_column: str = "label"
    max_samples: Annotated[int, Field(ge=2)] | None = Field(
        None, description="Stratified, seeded subsample of the training split."
    )

    @field_validator("builtin")
    @classmethod
    def _known_builtin(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_DATASETS:
            raise ValueError(f"unknown dataset {value!r}; built-in datasets: {', '.join(BUILTIN_DATASETS)}")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> DatasetSpec:
        given = [key for key in ("builtin", "path", "hub") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of builtin, path or hub (got {', '.join(given) or 'none'})")
        if self.test_path is not None and self.path is None:
            raise ValueError("test_path goes with path")
        return self

    @property
    def label(self) -> str:
        return self.builtin or self.hub or str(self.path)


class Range(_Strict):
    """A float or int distribution; the training field's type decides which."""

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None
    target_only_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="source_weight only: share of trials run at λ = 1 (target only)."
    )


class Choice(_Strict):
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


class SamplerSpec(_Strict):
    name: Literal["tpe", "random", "gp", "qmc", "cmaes"] = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0)] = Field(
        10, description="Random trials before TPE/GP/CMA-ES start modelling."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class PrunerSpec(_Strict):
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


class StudySpec(_Strict):
    name: str = Field(min_length=1, pattern=_NAME.pattern)
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
    n_trials: Annotated[int, Field(ge=1)] | None = Field(
        None, description="The study's total budget: COMPLETE + PRUNED trials over every run and process."
    )
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds from the study's creation after which no trial starts."
    )
    max_retries: Annotated[int, Field(ge=0)] = Field(
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
        from sqlalchemy.engine import make_url

        try:
            url = make_url(value)
        except Exception:
            raise ValueError("not a database URL (e.g. sqlite:///hpo.db, postgresql+psycopg2://user@host/db)") from None
        if url.password or any(key.lower() in ("password", "pass", "passwd") for key in url.query):
            raise ValueError(
                "must not hold a password; put the URL in HPO_STORAGE or pass --storage instead"
            )
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


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; raises SpecError naming the file and every bad field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the study file: {exc.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(str(path), [("", f"not valid YAML: {where}{getattr(exc, 'problem', exc)}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(str(path), [("", "a study file is a YAML mapping of fields")])
    if "name" not in raw:
        raw["name"] = path.stem
        if not _NAME.fullmatch(path.stem):
            raise SpecError(str(path), [("name", f"defaults to the file name {path.stem!r}, which is not a valid "
                                                 "study name (letters, digits, . _ -); set name:")])
    return parse_spec(raw, source=str(path), base_dir=path.parent)


def parse_spec(raw: dict[str, Any], *, source: str, base_dir: Path | None = None) -> StudySpec:
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        # Report the search space's own problems in the same pass, so one edit fixes everything.
        if not any(path.startswith("search_space") for path, _ in problems):
            problems += _search_space_problems_alone(raw)
        raise SpecError(source, problems) from None
    typed, problems = _check_search_space(spec.search_space, spec.sampler.name)
    if problems:
        raise SpecError(source, problems)
    spec = spec.model_copy(update={"search_space": typed})
    if base_dir is not None:
        spec = _resolve_paths(spec, base_dir)
    return spec


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# -- the second pass ---------------------------------------------------------------------------------------


def _search_space_problems_alone(raw: dict[str, Any]) -> list[tuple[str, str]]:
    sampler = raw.get("sampler")
    sampler_name = sampler.get("name") if isinstance(sampler, dict) else sampler
    try:
        space = TypeAdapter(dict[str, SearchEntry]).validate_python(raw.get("search_space") or {})
    except ValidationError:
        return []
    return _check_search_space(space, sampler_name)[1]


def _check_search_space(
    search_space: dict[str, Any], sampler_name: str | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Check each entry against the training field it tunes; return entries coerced to the field's type."""
    problems: list[tuple[str, str]] = []
    typed: dict[str, Any] = {}
    for name, entry in search_space.items():
        where = f"search_space -> {name}"
        if name not in TrainConfig.model_fields:
            problems.append((where, f"unknown field; searchable fields: {', '.join(SEARCHABLE)}"))
            continue
        if name in NOT_SEARCHABLE:
            problems.append((where, "is fixed for a study; set it under training instead"))
            continue
        field_check = _field_adapter(name)
        if isinstance(entry, Range):
            typed[name], entry_problems = _check_range(name, entry, field_check)
        elif isinstance(entry, Choice):
            values = [_validated(field_check, choice) for choice in entry.choices]
            entry_problems = [(f"choices[{i}]", err) for i, (_, err) in enumerate(values) if err]
            typed[name] = Choice(choices=[value for value, _ in values])
            if len({canonical_json(v) for v, _ in values}) != len(values):
                entry_problems.append(("choices", "lists a value twice"))
        else:
            value, err = _validated(field_check, entry)
            typed[name], entry_problems = value, ([("", err)] if err else [])
        problems += [(f"{where} -> {sub}" if sub else where, msg) for sub, msg in entry_problems]
    if sampler_name == "cmaes":
        categorical = [name for name, entry in typed.items() if isinstance(entry, Choice)]
        if categorical:
            problems.append(
                ("sampler -> name", f"cmaes cannot search categorical fields ({', '.join(categorical)}); "
                 "use tpe, gp, random or qmc, or give them ranges")
            )
    return typed, problems


def _check_range(name: str, entry: Range, field_check: TypeAdapter) -> tuple[Range, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    is_int = TrainConfig.model_fields[name].annotation is int
    kind = "int" if is_int else "float"
    if TrainConfig.model_fields[name].annotation not in (int, float):
        return entry, [("", f"{name} takes one of a set of values: write choices: [...]")]
    bounds = {}
    for key in ("low", "high"):
        value = getattr(entry, key)
        if is_int and not float(value).is_integer():
            problems.append((key, f"{name} is an int field; got {value}"))
            continue
        bounds[key], err = _validated(field_check, int(value) if is_int else float(value))
        if err:
            problems.append((key, err))
    if len(bounds) == 2 and bounds["low"] >= bounds["high"]:
        problems.append(("", f"low ({bounds['low']}) must be below high ({bounds['high']}); "
                             "for a fixed value write the value itself"))
    if entry.log and entry.step is not None:
        problems.append(("step", f"a {kind} range cannot have both log and step"))
    if entry.log and bounds.get("low", 1) <= 0:
        problems.append(("log", "a log range needs low > 0"))
    if entry.step is not None and entry.step <= 0:
        problems.append(("step", "must be > 0"))
    elif is_int and entry.step is not None and not float(entry.step).is_integer():
        problems.append(("step", f"{name} is an int field; step must be a whole number (got {entry.step})"))
    if entry.target_only_share and name != "source_weight":
        problems.append(("target_only_share", "only source_weight has target-only trials"))
    if entry.target_only_share and bounds.get("high") != 1:
        problems.append(("target_only_share", "needs high: 1.0 so that λ = 1 lies inside the range"))
    step = entry.step
    if is_int:
        step = int(step) if step is not None else (None if entry.log else 1)
    typed = entry.model_copy(update={**bounds, "step": step}) if not problems else entry
    return typed, problems


def _field_adapter(name: str) -> TypeAdapter:
    field = TrainConfig.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)


def _validated(adapter: TypeAdapter, value: Any) -> tuple[Any, str | None]:
    try:
        return adapter.validate_python(value), None
    except ValidationError as exc:
        err = exc.errors()[0]
        return value, f"{err['msg'][0].lower()}{err['msg'][1:]} (got {value!r})"


def _resolve_paths(spec: StudySpec, base_dir: Path) -> StudySpec:
    """Relative dataset paths are relative to the working directory, as a user types them; fall back to the
    study file's directory so a study file and its data can travel together."""
    updates = {}
    for role in ("source", "target"):
        dataset: DatasetSpec = getattr(spec, role)
        fixed = {}
        for key in ("path", "test_path"):
            value = getattr(dataset, key)
            relative_missing = value is not None and not value.is_absolute() and not value.exists()
            if relative_missing and (base_dir / value).exists():
                fixed[key] = base_dir / value
        if fixed:
            updates[role] = dataset.model_copy(update=fixed)
    return spec.model_copy(update=updates) if updates else spec


_SECRET_FIELDS = {("storage",)}


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(str(part) for part in err["loc"] if part not in ("range", "choices", "fixed"))
    loc = tuple(p for p in loc if not p.startswith(("function-", "tagged-union")))
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1]) if loc[0] != "search_space" else (Choice if "choices" in err["loc"] else Range)
        valid = f"; valid fields: {', '.join(parent.model_fields)}" if parent else ""
        return " -> ".join(loc), f"unknown field{valid}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    else:
        message = message[0].lower() + message[1:]
    if kind not in ("missing", "value_error") and loc not in _SECRET_FIELDS and "input" in err:
        message += f" (got {err['input']!r})"
    return " -> ".join(loc), message


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = StudySpec
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model
