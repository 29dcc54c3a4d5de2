"""Where a study keeps its provenance (what it was created from, hpo/search/provenance.py).

The full record (the study file's text, the search space, model, data hashes, package versions) is long: as a
user attribute optuna-dashboard shows it as one escaped JSON blob. So it is kept as a study *system* attribute,
which the re-run checks, `hpo export` and the report read and the dashboard does not show; the dashboard shows the
user attributes `provenance` (a one-line readable summary), `spec_sha256` and `created_at`. Studies made before
kept the full record as the user attribute `provenance`; `provenance_of` still reads them.
"""

from __future__ import annotations

from typing import Any

import optuna

from hpo.storage.queries import backend_of

__all__ = ["provenance_of", "store_provenance"]

# user attribute (the summary) -> system attribute (the full record). `provenance_forced`: the setup a forced
# re-run (`hpo run --force`) continued the study with.
_SYSTEM_KEY = {"provenance": "transfer_hpo:provenance", "provenance_forced": "transfer_hpo:provenance_forced"}


def _study_id(study: optuna.Study) -> int:
    return backend_of(study).get_study_id_from_name(study.study_name)


def store_provenance(study: optuna.Study, full: dict[str, Any], summary: str, *, forced: bool = False) -> None:
    """Keep the full record out of the dashboard's view, and a readable summary and the hash in it."""
    key = "provenance_forced" if forced else "provenance"
    study._storage.set_study_system_attr(_study_id(study), _SYSTEM_KEY[key], full)
    study.set_user_attr(key, summary)
    if not forced:
        study.set_user_attr("spec_sha256", full["spec_sha256"])
        study.set_user_attr("created_at", full["created_at"])


def provenance_of(study: optuna.Study, *, forced: bool = False) -> dict[str, Any] | None:
    """The study's full provenance record (or the one a forced re-run stored), or None for a study `hpo run` did
    not create."""
    key = "provenance_forced" if forced else "provenance"
    stored = study._storage.get_study_system_attrs(_study_id(study)).get(_SYSTEM_KEY[key])
    if stored is None:  # a study made before the record moved out of the user attributes
        stored = study.user_attrs.get(key)
    return stored if isinstance(stored, dict) else None
