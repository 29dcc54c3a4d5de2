"""Warm starts: `hpo run STUDY --enqueue FILE` queues the configs of a file written by `hpo export` (the k best of
another study, or one exported trial), checked against this study's search space, so that they run first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError
from hpo.spec import Choice, Range, StudySpec

if TYPE_CHECKING:
    import optuna

__all__ = ["enqueue_exported", "enqueued_configs"]


def enqueued_configs(document: dict[str, Any], spec: StudySpec, source: str) -> list[dict[str, Any]]:
    """The parameter sets an exported file (`--top k`, or a single exported study file) asks to try first,
    checked against the new study's search space."""
    if "configs" in document:
        configs = [c.get("params", {}) for c in document["configs"]]
    elif "params" in (document.get("exported_from") or {}):
        configs = [document["exported_from"]["params"]]
    else:
        raise HpoError(f"{source}: not a file written by `hpo export` (no configs or exported_from.params)")
    searched = spec.searched()
    for number, params in enumerate(configs):
        for name, value in params.items():
            entry = searched.get(name)
            if entry is None:
                raise HpoError(f"{source}: config {number} sets {name}, which study {spec.name!r} does not search "
                               f"(searched: {', '.join(searched) or 'nothing'})")
            inside = value in entry.choices if isinstance(entry, Choice) else _in_range(entry, value)
            if not inside:
                raise HpoError(f"{source}: config {number} has {name} = {value!r}, outside study {spec.name!r}'s "
                               f"search space ({_describe(entry)})")
    return configs


def enqueue_exported(study: optuna.Study, spec: StudySpec, path: Path) -> int:
    """Queue the exported configs in `path` (skipping any queued before); returns how many the file holds."""
    from hpo.spec.reader import read_yaml

    try:
        document = read_yaml(Path(path))
    except HpoError as exc:
        raise HpoError(f"{path}: cannot read the exported configs: {exc}") from None
    configs = enqueued_configs(document, spec, str(path))
    for params in configs:
        study.enqueue_trial(params, user_attrs={"enqueued_from": str(path)}, skip_if_exists=True)
    return len(configs)


def _in_range(entry: Range, value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and entry.low <= value <= entry.high


def _describe(entry: Range | Choice) -> str:
    return f"choices {entry.choices}" if isinstance(entry, Choice) else f"{entry.low} .. {entry.high}"
