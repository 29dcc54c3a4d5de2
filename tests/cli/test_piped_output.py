"""Output read through a pipe (`hpo studies | less`, a CI log): tables keep every cell whole, whatever their width,
and printed YAML and JSON read back whole. Through the real `hpo` command in a subprocess whose stdout is a pipe
and whose environment sets no COLUMNS, as a user's shell leaves it."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from hpo.spec import dump_spec, load_spec
from hpo.storage import open_storage, study_storage
from tests.builders import hpo_cli, write_study

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask/report outside optimize

NAME = "r8-from-20newsgroups-minilm-l6-frozen-to-depth-two-with-l2-sp-penalty-and-a-quarter-target-only-v2"
HOST = "gpu-node-017.hpc-cluster.physics.example-university.edu"
NO_COLUMNS = {"COLUMNS": ""}  # rich, like a shell, takes an empty COLUMNS for none


@pytest.fixture
def work(tmp_path):
    """A study with a long name, one complete trial and one running on a worker with a long host name."""
    storage = study_storage(open_storage(f"sqlite:///{tmp_path / 'hpo.db'}"))
    study = optuna.create_study(study_name=NAME, storage=storage, direction="maximize")
    study.set_user_attr("n_trials", 8)
    for value in (0.8125, None):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
        trial.report(0.75, 1)
        if value is None:
            trial.set_user_attr("hostname", HOST)
            trial.set_user_attr("pid", 4242)
        else:
            study.tell(trial, value)
    return tmp_path


def _rows(table: str) -> list[list[str]]:
    """The cells of each row of a rich table as printed."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]


def test_piped_tables_keep_every_cell_whole(work):
    studies = hpo_cli("studies", cwd=work, env=NO_COLUMNS)
    assert studies.returncode == 0, studies.stderr
    assert _rows(studies.stdout) == [[NAME, "1", "0", "0", "1", "8", "0.8125"]]
    status = hpo_cli("status", NAME, cwd=work, env=NO_COLUMNS)
    assert status.returncode == 0, status.stderr
    assert f"study {NAME}\n" in status.stdout
    _, head, _, running, worker = _rows(status.stdout)
    assert head == ["trials", "1 complete, 0 pruned, 0 failed, 1 running, 0 waiting"]
    assert running[:3] + running[4:] == ["1", f"{HOST}:4242", "-", "-", "1", "0.7500"]  # all but its age
    assert worker == [f"{HOST}:4242", "-", "-", "0 done, 1 started", "1", "-"]
    for shown in (studies.stdout, status.stdout):
        assert "…" not in shown
        assert max(map(len, shown.splitlines())) < 300, "as wide as the content, never padded to the console"


def test_piped_yaml_and_json_read_back_whole(work, tiny_model_dir):
    # `hpo validate` prints the resolved study file: at 80 columns its long `name:` line was folded in two
    spec = write_study(work / "long.yaml", tiny_model_dir, name=NAME)
    validated = hpo_cli("validate", "--no-data", "long.yaml", cwd=work, env=NO_COLUMNS)
    assert validated.returncode == 0, validated.stderr
    printed, verdict = validated.stdout.rstrip("\n").rsplit("\n", 1)
    assert verdict == "long.yaml is valid"
    assert yaml.safe_load(printed) == yaml.safe_load(dump_spec(load_spec(spec)))  # whole, as the command meant it
    assert yaml.safe_load(printed)["name"] == NAME
    for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        studies = hpo_cli("studies", "-f", fmt, cwd=work, env=NO_COLUMNS)
        assert studies.returncode == 0, studies.stderr
        assert [record["study"] for record in parse(studies.stdout)] == [NAME]
