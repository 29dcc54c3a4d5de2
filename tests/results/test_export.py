"""Export -> validate -> train round trip on a small real study: fixed fields and provenance in the exported
file, warm starts with --enqueue, TrainingArguments from --format training-args, and a same-seed retrain that
reproduces the trial's validation F1."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from hpo.spec import load_spec, spec_from_text
from tests.builders import DELETE, cli, hpo_cli, study_from, write_study

SEARCHED = ("learning_rate", "target_weight", "freeze_depth", "l1", "l2")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, tiny_model_dir):
    """A real 4-trial study, and its best trial exported to best.yaml by `hpo export`."""
    work = tmp_path_factory.mktemp("export")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=4)
    done = hpo_cli("run", str(spec), cwd=work)
    assert done.returncode == 0, done.stderr
    exported = hpo_cli("export", "tiny", "-o", "best.yaml", cwd=work)
    assert exported.returncode == 0, exported.stderr
    assert f"exported trial {_best(work).number} (val F1 {_best(work).value:.4f}) of study 'tiny' to best.yaml" \
        in " ".join(exported.stdout.split())
    return work


def _best(work) -> optuna.trial.FrozenTrial:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{work / 'hpo.db'}").best_trial


def test_exported_file_fixes_every_searched_field_and_carries_provenance(study_dir):
    exported = yaml.safe_load((study_dir / "best.yaml").read_text())
    best = _best(study_dir)
    for name in SEARCHED:
        assert not isinstance(exported["search_space"][name], dict)
        assert exported["search_space"][name] == best.params[name]
    origin = exported["exported_from"]
    assert origin["study"] == "tiny" and origin["trial"] == best.number
    assert origin["value"] == pytest.approx(best.value)
    assert origin["best_evaluation"] == best.user_attrs["best_evaluation"]
    assert origin["spec_sha256"] and origin["data"]["target"]["validation"] == 48 and origin["packages"]["optuna"]
    validated = hpo_cli("validate", "--no-data", "best.yaml", cwd=study_dir)
    assert validated.returncode == 0 and "best.yaml is valid" in validated.stdout, validated.stderr
    assert load_spec(study_dir / "best.yaml").searched() == {}, "every searched field is fixed"


def test_same_seed_retrain_reproduces_the_trial_and_evaluates_on_test(study_dir):
    done = hpo_cli("train", "best.yaml", "--out", "model", cwd=study_dir)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((study_dir / "model" / "metrics.json").read_text())
    best = _best(study_dir)
    assert abs(metrics["validation"]["f1"] - best.value) <= 1e-6  # the same run, step for step
    assert metrics["validation"]["evaluation"] == best.user_attrs["best_evaluation"]
    assert metrics["test"]["n"] > 2000  # the whole R8 test split, never read during the search
    assert "accuracy" in metrics["test"]
    from transformers import AutoModelForSequenceClassification

    import hpo.classifier  # noqa: F401  (registers the saved format with the Auto classes)

    model = AutoModelForSequenceClassification.from_pretrained(study_dir / "model")
    assert model.config.encoder_config["num_hidden_layers"] == 2
    assert list(model.config.id2label.values()) == metrics["test"]["classes"]


def test_top_k_export_warm_starts_a_new_study(study_dir, tiny_model_dir):
    assert hpo_cli("export", "tiny", "--top", "2", "-o", "top2.yaml", cwd=study_dir).returncode == 0
    configs = yaml.safe_load((study_dir / "top2.yaml").read_text())["configs"]
    assert len(configs) == 2 and configs[0]["value"] >= configs[1]["value"]
    warm = write_study(study_dir / "warm.yaml", tiny_model_dir, name="warm", n_trials=3)
    done = hpo_cli("run", str(warm), "--enqueue", "top2.yaml", cwd=study_dir)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="warm", storage=f"sqlite:///{study_dir / 'hpo.db'}").trials
    assert [t.params for t in trials[:2]] == [c["params"] for c in configs]


def test_enqueue_refuses_a_field_the_new_space_does_not_search(study_dir, tiny_model_dir):
    assert hpo_cli("export", "tiny", "--top", "1", "-o", "top1.yaml", cwd=study_dir).returncode == 0
    narrow = write_study(study_dir / "narrow.yaml", tiny_model_dir, name="narrow", n_trials=1)
    study_from(narrow, narrow, {"search_space": {"l1": DELETE}})
    done = hpo_cli("run", str(narrow), "--enqueue", "top1.yaml", cwd=study_dir)
    assert done.returncode == 1
    assert "sets l1, which study 'narrow' does not search" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_training_args_load_exactly_as_written_with_the_recipe_beside_them(study_dir):
    assert hpo_cli("export", "tiny", "--format", "training-args", "-o", "ta.json", cwd=study_dir).returncode == 0
    from transformers import TrainingArguments

    with (study_dir / "ta.json").open() as f:
        args = TrainingArguments(**json.load(f))  # as a user loads it: nothing popped, nothing added
    best = _best(study_dir)
    assert args.learning_rate == pytest.approx(best.params["learning_rate"])
    assert args.num_train_epochs == 2 and args.per_device_train_batch_size == 16
    assert args.use_cpu and args.bf16 == (best.user_attrs["precision"] == "bf16")
    assert args.warmup_steps == pytest.approx(0.1)  # transformers 5: a float below 1 is the warmup ratio
    recipe = json.loads((study_dir / "ta.transfer-hpo.json").read_text())
    assert recipe["target_weight"] == best.params["target_weight"]
    assert recipe["freeze_depth"] == best.params["freeze_depth"] and recipe["pooling"] == "mean"
    assert recipe["exported_from"]["trial"] == best.number


def test_training_args_of_a_bf16_trial_construct_on_this_cpu(tmp_path, tiny_model_dir):
    spec = write_study(tmp_path / "bf.yaml", tiny_model_dir, name="bf", n_trials=1, pruner="none")
    study_from(spec, spec, {"training": {"precision": "bf16", "device": "cpu"}})
    assert hpo_cli("run", str(spec), cwd=tmp_path).returncode == 0
    trial = optuna.load_study(study_name="bf", storage=f"sqlite:///{tmp_path / 'hpo.db'}").best_trial
    assert trial.user_attrs["precision"] == "bf16"
    assert cli("export", "bf", "--format", "training-args", "-o", "bf.json", cwd=tmp_path).returncode == 0
    from transformers import TrainingArguments

    args = TrainingArguments(**json.loads((tmp_path / "bf.json").read_text()))
    assert args.bf16 and not args.fp16 and args.use_cpu


# Every pair of export options: what it does, or the refusal naming both options.
PAIRS = {
    ("--top", "--trial"): (["--top", "2", "--trial", "0", "-o", "x.yaml"], "--top and --trial"),
    ("--top", "--format"): (["--top", "2", "--format", "training-args", "-o", "x.json"],
                            "--top and --format training-args"),
    ("--top", "-o -"): (["--top", "2", "-o", "-"], None),
    ("--trial", "--format"): (["--trial", "{best}", "--format", "training-args", "-o", "x.json"], None),
    ("--trial", "-o -"): (["--trial", "{best}", "-o", "-"], None),
    ("--format", "-o -"): (["--format", "training-args", "-o", "-"], None),
    ("--format yaml", "-o x.json"): (["--format", "yaml", "-o", "x.json"], "--format yaml and -o x.json"),
    ("--format training-args", "-o x.yaml"): (["--format", "training-args", "-o", "x.yaml"],
                                              "--format training-args and -o x.yaml"),
}


@pytest.mark.parametrize("pair", list(PAIRS), ids=" & ".join)
def test_every_pair_of_export_options_works_or_names_both(pair, study_dir, tmp_path):
    import shutil

    shutil.copy(study_dir / "hpo.db", tmp_path / "hpo.db")
    args, refusal = PAIRS[pair]
    best = _best(study_dir).number
    done = cli("export", "tiny", *(a.format(best=best) for a in args), cwd=tmp_path)
    if refusal is not None:
        assert done.returncode == 1 and refusal in " ".join(done.stderr.split()), done.stderr
        assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.json").exists()  # nothing half-written
        return
    assert done.returncode == 0, done.stderr
    written = done.stdout if "-" in args else (tmp_path / args[-1]).read_text()
    assert not (tmp_path / "-").exists()  # -o - is standard output, not a file named "-"
    if "training-args" in args:
        from transformers import TrainingArguments

        assert TrainingArguments(**json.loads(written)).learning_rate > 0
    elif "--top" in args:
        assert len(yaml.safe_load(written)["configs"]) == 2
    else:
        assert load_spec_text(written).searched() == {}


def test_exporting_a_study_without_a_completed_trial_is_a_clear_error(tmp_path):
    optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    done = hpo_cli("export", "empty", "-o", "x.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "study 'empty' has no completed trial to export yet" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def load_spec_text(text: str):
    return spec_from_text(text, source="exported")
