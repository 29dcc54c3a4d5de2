"""The study file: its pydantic models, the second-pass checks with field-path messages, reading and writing it,
and the spec a stored study was created from. Validated once, here; everything after passes the frozen spec."""

from hpo.spec.load import (
    dump_spec,
    load_spec,
    load_study_file,
    parse_spec,
    read_study_file,
    spec_from_text,
    spec_hash,
    stored_spec,
    structure_problems,
)
from hpo.spec.models import SEARCHABLE, Choice, ExportedFrom, PrunerSpec, Range, SamplerSpec, StudySpec
from hpo.spec.names import check_study_name, is_study_name
from hpo.spec.paths import resolve_dataset, resolve_model
from hpo.spec.provenance import Provenance, stored_provenance
from hpo.train.sources import BUILTIN_DATASETS, BUNDLED_MODELS, DatasetSpec, ModelSpec

__all__ = [
    "BUILTIN_DATASETS",
    "BUNDLED_MODELS",
    "SEARCHABLE",
    "Choice",
    "DatasetSpec",
    "ExportedFrom",
    "ModelSpec",
    "Provenance",
    "PrunerSpec",
    "Range",
    "SamplerSpec",
    "StudySpec",
    "check_study_name",
    "dump_spec",
    "is_study_name",
    "load_spec",
    "load_study_file",
    "parse_spec",
    "read_study_file",
    "resolve_dataset",
    "resolve_model",
    "spec_from_text",
    "spec_hash",
    "stored_provenance",
    "stored_spec",
    "structure_problems",
]
