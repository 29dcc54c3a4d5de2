"""Everything a study needs, checked before anything is stored or trained, every problem in one pass: the study
file's structure (hpo/spec), the model against the study (its family, its layers against `freeze_depth`, its
positions against `max_length`) and the data (files, columns, classes, sizes). `hpo validate` reports them all from
one run; `hpo run` refuses on any of them.

Where the structure fails, the model and data sections that validate on their own are still checked, so a file
with mistakes in several places is fixed in one edit, not in passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from hpo.errors import DataError, HpoError, SpecError
from hpo.spec import (
    Choice,
    DatasetSpec,
    ModelSpec,
    Range,
    StudySpec,
    read_study_file,
    resolve_dataset,
    resolve_model,
    structure_problems,
)
from hpo.spec.sources import SourceChoices
from hpo.train.config import TrainConfig

if TYPE_CHECKING:
    from hpo.train.data import TaskData

__all__ = ["StudyCheck", "check_study_file", "data_problems", "model_problems", "study_warnings"]

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class StudyCheck:
    """A study file that passed every check: its spec, text, data (when loaded) and what is worth a warning."""

    spec: StudySpec
    text: str
    data: TaskData | None
    warnings: tuple[str, ...]


def check_study_file(path: Path, *, data: bool = True) -> StudyCheck:
    """Check a study file whole (the data unless `data` is off); SpecError listing every problem at once."""
    raw, text = read_study_file(path)
    source, base_dir = str(path), Path(path).absolute().parent
    spec, problems = structure_problems(raw, source=source, base_dir=base_dir)
    sections = _Sections(spec, raw, base_dir)
    problems += model_problems(sections.model, sections.highest)
    task = None
    if data:
        choices = sections.source if isinstance(sections.source, SourceChoices) else None
        single = None if choices is not None else sections.source
        if choices is not None and len(choices.choices) == 1 and isinstance(choices.choices[0], DatasetSpec):
            single, choices = choices.choices[0], None
        task, found = data_problems(single, sections.target, validation_size=sections.validation_size,
                                    seed=sections.seed)
        problems += found + (candidate_problems(choices, sections.seed) if choices is not None else [])
    if problems or spec is None:
        raise SpecError(source, list(dict.fromkeys(problems)))
    return StudyCheck(spec, text, task, study_warnings(spec))


def model_problems(model: ModelSpec | None, highest: Any) -> Problems:
    """What the model's config says against the study: its family, the highest `freeze_depth` and `max_length`
    the study can ask for (`highest(name)` -> (value, field path), or None where it is not known)."""
    from hpo.train.model import model_shape

    if model is None:  # the section's own problems are reported already
        return []
    try:
        shape = model_shape(model)
    except HpoError as exc:
        return [("model -> id", str(exc))]
    problems = []
    if (depth := highest("freeze_depth")) and depth[0] > shape.depth:
        problems.append((depth[1], f"{depth[0]} exceeds the {shape.depth} layers of {model.id} (0 .. {shape.depth})"))
    if (longest := highest("max_length")) and shape.max_length is not None and longest[0] > shape.max_length:
        problems.append((longest[1], f"{longest[0]} exceeds the {shape.max_length} positions of {model.id} "
                                     f"({shape.family}); at most {shape.max_length}"))
    return problems


def data_problems(source: DatasetSpec | None, target: DatasetSpec | None, *, validation_size: float | int,
                  seed: int) -> tuple[TaskData | None, Problems]:
    """Load both datasets (each on its own, so both can report); the data, or the problems found."""
    from hpo.train.data import TaskData, load_corpus, target_splits

    problems: Problems = []
    loaded: dict[str, Any] = {}
    for role, dataset in (("source", source), ("target", target)):
        if dataset is None:
            continue
        try:
            loaded[role] = load_corpus(dataset, role, seed) if role == "source" else \
                target_splits(dataset, validation_size=validation_size, seed=seed)
        except DataError as exc:
            problems.append(_data_problem(role, str(exc)))
    if problems or "target" not in loaded:
        return None, problems
    return TaskData(loaded.get("source"), *loaded["target"]), []


def candidate_problems(choices: SourceChoices, seed: int) -> Problems:
    """Every candidate source of a study that searches the source, loaded once each (`hpo validate` checks them
    all; a run loads only those its trials draw)."""
    from hpo.train.data import load_corpus

    problems: Problems = []
    for number, choice in enumerate(choices.choices):
        if isinstance(choice, DatasetSpec):
            try:
                load_corpus(choice, "source", seed)
            except DataError as exc:
                path, message = _data_problem("source", str(exc))
                problems.append((f"source -> choices -> {number}" + path.removeprefix("source"), message))
    return problems


def study_warnings(spec: StudySpec) -> tuple[str, ...]:
    """What a valid study file leaves out that a user may want later."""
    if spec.target.has_test:
        return ()
    return (f"target {spec.target.label} has no test split (test_path): the search runs, but `hpo train`, "
            "`hpo evaluate` and `hpo transfer-effect` need one to evaluate on; add test_path: FILE",)


def _data_problem(role: str, message: str) -> tuple[str, str]:
    """A DataError as a field-path problem: `[path] message` keeps its path, anything else is the dataset's."""
    if message.startswith("[") and "] " in message:
        path, _, rest = message[1:].partition("] ")
        return path, rest
    return role, message


class _Sections:
    """The model and data sections of a study file: from the spec when it validates, else each section that
    validates on its own (its paths resolved), so that they can be checked even where other fields fail."""

    def __init__(self, spec: StudySpec | None, raw: dict[str, Any], base_dir: Path) -> None:
        self.spec, self.raw, self.base_dir = spec, raw, base_dir
        if spec is not None:
            self.model, self.source, self.target = spec.model, spec.source, spec.target
            self.validation_size, self.seed = spec.validation_size, spec.training.seed
            return
        model = _alone(ModelSpec, raw.get("model", StudySpec.model_fields["model"].default.model_dump()))
        resolved, missing = resolve_model(model, base_dir) if model is not None else (None, None)
        self.model = None if missing else resolved  # a missing directory is reported already
        self.source, self.target = _source(raw.get("source"), base_dir), _dataset(raw.get("target"), base_dir)
        size = raw.get("validation_size", StudySpec.model_fields["validation_size"].default)
        self.validation_size = size if isinstance(size, int | float) and not isinstance(size, bool) else 0.2
        seed = (raw.get("training") or {}).get("seed", 0) if isinstance(raw.get("training"), dict) else 0
        self.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0

    def highest(self, name: str) -> tuple[int, str] | None:
        """The highest value a training field can take in the study, and the field path that sets it."""
        space = self.spec.search_space if self.spec else self.raw.get("search_space") or {}
        training = self.spec.training.model_dump() if self.spec else self.raw.get("training") or {}
        where = f"search_space -> {name}" if name in space else f"training -> {name}"
        entry = space.get(name, training.get(name, TrainConfig.model_fields[name].default)) \
            if isinstance(space, dict) and isinstance(training, dict) else None
        if isinstance(entry, Range | Choice):
            entry = entry.model_dump()
        if isinstance(entry, dict):
            entry = entry.get("high", max(entry.get("choices") or [None], key=lambda v: v if _number(v) else -1))
        return (int(entry), where) if _number(entry) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _alone(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _source(value: Any, base_dir: Path) -> DatasetSpec | SourceChoices | None:
    if isinstance(value, dict) and "choices" in value:
        choices = _alone(SourceChoices, value)
        return choices.model_copy(update={"choices": [resolve_dataset(c, base_dir) if isinstance(c, DatasetSpec) else c
                                                      for c in choices.choices]}) if choices is not None else None
    return _dataset(value, base_dir)


def _dataset(value: Any, base_dir: Path) -> DatasetSpec | None:
    dataset = _alone(DatasetSpec, value)
    return resolve_dataset(dataset, base_dir) if dataset is not None else None
