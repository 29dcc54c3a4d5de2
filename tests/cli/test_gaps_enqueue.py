"""`hpo run STUDY --enqueue FILE` refuses an exported document whose config carries no parameters: queued, such a
config would be an empty trial that the sampler fills at random. The refusal is one line, exit 1, no traceback,
and nothing is queued in the study."""

from __future__ import annotations

import optuna
import pytest
import yaml

from tests.builders import hpo_cli, write_study

EXPORTED_FROM = {
    "study": "elsewhere", "spec_sha256": "0" * 64, "data": {}, "model": {"id": "bundled:all-MiniLM-L6-v2"},
    "packages": {"optuna": optuna.__version__}, "exported_at": "2025-01-01T00:00:00+00:00",
}


@pytest.mark.parametrize(("config", "expected"), [
    ({"trial": 1}, "[configs -> 0 -> params] field required"),
    ({"trial": 1, "params": {}}, "[configs -> 0 -> params] dictionary should have at least 1 item"),
], ids=["no-params", "empty-params"])
def test_enqueue_refuses_a_config_without_params(tmp_path, tiny_model_dir, config, expected):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1)
    (tmp_path / "top.yaml").write_text(yaml.safe_dump({"exported_from": EXPORTED_FROM, "configs": [config]}))
    done = hpo_cli("run", str(spec), "--enqueue", "top.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: top.yaml: not a file written by `hpo export`: "), lines[0]
    assert expected in lines[0]
    assert "enqueued" not in done.stdout
    storage = f"sqlite:///{tmp_path / 'hpo.db'}"
    stored = [s.study_name for s in optuna.get_all_study_summaries(storage)] if (tmp_path / "hpo.db").exists() else []
    for name in stored:  # the study may exist (it is created before the file is read); it holds no trial
        assert optuna.load_study(study_name=name, storage=storage).trials == []
