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
from hpo.train.config import NOT_SEARCHABLE, TrainConfig, reject_bool

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
# A study name becomes a file name (.hpo/launches/NAME.json), a database key and a label: letters, digits, . _ -,
# starting with a letter or digit (so never a path), and short enough for every database and file system.
MAX_NAME_LENGTH = 128
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_RULE = f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME_LENGTH} characters"
SEARCHABLE = tuple(name for name in TrainConfig.model_fields if name not in NOT_SEARCHABLE)
MAX_FILE_BYTES = 1 << 20  # a study file is a page of YAML; this bounds what validation reads
MAX_YAML_NODES = 100_000  # values after expanding aliases: a few hundred in any real study file


def check_study_name(name: str) -> str:
    """`name` if it is a valid study name, else HpoError saying what a name may hold."""
    from hpo.errors import HpoError

    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        shown = name if len(str(name)) <= 60 else f"{str(name)[:57]}..."
        raise HpoError(f"{shown!r} is not a study name: {NAME_RULE}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: Any) -> Any:
        return reject_bool(value, cls.model_fields[info.field_name].annotation)


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

    @property
    def test_label(self) -> str:
        """What the test split is called in messages and outputs: its own file, not the training file."""
        if self.path is not None:
            return str(self.test_path) if self.test_path is not None else f"{self.path} (no test_path)"
        return f"{self.label} (test split)"


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
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=_NAME.pattern)
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


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; raises SpecError naming the file and every bad field."""
    path = Path(path)
    raw = read_yaml(path)
    if "name" not in raw:
        raw["name"] = path.stem
        if len(path.stem) > MAX_NAME_LENGTH or not _NAME.fullmatch(path.stem):
            raise SpecError(str(path), [("name", f"defaults to the file name {path.stem[:60]!r}, which is not a "
                                                 f"valid study name ({NAME_RULE}); set name:")])
    return parse_spec(raw, source=str(path), base_dir=path.parent)


def read_yaml(path: Path) -> dict[str, Any]:
    """A study file as a mapping: at most MAX_FILE_BYTES of UTF-8 YAML, no key twice in a mapping, at most
    MAX_YAML_NODES values once aliases are expanded (a few lines of anchors can otherwise expand to billions)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(str(path), [("", f"the file is {size:,} bytes; a study file is at most "
                                              f"{MAX_FILE_BYTES:,}")])
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the study file: {exc.strerror}")]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError(str(path), [("", "the file is UTF-16 text; save it as UTF-8")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [("", f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                                          "save it as UTF-8")]) from None
    try:
        raw = _StrictLoader.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(str(path), [("", f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(str(path), [("", "a study file is a YAML mapping of fields")])
    return raw


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML silently keeps the last) and a
    document that expands to more than MAX_YAML_NODES values. Written by hand: PyYAML has neither check."""

    @classmethod
    def load(cls, text: str) -> Any:
        loader = cls(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node, {})
            return loader.construct_document(node)
        finally:
            loader.dispose()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {seen[key]})", key_node.start_mark)
            seen.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """Values in `node` with every alias expanded; raises once past MAX_YAML_NODES or on a recursive alias."""
    known = sizes.get(id(node), 0)
    if known is None:
        raise yaml.composer.ComposerError(None, None, "an alias refers to itself", node.start_mark)
    if known:
        return known
    sizes[id(node)] = None
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
    size = 1 + sum(_expanded_size(child, sizes) for child in children)
    if size > MAX_YAML_NODES:
        raise yaml.composer.ComposerError(None, None, f"the document expands to more than {MAX_YAML_NODES:,} "
                                          "values (aliases repeat what they refer to)", node.start_mark)
    sizes[id(node)] = size
    return size


def parse_spec(raw: dict[str, Any], *, source: str, base_dir: Path | None = None) -> StudySpec:
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(err) for err in exc.errors()))  # a union reports each member
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
    annotation = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return TypeAdapter(annotation, config=ConfigDict(allow_inf_nan=False))


def _validated(adapter: TypeAdapter, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) and adapter.core_schema.get("type") != "bool":  # YAML true/false: not numbers
        return value, f"expected a number or text, got a boolean ({str(value).lower()})"
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
_UNION_MEMBERS = {"int", "float", "str", "bool", "constrained-int", "constrained-float"}


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(str(part) for part in err["loc"] if part not in ("range", "choices", "fixed"))
    loc = tuple(p for p in loc if not p.startswith(("function-", "tagged-union")) and p not in _UNION_MEMBERS)
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
