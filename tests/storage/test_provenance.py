"""Where a study keeps its provenance: the full record out of optuna-dashboard's view, a readable line and the hash
in it; studies made before (the whole record as the user attribute `provenance`) still read."""

from __future__ import annotations

import optuna

from hpo.settings import resolve_storage
from hpo.storage import open_storage, provenance_of, store_provenance, study_summaries

RECORD = {"created_at": "2026-01-02T03:04:05+00:00", "spec_text": "name: s\n", "spec_sha256": "ab" * 32,
          "search_space": {"fixed": {"epochs": 3}}, "model": {"id": "m"}, "data": {}, "packages": {}}


def _storage(tmp_path):
    return open_storage(resolve_storage(f"sqlite:///{tmp_path / 'p.db'}", None))


def test_the_record_is_kept_apart_and_the_dashboard_sees_a_line_and_the_hash(tmp_path):
    storage = _storage(tmp_path)
    study = optuna.create_study(study_name="new", storage=storage)
    store_provenance(study, RECORD, "m on a -> b; created 2026-01-02")
    again = optuna.load_study(study_name="new", storage=storage)
    assert provenance_of(again) == RECORD
    assert again.user_attrs == {"provenance": "m on a -> b; created 2026-01-02", "spec_sha256": "ab" * 32,
                                "created_at": RECORD["created_at"]}
    (summary,) = study_summaries(storage)
    assert summary.created.isoformat() == RECORD["created_at"]


def test_a_study_made_before_still_reads(tmp_path):
    storage = _storage(tmp_path)
    study = optuna.create_study(study_name="old", storage=storage)
    study.set_user_attr("provenance", RECORD)  # how studies kept it before
    assert provenance_of(optuna.load_study(study_name="old", storage=storage)) == RECORD
    (summary,) = study_summaries(storage)
    assert summary.created.isoformat() == RECORD["created_at"]


def test_a_study_hpo_did_not_create_has_none(tmp_path):
    study = optuna.create_study(study_name="plain", storage=_storage(tmp_path))
    assert provenance_of(study) is None
