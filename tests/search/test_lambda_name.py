"""λ is `target_weight`; studies and files from before the rename said `source_weight`. A file naming it so is read
with one warning; a study created under the old name keeps storing it so (a study never mixes both), and everything
that reads λ from stored trials reads either name."""

from __future__ import annotations

import json
import logging
import sqlite3

import optuna
import yaml
from optuna.trial import TrialState

from hpo.spec import load_spec, spec_from_text
from hpo.storage import target_only_tally
from hpo.train.config import LAMBDA_NAMES
from tests.builders import hpo_cli, study_from, write_study


def test_a_file_with_the_old_name_is_read_with_one_warning_and_stored_text_without(tmp_path, caplog):
    old = write_study(tmp_path / "old.yaml", tmp_path)
    text = old.read_text().replace("target_weight", "source_weight")
    old.write_text(text)
    with caplog.at_level(logging.WARNING, logger="hpo"):
        spec = load_spec(old)
    warned = [r.getMessage() for r in caplog.records if "source_weight" in r.getMessage()]
    assert len(warned) == 1 and "is now named target_weight" in warned[0] and str(old) in warned[0]
    assert "target_weight" in spec.search_space and "source_weight" not in spec.search_space
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hpo"):
        assert spec_from_text(text, source="stored", base_dir=tmp_path) == spec
    assert not caplog.records  # the project re-reading a text it stored says nothing

    both = tmp_path / "both.yaml"
    both.write_text(text.replace("search_space:", "search_space:\n  target_weight: 0.5"))
    done = hpo_cli("validate", str(both), "--no-data", cwd=tmp_path)
    assert done.returncode == 1 and "source_weight is the old name of target_weight; give only target_weight" \
        in " ".join(done.stderr.split())


def _make_it_an_old_study(db, name: str) -> None:
    """Rewrite a study as the version before the rename stored it: λ as `source_weight` in every trial and in the
    provenance's search space, the study file's own text only (no resolved text)."""
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE trial_params SET param_name = 'source_weight' WHERE param_name = 'target_weight'")
        (key, value), = connection.execute("SELECT key, value_json FROM study_system_attributes WHERE key = "
                                           "'transfer_hpo:provenance'")
        record = json.loads(value)
        space = record["search_space"]
        space["searched"]["source_weight"] = space["searched"].pop("target_weight")
        record["spec_text"] = record["spec_text"].replace("target_weight", "source_weight")
        del record["spec_resolved"]
        connection.execute("UPDATE study_system_attributes SET value_json = ? WHERE key = ?",
                           (json.dumps(record), key))


def test_a_study_created_with_the_old_name_keeps_it_and_every_reader_reads_either(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=4, epochs=1, pruner="{name: none}")
    study_from(spec, spec, {"search_space": {"target_weight": {"target_only_share": 0.5}}})
    first = hpo_cli("run", str(spec), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    db, url = tmp_path / "hpo.db", f"sqlite:///{tmp_path / 'hpo.db'}"
    _make_it_an_old_study(db, "tiny")

    again = hpo_cli("run", str(spec), "--n-trials", "6", cwd=tmp_path)  # the file says target_weight now
    assert again.returncode == 0, again.stderr[-3000:]
    assert "different setup" not in again.stdout + again.stderr
    study = optuna.load_study(study_name="tiny", storage=url)
    names = {name for t in study.trials for name in t.params if name in LAMBDA_NAMES}
    assert names == {"source_weight"}, "a study never mixes both names"
    # the target-only share counts the old trials: trials 1, 3 and 5 of 6 are target only
    assert [t.number for t in study.trials if t.params["source_weight"] == 1.0] == [1, 3, 5]
    assert target_only_tally(study, 6) == (6, 3)

    exported = hpo_cli("export", "tiny", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert "target_weight" in best["search_space"] and "source_weight" not in best["search_space"]
    assert "source_weight" not in best["exported_from"]["params"]

    report = hpo_cli("report", "tiny", "-o", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert "target_weight" in page and "source_weight" not in page

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all("source_weight" in t.params for t in complete)


def test_the_storage_counts_target_only_trials_under_the_same_names_as_the_training_config():
    from hpo.storage import queries

    assert queries.LAMBDA_NAMES == LAMBDA_NAMES  # storage sits below train and repeats the two names
