"""A study file in and out: `load_spec(path)` validates it once into a frozen `StudySpec` (every problem reported
with the file and the field path, all at once), `dump_spec` writes a spec back as a study file, and
`stored_spec(study)` is the spec a study was created from (kept in its provenance)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from hpo.errors import HpoError, SpecError
from hpo.spec.checks import check_search_space, describe, search_space_problems_alone
from hpo.spec.models import StudySpec
from hpo.spec.names import NAME_RULE, is_study_name
from hpo.spec.reader import parse_yaml, read_text
from hpo.train.sources import DatasetSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["dump_spec", "load_spec", "load_study_file", "parse_spec", "spec_from_text", "spec_hash", "stored_spec"]


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; raises SpecError naming the file and every bad field."""
    return load_study_file(path)[0]


def load_study_file(path: str | Path) -> tuple[StudySpec, str]:
    """The validated spec of a study file and the file's text (what a study stores as its provenance)."""
    path = Path(path)
    text = read_text(path)
    raw = parse_yaml(text, str(path))
    if "name" not in raw:
        raw["name"] = path.stem
        if not is_study_name(path.stem):
            raise SpecError(str(path), [("name", f"defaults to the file name {path.stem[:60]!r}, which is not a "
                                                 f"valid study name ({NAME_RULE}); set name:")])
    return parse_spec(raw, source=str(path), base_dir=path.parent), text


def parse_spec(raw: dict[str, Any], *, source: str, base_dir: Path | None = None) -> StudySpec:
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems = list(dict.fromkeys(describe(err) for err in exc.errors()))  # a union reports each member
        # Report the search space's own problems in the same pass, so one edit fixes everything.
        if not any(path.startswith("search_space") for path, _ in problems):
            problems += search_space_problems_alone(raw)
        raise SpecError(source, problems) from None
    typed, problems = check_search_space(spec.search_space, spec.sampler.name)
    if problems:
        raise SpecError(source, problems)
    spec = spec.model_copy(update={"search_space": typed})
    if base_dir is not None:
        spec = _resolve_paths(spec, base_dir)
    return spec


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dump_spec(spec: StudySpec, comment: str = "", *, defaults: bool = False) -> str:
    """`spec` as study-file YAML, which `load_spec` reads back to an equal spec; defaults left out unless asked
    for (`hpo validate` shows the study file resolved, every default filled in)."""
    raw = spec.model_dump(mode="json", exclude_defaults=not defaults, exclude_none=True)
    raw = {"name": spec.name, **raw}
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def spec_from_text(text: str, *, source: str, name: str | None = None) -> StudySpec:
    """A study file's text (stored with a study or a saved model) as a spec; `name` if the text has none.
    Relative dataset paths are taken from the working directory."""
    raw = parse_yaml(text, source)
    if name is not None:
        raw.setdefault("name", name)
    return parse_spec(raw, source=source, base_dir=Path.cwd())


def stored_spec(study: optuna.Study) -> tuple[StudySpec, str]:
    """The spec a study was created from, and its text, as stored in its provenance by `hpo run`."""
    from hpo.storage import provenance_of

    text = (provenance_of(study) or {}).get("spec_text")
    if not text:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no study file stored with it)")
    return spec_from_text(text, source=f"study {study.study_name!r} (its stored study file)",
                          name=study.study_name), text


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


