"""Paths in a study file, relative to the study file's own directory: a dataset's files and a local model directory.

A `model:` id is a local directory when it looks like a path (`./x`, `../x`, `/x`, `~/x`) or names a directory
beside the study file; anything else is a hub id (`org/name`) for transformers to fetch. A path-like id that names
no directory is an error naming the path, not transformers' "Repo id must be in the form…".
"""

from __future__ import annotations

import os
from pathlib import Path

from hpo.spec.models import StudySpec
from hpo.train.sources import DatasetSpec, ModelSpec

__all__ = ["DATASET_PATHS", "resolve_dataset", "resolve_model", "resolve_paths"]

DATASET_PATHS = ("path", "test_path", "validation_path")
_PATH_LIKE = ("./", "../", "/", "~", ".\\", "..\\")


def _absolute(value: Path, base_dir: Path) -> Path:
    """`value` as an absolute path, `..` folded (symlinks kept: os.path.normpath, not resolve)."""
    value = value.expanduser()
    return Path(os.path.normpath(value if value.is_absolute() else Path(base_dir).absolute() / value))


def resolve_dataset(dataset: DatasetSpec, base_dir: Path) -> DatasetSpec:
    """`dataset` with its files as absolute paths (relative ones taken from `base_dir`)."""
    fixed = {key: _absolute(value, base_dir) for key in DATASET_PATHS if (value := getattr(dataset, key)) is not None}
    return dataset.model_copy(update=fixed)


def resolve_model(model: ModelSpec, base_dir: Path) -> tuple[ModelSpec, str | None]:
    """`model` with a local directory as an absolute path, and the problem when a path-like id names nothing."""
    if model.id.startswith("bundled:"):
        return model, None
    path_like = model.id.startswith(_PATH_LIKE) or model.id in (".", "..")
    local = _absolute(Path(model.id), base_dir)
    if local.is_dir():
        return model.model_copy(update={"id": str(local)}), None
    if path_like:
        return model, f"{local}: no such model directory (a relative model path is relative to the study file)"
    return model, None


def resolve_paths(spec: StudySpec, base_dir: Path) -> tuple[StudySpec, list[tuple[str, str]]]:
    """Every path of `spec` absolute, relative ones taken from `base_dir` (the study file's directory); the
    problems found on the way (a local model directory that does not exist)."""
    model, problem = resolve_model(spec.model, base_dir)
    source = spec.source if isinstance(spec.source, DatasetSpec) else spec.source.model_copy(update={"choices": [
        resolve_dataset(choice, base_dir) if isinstance(choice, DatasetSpec) else choice
        for choice in spec.source.choices]})
    updates = {"model": model, "source": resolve_dataset(source, base_dir) if isinstance(source, DatasetSpec)
               else source, "target": resolve_dataset(spec.target, base_dir)}
    if spec.keep_models is not None and spec.keep_models.dir is not None:
        updates["keep_models"] = spec.keep_models.model_copy(
            update={"dir": _absolute(spec.keep_models.dir, base_dir)})
    return spec.model_copy(update=updates), [("model -> id", problem)] if problem else []
