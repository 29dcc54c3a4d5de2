"""The shared cache under a cluster's faults, through the real `hpo` command: a cache path that names a file, or a
cache `hpo prepare` cannot write, is one line; a prepared cache mounted read-only (the documented cluster set-up)
runs every trial; a full disk fails the trial that needed the room, in one line, instead of killing the worker
with SIGBUS and leaving its trial RUNNING."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.builders import hpo_cli, study_from, write_study
from tests.train.mounts import read_only, tmpfs

OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1", "HF_HUB_OFFLINE": "1"}


def _study(tmp_path: Path, model_dir: Path, n_trials: int) -> Path:
    """A tiny study whose every trial reuses the activations of its one frozen layer."""
    spec = write_study(tmp_path / "base.yaml", model_dir, n_trials=n_trials, epochs=1)
    return study_from(spec, tmp_path / "tiny.yaml", {"search_space": {"freeze_depth": 1}})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model_dir) -> Path:
    """A cache filled by `hpo prepare` for `_study` (corpora, tokenised data; no activations)."""
    folder = tmp_path_factory.mktemp("prepared")
    cache = folder / "cache"
    done = hpo_cli("prepare", str(_study(folder, tiny_model_dir, 1)), "--cache", str(cache), cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return cache


def _one_line_error(done) -> str:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["HPO_CACHE", "--cache", "under a file"])
def test_a_cache_path_naming_a_file_is_one_line_from_prepare(how, tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir, 1)
    file = tmp_path / "cache.txt"
    file.write_text("not a folder")
    cache = file / "cache" if how == "under a file" else file
    options = ["--cache", str(cache)] if how == "--cache" else []
    done = hpo_cli("prepare", str(spec), *options, cwd=tmp_path, env={"HPO_CACHE": str(cache)})
    line = _one_line_error(done)
    assert str(cache) in line and "not a directory" in line
    assert file.read_text() == "not a folder"


def test_prepare_into_a_read_only_cache_is_one_line(tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir, 1)
    (tmp_path / "empty").mkdir()
    with read_only(tmp_path / "empty", tmp_path / "mounted") as mounted:
        done = hpo_cli("prepare", str(spec), "--cache", str(mounted), cwd=tmp_path)
    line = _one_line_error(done)
    assert line.startswith(f"error: cache {mounted}: not writable")


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'hpo.db'}").get_trials()


def test_a_prepared_cache_mounted_read_only_runs_every_trial(prepared, tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir, 2)
    with read_only(prepared, tmp_path / "mounted") as mounted:
        done = hpo_cli("run", str(spec), "--storage", f"sqlite:///{tmp_path / 'hpo.db'}", cwd=tmp_path,
                       env={"HPO_CACHE": str(mounted), **OFFLINE}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [t.user_attrs.get("failure_reason") for t in trials]
    for trial in trials:
        reuse = trial.user_attrs["reuse"]
        assert reuse["stored"] == f"memory (the cache {mounted / 'activations'} is read-only)"
        assert reuse["misses"] > 0 and reuse["hits"] > 0


def test_a_full_disk_fails_the_trial_in_one_line_not_the_worker(prepared, tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir, 1)
    pages = sum(-(-p.stat().st_size // 4096) for p in prepared.rglob("*") if p.is_file())
    with tmpfs(tmp_path / "disk", (pages + 16) * 4096) as disk:  # the prepared cache and 64 KB to spare
        cache = shutil.copytree(prepared, disk / "cache")
        available = shutil.disk_usage(disk).free
        assert available < 100_000  # less than any split's states: 48 to 112 texts x 32 tokens x 32 floats
        done = hpo_cli("run", str(spec), "--storage", f"sqlite:///{tmp_path / 'hpo.db'}", cwd=tmp_path,
                       env={"HPO_CACHE": str(cache), **OFFLINE}, timeout=600)
        left = sorted(p.name for p in (cache / "activations").iterdir())
    assert done.returncode == 1 and "Traceback" not in done.stderr, (done.returncode, done.stderr[-3000:])
    trials = _trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.FAIL] * 5  # five failures in a row stop the run
    reason = trials[0].user_attrs["failure_reason"]
    assert "\n" not in reason and f"{cache / 'activations'}/" in reason, reason
    assert " bytes needed, " in reason and f"{available:,} available" in reason, reason
    assert all(t.user_attrs["failure_reason"] == reason and "failure_traceback" not in t.user_attrs for t in trials)
    assert [name for name in left if not name.endswith(".lock")] == []  # no half-written entry left behind
