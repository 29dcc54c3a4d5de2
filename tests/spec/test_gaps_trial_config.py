"""`StudySpec.trial_config`, the one way from a trial's parameters to a training config, refuses a parameter that
is not a searchable training field and a value its field refuses, with an HpoError that names the field."""

from __future__ import annotations

import pytest

from hpo.errors import HpoError
from hpo.spec import load_spec
from tests.builders import write_study


@pytest.fixture
def spec(tmp_path, tiny_model_dir):
    return load_spec(write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1))


def test_trial_config_takes_a_searchable_field_within_its_range(spec):
    assert spec.trial_config({"target_weight": 0.5, "freeze_depth": 1}).target_weight == 0.5


def test_trial_config_refuses_a_parameter_that_is_no_searchable_field(spec):
    with pytest.raises(HpoError) as refused:
        spec.trial_config({"colour": 1})
    message = str(refused.value)
    assert message.startswith("study 'tiny': colour is not a searchable training field (searchable: "), message
    assert "target_weight" in message.split("searchable: ", 1)[1]  # the fields that are, listed


def test_trial_config_refuses_a_value_out_of_its_fields_range(spec):
    with pytest.raises(HpoError) as refused:
        spec.trial_config({"target_weight": 2.0})
    message = str(refused.value)
    assert message.startswith("study 'tiny': a trial's parameters do not make a training config: "), message
    assert "target_weight:" in message and "(got 2.0)" in message
