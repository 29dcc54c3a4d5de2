"""The README documents every study-file field and every command, and CI runs the README's test command."""

from __future__ import annotations

import re

from hpo.cli import app
from hpo.spec import DatasetSpec, StudySpec
from hpo.train.config import TrainConfig
from tests.builders import REPO

README = (REPO / "README.md").read_text()


def test_every_study_file_field_is_documented():
    for model in (StudySpec, TrainConfig, DatasetSpec):
        for field in model.model_fields:
            assert re.search(rf"`{field}`", README), f"{model.__name__}.{field} is not in the README"


def test_every_command_is_documented():
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"`hpo {name}" in README, name


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci
    block = README.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    assert "pytest" in block and "ruff check" in block
    assert "hpo run studies/quickstart.yaml" in README.split("<!-- quickstart-command -->")[1]


def test_the_builtin_datasets_table_is_the_registry_s_own():
    from hpo.train.corpora import markdown_table

    block = README.split("<!-- builtin-datasets -->")[1].split("<!-- /builtin-datasets -->")[0]
    assert block.strip() == markdown_table().strip(), "paste markdown_table() into the README"
