"""The layout's rules, each a test that fails the moment the code breaks it: small modules and functions, no
private reach-ins into Optuna outside storage/, packages with an __init__, one-way imports (lint-imports), light
commands that never import torch, launcher options defined once, and every database call retried."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.builders import REPO

PACKAGE = REPO / "hpo"
MAX_MODULE_LINES = 320
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED = {("hpo/train/loop.py", "train")}  # the training loop reads top to bottom in one function


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_modules_and_functions_are_small():
    too_long = []
    for path in _modules():
        text = path.read_text()
        where = str(path.relative_to(REPO))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (where, node.name) not in LONG_FUNCTIONS_ALLOWED:
                    too_long.append(f"{where}: {node.name}() {lines} lines")
    assert too_long == []


def test_no_private_reach_into_optuna_outside_storage():
    pattern = re.compile(r"\._(backend|storage|study_id|trial_id)\b")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}" for path in _modules()
             if not path.is_relative_to(PACKAGE / "storage")
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_the_storage_class_is_declared_not_built():
    from hpo.storage.rdb import HpoRDBStorage

    source = "\n".join((PACKAGE / "storage" / path).read_text() for path in ("rdb.py", "outage.py", "cache.py"))
    assert "class HpoRDBStorage(" in source and not re.search(r"\btype\(\s*[\"']", source)
    assert HpoRDBStorage.__module__ == "hpo.storage.rdb" and HpoRDBStorage.__qualname__ == "HpoRDBStorage"


def test_every_package_has_an_init():
    packages = {path.parent for path in _modules()}
    assert [str(p.relative_to(REPO)) for p in sorted(packages) if not (p / "__init__.py").exists()] == []


def test_the_import_contracts_are_declared_without_exceptions_and_kept():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {contract["type"]: contract for contract in config["contracts"]}
    assert set(contracts) == {"layers", "acyclic_siblings", "forbidden"}
    assert contracts["layers"]["layers"][0] == "hpo.cli"
    assert set(contracts["forbidden"]["forbidden_modules"]) == {"optuna", "hpo.spec"}
    assert config["include_external_packages"] is True
    assert not any("ignore_imports" in contract for contract in config["contracts"])
    linted = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert linted.returncode == 0, linted.stdout[-3000:]
    assert linted.stdout.count(" KEPT") == 3


@pytest.mark.parametrize("args", [["--help"], ["studies"], ["status", "absent"]])
def test_light_commands_never_import_torch_or_transformers(tmp_path, args):
    probe = ("import sys\nfrom hpo.cli import main\n"
             f"sys.argv = ['hpo', *{args!r}]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
             "print('HEAVY', heavy, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("launcher", ["local", "slurm", "k8s"])
def test_launcher_options_are_defined_once_with_the_renderers_defaults_and_types(launcher):
    from typer.main import get_command

    from hpo.cli import app
    from hpo.cli.launch import cli_type
    from hpo.launch.flow import options_of

    command = get_command(app).commands["launch"].commands[launcher]
    cli = {param.name: param for param in command.params}
    options, help_of = options_of(launcher)
    assert set(help_of) == set(options), "every option has its help, no help without an option"
    for name, parameter in options.items():
        assert name in cli, f"--{name.replace('_', '-')} missing from hpo launch {launcher}"
        default = None if parameter.default is inspect.Parameter.empty else parameter.default
        shown = cli[name].default
        assert (list(shown) if isinstance(shown, tuple | list) else shown) == \
            (list(default) if isinstance(default, tuple | list) else default), name
        assert cli[name].required == (parameter.default is inspect.Parameter.empty), name
        assert cli[name].multiple == (cli_type(parameter.annotation) == list[str]), name
    assert set(cli) - set(options) <= {"study_file", "storage", "n_trials", "dry_run"}


def test_every_database_call_of_the_storage_is_retried_through_outages():
    from optuna.storages import RDBStorage

    from hpo.storage.rdb import RETRIED, HpoRDBStorage

    no_database = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback", "get_failed_trial_callback",
                   "remove_session", "_create_unique_study_name", "_fill_storage_url_template",
                   "_set_default_engine_kwargs_for_mysql", "_build_frozen_trial_from_trial_model",
                   "_get_prepared_new_trial", "_set_trial_param_without_commit", "_set_trial_value_without_commit",
                   "_set_trial_intermediate_value_without_commit", "_set_trial_attr_without_commit"}
    methods = {name for name, value in vars(RDBStorage).items() if callable(value) and not name.startswith("__")}
    assert methods - no_database - set(RETRIED) == set(), "a database method of RDBStorage is not retried"
    assert all(getattr(HpoRDBStorage, name).__wrapped__ for name in RETRIED)
