"""Packaging facts a user relies on: `accelerate` installs with the package itself (TrainingArguments, which
`hpo export --format training-args` writes for, refuses to load without it), and the quickstart study sets no
per-trial time limit (its trials run to the end on a slow machine too)."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.builders import REPO


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_accelerate_is_a_main_dependency_not_only_an_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "accelerate" in {_name(r) for r in project["dependencies"]}


def test_the_quickstart_study_sets_no_time_limit():
    study = yaml.safe_load((REPO / "studies" / "quickstart.yaml").read_text())
    assert "training" in study, "the quickstart has a training section (the check below reads it)"
    assert "time_limit_s" not in study["training"]
