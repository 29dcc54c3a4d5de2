"""A study file in and out: `load_spec(path)` validates it once into a frozen `StudySpec` (every problem reported
with the file and the field path, all at once), `dump_spec` writes a spec back as a study file, and
`stored_spec(study)` is the spec a study was created from (kept in its provenance).

Paths. Every relative path in a study file (a dataset's `path`, `test_path`, `validation_path`, and a local
`model:` directory) is relative to the study file's own directory, wherever the command runs; a spec holds them
absolute. So the text a study stores, an export and a saved model's `study.yaml` (all written by `dump_spec`)
carry absolute paths, and a later command reads the same files from any directory.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from hpo.errors import HpoError, SpecError
from hpo.spec.checks import check_search_space, describe, search_space_problems_alone
from hpo.spec.models import StudySpec, study_level_problems
from hpo.spec.names import NAME_RULE, is_study_name
from hpo.spec.paths import resolve_paths
from hpo.spec.reader import parse_yaml, read_text
from hpo.train.config import LAMBDA, LEGACY_LAMBDA

if TYPE_CHECKING:
    import optuna

__all__ = ["dump_spec", "load_spec", "load_study_file", "parse_spec", "read_study_file", "spec_from_text",
           "spec_hash", "stored_spec", "structure_problems"]

log = logging.getLogger("hpo")


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; raises SpecError naming the file and every bad field."""
    return load_study_file(path)[0]


def load_study_file(path: str | Path) -> tuple[StudySpec, str]:
    """The validated spec of a study file and the file's text (what a study stores as its provenance)."""
    raw, text = read_study_file(path)
    return parse_spec(raw, source=str(path), base_dir=Path(path).absolute().parent), text


def read_study_file(path: str | Path) -> tuple[dict[str, Any], str]:
    """A study file as a mapping (its name defaulting to the file's stem) and its text; nothing validated yet."""
    path = Path(path)
    text = read_text(path)
    raw = parse_yaml(text, str(path))
    if "name" not in raw:
        raw["name"] = path.stem
        if not is_study_name(path.stem):
            raise SpecError(str(path), [("name", f"defaults to the file name {path.stem[:60]!r}, which is not a "
                                                 f"valid study name ({NAME_RULE}); set name:")])
    return raw, text


def parse_spec(raw: dict[str, Any], *, source: str, base_dir: Path | None = None,
               warn_legacy: bool = True) -> StudySpec:
    """`raw` validated into a spec, relative paths taken from `base_dir` (the study file's directory); SpecError
    with every problem. `warn_legacy`: say so once when the file names λ `source_weight` (never for a text the
    project stored itself)."""
    spec, problems = structure_problems(raw, source=source, base_dir=base_dir, warn_legacy=warn_legacy)
    if problems or spec is None:
        raise SpecError(source, problems)
    return spec


def structure_problems(raw: dict[str, Any], *, source: str, base_dir: Path | None = None,
                       warn_legacy: bool = True) -> tuple[StudySpec | None, list[tuple[str, str]]]:
    """The spec of `raw` (None if it does not validate) and every problem of its structure: the fields, the search
    space against the training fields, the paths. `hpo validate` adds the model's and the data's to these."""
    raw, problems = _current_lambda_name(raw, source, warn_legacy)
    problems += study_level_problems(raw)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems += list(dict.fromkeys(describe(err) for err in exc.errors()))  # a union reports each member
        if not any(path.startswith("search_space") for path, _ in problems):
            problems += search_space_problems_alone(raw)
        return None, problems
    typed, space_problems = check_search_space(spec.search_space, spec.sampler.name, training=spec.training)
    problems += space_problems
    spec = spec.model_copy(update={"search_space": typed})
    if base_dir is not None:
        spec, path_problems = resolve_paths(spec, base_dir)
        problems += path_problems
    return (None if problems else spec), problems


def _current_lambda_name(raw: dict[str, Any], source: str,
                         warn_legacy: bool) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`source_weight` (λ's old name: it always weighed the target) read as `target_weight`, with one warning."""
    raw = dict(raw)
    problems: list[tuple[str, str]] = []
    renamed = []
    for section in ("training", "search_space"):
        fields = raw.get(section)
        if not isinstance(fields, dict) or LEGACY_LAMBDA not in fields:
            continue
        if LAMBDA in fields:
            problems.append((f"{section} -> {LEGACY_LAMBDA}", f"{LEGACY_LAMBDA} is the old name of {LAMBDA}; give "
                                                              f"only {LAMBDA}"))
            continue
        raw[section] = {(LAMBDA if key == LEGACY_LAMBDA else key): value for key, value in fields.items()}
        renamed.append(section)
    if renamed and warn_legacy:
        log.warning("%s: %s is now named %s (λ, the weight of the target loss: the same field, the same values); "
                    "rename it under %s", source, LEGACY_LAMBDA, LAMBDA, " and ".join(renamed))
    return raw, problems


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dump_spec(spec: StudySpec, comment: str = "") -> str:
    """`spec` as study-file YAML that `load_spec` reads back to an equal spec: every field written, defaults and
    nulls included, so the file means the same whatever a later version's defaults are; paths absolute.
    `validation_size` is left out beside a target's own validation split, where it is refused."""
    raw = {"name": spec.name, **spec.model_dump(mode="json")}
    if spec.target.has_validation:
        del raw["validation_size"]
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def spec_from_text(text: str, *, source: str, name: str | None = None, base_dir: Path | None = None) -> StudySpec:
    """A study file's text that the project stored (with a study, an export or a saved model) as a spec; `name`
    if the text has none. Such texts carry absolute paths; relative ones (written by older versions) are taken
    from `base_dir`, else the working directory."""
    raw = parse_yaml(text, source)
    if name is not None:
        raw.setdefault("name", name)
    return parse_spec(raw, source=source, base_dir=base_dir or Path.cwd(), warn_legacy=False)


def stored_spec(study: optuna.Study) -> tuple[StudySpec, str]:
    """The spec a study was created from, and its text, as stored in its provenance by `hpo run`: the resolved
    text (absolute paths) where there is one, else the study file's own text (studies made before)."""
    from hpo.spec.provenance import stored_provenance

    record = stored_provenance(study)
    text = record and (record.spec_resolved or record.spec_text)
    if not text:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no study file stored with it)")
    return spec_from_text(text, source=f"study {study.study_name!r} (its stored study file)",
                          name=study.study_name), text
