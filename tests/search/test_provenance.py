"""A re-run checks the study's setup against what it was created with; a training field a newer version added
is not a change while it stays at its default (a study made by an older version continues)."""

from __future__ import annotations

import pytest

from hpo.errors import StudyMismatchError
from hpo.search.provenance import check_unchanged
from hpo.spec import Provenance


def _record(**fixed) -> Provenance:
    return Provenance(created_at="2026-01-01T00:00:00+00:00", spec_text="", spec_sha256="0" * 64,
                      search_space={"fixed": {"epochs": 2, **fixed}, "searched": {}}, model={"id": "m"}, data={})


def test_a_field_added_since_at_its_default_is_not_a_change():
    check_unchanged(_record(), _record(max_grad_norm=None, reuse_activations=True), "s")


def test_a_field_added_since_away_from_its_default_is_a_change():
    with pytest.raises(StudyMismatchError, match=r"search space: fixed -> max_grad_norm: absent -> 1.0"):
        check_unchanged(_record(), _record(max_grad_norm=1.0), "s")
    with pytest.raises(StudyMismatchError, match=r"search space: fixed -> epochs: 2 -> 3"):
        check_unchanged(_record(), _record(epochs=3), "s")


def test_a_study_made_with_the_old_lambda_name_is_the_same_setup_under_the_new_one():
    old = _record(source_weight=0.5)
    check_unchanged(old, _record(target_weight=0.5), "s")
    with pytest.raises(StudyMismatchError, match=r"search space: fixed -> target_weight: 0.5 -> 0.7"):
        check_unchanged(old, _record(target_weight=0.7), "s")
