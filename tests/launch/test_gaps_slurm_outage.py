"""A Slurm task whose storage stays down past HPO_STORAGE_RETRY_S ends as `hpo run` does: exit 75 (try again,
so the array task can be requeued) with one `error:` line on stderr, no traceback. The outage itself is simulated
at the worker's seam (`run_file`); a real one is tested for the local worker in tests/storage."""

from __future__ import annotations

import logging

import pytest

from hpo.errors import StorageUnavailable
from hpo.launch.slurm import SlurmWorker
from tests.builders import write_study

# What hpo/storage/outage.py says when it gives up: long, as a real one is (longer than a 160-column console)
OUTAGE = ("storage postgresql+psycopg2://hpo:***@db-host:5432/hpo unreachable for 30 s (HPO_STORAGE_RETRY_S=30): "
          "connection refused. This worker stops; its running trial is failed and retried by a live worker once the "
          "database is back. Start workers again then.")


@pytest.fixture
def worker_env(monkeypatch):
    """The task's environment: a PostgreSQL storage in HPO_STORAGE, no COLUMNS (a batch job has no terminal);
    what the worker sets up for the process (environment, the `hpo` logger) is undone afterwards."""
    monkeypatch.setenv("HPO_STORAGE", "postgresql+psycopg2://hpo:s3cret@db-host:5432/hpo")
    monkeypatch.delenv("COLUMNS", raising=False)
    for name in ("TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(name, "false" if name == "TOKENIZERS_PARALLELISM" else
                           "1" if name == "HF_HUB_DISABLE_PROGRESS_BARS" else "error")
    logger = logging.getLogger("hpo")
    saved = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def _outage_in_a_slurm_task(study, monkeypatch, capsys) -> tuple[object, str]:
    """Run the Slurm task's worker on `study` with its run hitting the outage: (its exit code, its stderr)."""
    ran = []

    def outage(path, **options):
        ran.append(path)
        raise StorageUnavailable(OUTAGE)

    monkeypatch.setattr("hpo.search.worker.run_file", outage)
    with pytest.raises(SystemExit) as ended:
        SlurmWorker(str(study))()
    assert ran == [study], "the worker reached its run"
    return ended.value.code, capsys.readouterr().err


def test_a_storage_outage_ends_the_slurm_task_with_75_and_its_error(tmp_path, tiny_model_dir, worker_env,
                                                                    monkeypatch, capsys):
    code, err = _outage_in_a_slurm_task(write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1),
                                        monkeypatch, capsys)
    assert code == 75
    assert "Traceback" not in err
    assert err.startswith("error: storage postgresql"), err
    assert " ".join(err.split()) == f"error: {OUTAGE}"  # the whole message, nothing else
    assert "s3cret" not in err


def test_the_slurm_tasks_outage_error_is_one_line(tmp_path, tiny_model_dir, worker_env, monkeypatch, capsys):
    _, err = _outage_in_a_slurm_task(write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1),
                                     monkeypatch, capsys)
    assert [line for line in err.splitlines() if line.strip()] == [f"error: {OUTAGE}"], err
