"""Warm starts: `hpo run STUDY --enqueue FILE` queues the configs of a file written by `hpo export` (the k best of
another study, or one exported trial), checked against this study's search space, so that they run first.

The file is validated once, into `ExportedConfigs`: a config without `params` is refused (it would enqueue an empty
config, which the sampler fills at random), as is a parameter the study does not search or a value outside its space.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, model_validator

from hpo.errors import HpoError
from hpo.search.space import SOURCE
from hpo.spec import Choice, ExportedFrom, Range, StudySpec
from hpo.spec.checks import describe
from hpo.spec.models import older_export_names
from hpo.train.config import LAMBDA, Strict, current_names

if TYPE_CHECKING:
    import optuna

__all__ = ["ExportedConfig", "ExportedConfigs", "enqueue_exported", "enqueued_configs"]


class ExportedConfig(Strict):
    """One trial's parameters as `hpo export --top K` writes them."""

    trial: int | None = None
    metric: str = "val_f1"
    value: float | None = None
    best_evaluation: int | None = None
    best_epoch: float | None = None
    params: dict[str, Any] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, value: Any) -> Any:
        return older_export_names(value)


class ExportedConfigs(Strict):
    """What `--enqueue` reads: the k best configs of a study, or one exported study file (its trial's params)."""

    exported_from: ExportedFrom
    configs: list[ExportedConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_exported_study_file(cls, value: Any) -> Any:
        if isinstance(value, dict) and "configs" not in value and isinstance(value.get("exported_from"), dict):
            origin = value["exported_from"]
            return {"exported_from": origin, "configs": [{"params": origin.get("params") or {}}]}
        return value


def enqueued_configs(document: dict[str, Any], spec: StudySpec, source: str) -> list[dict[str, Any]]:
    """The parameter sets (today's names) an exported file asks to try first, checked against the study's space."""
    try:
        exported = ExportedConfigs.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"[{path}] {message}" if path else message
                             for path, message in dict.fromkeys(describe(e) for e in exc.errors()))
        raise HpoError(f"{source}: not a file written by `hpo export`: {problems}") from None
    searched = spec.searched()
    configs = [current_names(config.params) for config in exported.configs]
    for number, params in enumerate(configs):
        for name, value in params.items():
            if name == SOURCE and spec.searches_source:
                if value not in spec.source_candidates():
                    raise HpoError(f"{source}: config {number} has source = {value!r}, not one of study "
                                   f"{spec.name!r}'s candidate sources ({', '.join(spec.source_candidates())})")
                continue
            entry = searched.get(name)
            if entry is None:
                raise HpoError(f"{source}: config {number} sets {name}, which study {spec.name!r} does not search "
                               f"(searched: {', '.join(searched) or 'nothing'})")
            inside = value in entry.choices if isinstance(entry, Choice) else _in_range(entry, value)
            if not inside:
                raise HpoError(f"{source}: config {number} has {name} = {value!r}, outside study {spec.name!r}'s "
                               f"search space ({_describe(entry)})")
    return configs


def enqueue_exported(study: optuna.Study, spec: StudySpec, path: Path, lambda_param: str = LAMBDA) -> int:
    """Queue the exported configs in `path` (skipping any queued before), λ under the study's name for it; returns
    how many the file holds."""
    from hpo.spec.reader import read_yaml

    try:
        document = read_yaml(Path(path))
    except HpoError as exc:
        raise HpoError(f"{path}: cannot read the exported configs: {exc}") from None
    configs = enqueued_configs(document, spec, str(path))
    for params in configs:
        stored = {lambda_param if name == LAMBDA else name: value for name, value in params.items()}
        study.enqueue_trial(stored, user_attrs={"enqueued_from": str(path)}, skip_if_exists=True)
    return len(configs)


def _in_range(entry: Range, value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and entry.low <= value <= entry.high


def _describe(entry: Range | Choice) -> str:
    return f"choices {entry.choices}" if isinstance(entry, Choice) else f"{entry.low} .. {entry.high}"
