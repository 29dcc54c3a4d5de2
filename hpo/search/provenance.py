"""What a study was created from, stored with it, and the check that a re-run still matches it."""

from __future__ import annotations

import importlib.metadata
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpo.errors import StudyMismatchError
from hpo.spec import Provenance, StudySpec, dump_spec, spec_hash
from hpo.train.config import current_names

__all__ = ["check_unchanged", "provenance", "summary"]

_PACKAGES = ("transfer-hpo", "torch", "transformers", "optuna", "tokenizers", "datasets", "scikit-learn")


def provenance(spec: StudySpec, spec_text: str, data_fingerprint: dict[str, Any]) -> Provenance:
    """What a new study records: the study file's text (and its hash), the spec resolved (every default filled in,
    every path absolute: what later commands re-read, from any directory), the search space, model, data, package
    versions and git commit."""
    return Provenance(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), spec_text=spec_text,
        spec_resolved=dump_spec(spec), spec_sha256=spec_hash(spec_text), search_space=spec.space_fingerprint(),
        model=spec.model.model_dump(mode="json"), data={**data_fingerprint, "validation_size": spec.validation_size},
        packages={name: _version(name) for name in _PACKAGES}, git_commit=_git_commit(),
    )


def summary(record: Provenance) -> str:
    """One readable line of a provenance record, for optuna-dashboard (which shows user attributes as text)."""
    model, data, packages = record.model, record.data, record.packages
    versions = ", ".join(f"{name} {version}" for name, version in packages.items()
                         if version and name in ("transfer-hpo", "torch", "transformers", "optuna"))
    commit = f"; git {record.git_commit[:10]}" if record.git_commit else ""
    source = data["source"]
    source = f"{source['name']} ({source['train']} docs)" if "name" in source else \
        f"searched over {', '.join(source['candidates'])}"
    return (f"{model.get('id')} ({model.get('pooling')} pooling); source {source} -> target {data['target']['name']} "
            f"({data['target']['train']} train, {data['target']['validation']} validation); {versions}{commit}; "
            f"created {record.created_at}; study file sha256 {record.spec_sha256[:12]}")


def check_unchanged(stored: Provenance, current: Provenance, study_name: str) -> None:
    """Refuse a re-run whose search space, model or data differ from the study's; name each difference."""
    changes = []
    old_record = {**stored.record(), "search_space": _current_lambda_name(stored.search_space)}
    new_record = current.record()
    for key, what in (("search_space", "search space"), ("model", "model"), ("data", "data")):
        for path in _differences(old_record.get(key), new_record[key]):
            old, new = _at(old_record.get(key), path), _at(new_record[key], path)
            if key == "search_space" and _new_field_at_default(path, old, new):
                continue
            changes.append(f"  {what}: {' -> '.join(path) or key}: {_short(old)} -> {_short(new)}")
    if changes:
        raise StudyMismatchError(
            f"study {study_name!r} was created with a different setup:\n" + "\n".join(changes) +
            "\nUse a new study name, or --force to continue it anyway (its trials would no longer compare)."
        )


def _current_lambda_name(space: Any) -> Any:
    """A stored search space with λ under today's name: a study made as `source_weight` re-run as `target_weight`
    is the same study."""
    if not isinstance(space, dict):
        return space
    return {part: current_names(fields) if isinstance(fields, dict) else fields for part, fields in space.items()}


def _new_field_at_default(path: tuple[str, ...], old: Any, new: Any) -> bool:
    """A training field this version added (absent from the stored record) at its default: not a change, so a study
    made by an older version continues."""
    from hpo.train.config import TrainConfig

    field = TrainConfig.model_fields.get(path[-1]) if len(path) == 2 and path[0] == "fixed" else None
    return old is None and field is not None and new == field.default


def _differences(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), (*path, str(key)))
        return found
    return [] if old == new else [path]


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _short(value: Any) -> str:
    text = "absent" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the checkout the package runs from, when it is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
