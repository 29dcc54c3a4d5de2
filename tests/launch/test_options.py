"""Launcher options are one line each: every option of every launcher, enumerated from its source of truth
(`options_of`), refuses a newline before anything is rendered or submitted, and the command line says which
option and which character in one line."""

from __future__ import annotations

import pytest

from hpo.cli.launch import cli_type
from hpo.errors import HpoError
from hpo.launch.flow import launch, options_of
from hpo.launch.interface import LAUNCHERS
from tests.builders import cli
from tests.golden import K8S_ISSUE_COMMAND, K8S_STUDY

# Options without which a launcher refuses to render at all: a refusal must come from the newline, not from these.
REQUIRED = {"local": {}, "slurm": {"array": 2, "time": "10"}, "k8s": K8S_ISSUE_COMMAND}
EVERY_OPTION = [(name, option) for name in LAUNCHERS for option in options_of(name)[0]]


@pytest.mark.parametrize(("name", "option"), EVERY_OPTION, ids=[f"{n}--{o}" for n, o in EVERY_OPTION])
def test_every_launcher_option_refuses_a_newline(name, option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parameter = options_of(name)[0][option]
    value = "gpu\n#SBATCH --uid=0"
    given = [value] if cli_type(parameter.annotation) == list[str] else value
    with pytest.raises(HpoError) as refused:
        launch(name, K8S_STUDY, dry_run=True, **{**REQUIRED[name], option: given})
    assert str(refused.value) == f"--{option.replace('_', '-')}: contains a newline (\\n); an option value is one line"
    assert not (tmp_path / ".hpo").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["slurm", "--array", "2", "--time", "10", "--partition", "gpu\n#SBATCH --uid=0"],
     r"--partition: contains a newline (\n); an option value is one line"),
    (["slurm", "--array", "2", "--time", "10", "--setup", "module load cuda", "--setup", "rm -rf ~\r"],
     r"--setup: contains a carriage return (\r); an option value is one line"),
    (["slurm", "--array", "2", "--time", "10", "--sbatch", "--comment=a\tb"],
     r"--sbatch: contains a tab (\t); an option value is one line"),
    (["k8s", "--workers", "1", "--image", "hpo:1\x1b[2J", "--db-secret", "db"],
     r"--image: contains an escape (\x1b); an option value is one line"),
    (["k8s", "--workers", "1", "--image", "hpo:1", "--db-secret", "db", "--node-selector", "a=b\x85"],
     r"--node-selector: contains the control character U+0085 (\x85); an option value is one line"),
])
def test_the_command_line_names_the_option_and_the_character_in_one_line(tmp_path, args, message):
    done = cli("launch", args[0], str(K8S_STUDY), *args[1:], "--dry-run", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: {message}"  # one line, no traceback
