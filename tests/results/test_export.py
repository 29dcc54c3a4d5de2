"""Export -> validate -> train round trip on a small real study: fixed fields and provenance in the exported
file (every field written), warm starts with --enqueue, TrainingArguments from --format training-args (every
training field accounted for; a Trainer that clips only when the study did), a same-seed retrain that reproduces
the trial's validation F1, and `-o -` as standard output on every command that writes a file."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
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


def _fields(model) -> set[str]:
    return set(model.model_fields)


def test_an_exported_study_file_writes_every_field_defaults_and_nulls_included(study_dir):
    """A field left out takes whatever default a later version has; written out, it means the same forever."""
    from hpo.spec import ExportedFrom, ModelSpec, PrunerSpec, SamplerSpec, StudySpec
    from hpo.train.config import TrainConfig
    from hpo.train.sources import DatasetSpec

    exported = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert set(exported) == _fields(StudySpec)
    assert set(exported["training"]) == _fields(TrainConfig)
    assert set(exported["source"]) == set(exported["target"]) == _fields(DatasetSpec)
    assert set(exported["model"]) == _fields(ModelSpec)
    assert set(exported["sampler"]) == _fields(SamplerSpec) and set(exported["pruner"]) == _fields(PrunerSpec)
    assert set(exported["exported_from"]) == _fields(ExportedFrom)
    assert exported["training"]["max_grad_norm"] is None and exported["target"]["test_path"] is None  # nulls too
    assert exported["model"]["id"] == str(load_spec(study_dir / "tiny.yaml").model.id)  # absolute


def test_same_seed_retrain_reproduces_the_trial_and_evaluates_on_test(study_dir):
    done = hpo_cli("train", "best.yaml", "--out", "model", cwd=study_dir)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((study_dir / "model" / "metrics.json").read_text())
    best = _best(study_dir)
    assert abs(metrics["validation"]["f1"] - best.value) <= 1e-6  # the same run, step for step
    assert metrics["validation"]["evaluation"] == best.user_attrs["best_evaluation"]
    assert metrics["test"]["n"] > 2000  # the whole R8 test split, never read during the search
    # the trial's two clocks under the same names: optimisation only, within the whole fit
    assert 0 < metrics["train_seconds"] <= metrics["fit_seconds"] and metrics["test_seconds"] > 0
    assert 0 < best.user_attrs["train_seconds"] <= best.user_attrs["fit_seconds"]
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
    # device and precision `auto`: the trial ran on this CPU, which says nothing of where the Trainer will run
    assert best.user_attrs["device"] == "cpu"
    assert not args.use_cpu and not args.bf16 and not args.fp16
    assert args.warmup_steps == pytest.approx(0.1)  # transformers 5: a float below 1 is the warmup ratio
    recipe = json.loads((study_dir / "ta.transfer-hpo.json").read_text())
    assert recipe["target_weight"] == best.params["target_weight"]
    assert recipe["freeze_depth"] == best.params["freeze_depth"] and recipe["pooling"] == "mean"
    assert recipe["exported_from"]["trial"] == best.number
    assert recipe["trial_ran_on"] == {"device": "cpu", "precision": best.user_attrs["precision"]}


def test_every_training_field_goes_to_training_arguments_the_recipe_or_a_reason(study_dir):
    from hpo.results.export import NOT_EXPORTABLE, RECIPE, TRAINING_ARGUMENTS, TrialRun, training_arguments_fields
    from hpo.train.config import TrainConfig

    homes = [set(TRAINING_ARGUMENTS), set(RECIPE), set(NOT_EXPORTABLE)]
    for field in TrainConfig.model_fields:  # a field added to TrainConfig and mapped nowhere fails here
        assert sum(field in home for home in homes) == 1, f"{field}: exported nowhere, or to two places"
    assert all(len(reason) > 40 for reason in NOT_EXPORTABLE.values())
    assert cli("export", "tiny", "--format", "training-args", "-o", "all.json", cwd=study_dir).returncode == 0
    args = json.loads((study_dir / "all.json").read_text())
    recipe = json.loads((study_dir / "all.transfer-hpo.json").read_text())
    config = load_spec(study_dir / "tiny.yaml").trial_config(_best(study_dir).params)
    ran = TrialRun("cpu", _best(study_dir).user_attrs["precision"], training_arguments_fields())
    for field, to_arguments in TRAINING_ARGUMENTS.items():
        written = to_arguments(config, ran)
        assert written and {k: args[k] for k in written} == written, field
    assert {k: recipe[k] for k in RECIPE} == {k: getattr(config, k) for k in RECIPE} | {"pooling": "mean"}
    assert set(recipe["not_exportable"]) == set(NOT_EXPORTABLE)


class _Steep(torch.nn.Module):
    """One parameter vector whose loss has a gradient of norm 2000: clipping, if any, shows."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"loss": (self.w * x).sum() * 1000.0}


def _gradient_norms_the_optimizer_sees(arguments: dict) -> list[float]:
    """A real Trainer's steps with these TrainingArguments: the gradients' norm after its clipping, before each
    optimiser step."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    norms: list[float] = []

    class Seen(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **_):
            norms.append(float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))))

    Trainer(model=_Steep(), args=TrainingArguments(**arguments), train_dataset=[{"x": torch.ones(4)}],
            callbacks=[Seen()]).train()
    return norms


def test_training_args_make_the_trainer_clip_only_when_the_study_does(study_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the Trainer's output_dir is relative
    assert cli("export", "tiny", "--format", "training-args", "-o", "ta.json", cwd=tmp_path,
               env={"HPO_STORAGE": f"sqlite:///{study_dir / 'hpo.db'}"}).returncode == 0
    exported = json.loads((tmp_path / "ta.json").read_text())
    assert exported["max_grad_norm"] == 0  # the study's max_grad_norm is none: no clipping
    assert _gradient_norms_the_optimizer_sees(exported) == [pytest.approx(2000.0)] * 2  # 2 epochs of 1 step
    # the harness sees clipping where there is some: transformers' own default clips to 1
    left_out = {k: v for k, v in exported.items() if k != "max_grad_norm"}
    assert _gradient_norms_the_optimizer_sees(left_out) == [pytest.approx(1.0)] * 2


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


def test_a_study_file_with_its_own_validation_split_exports_and_loads_back(tmp_path):
    from hpo.spec import dump_spec

    (tmp_path / "t.csv").write_text("text,label\na b,x\nc d,y\n")
    (tmp_path / "s.yaml").write_text("source: {builtin: 20newsgroups}\n"
                                     "target: {path: t.csv, test_path: t.csv, validation_path: t.csv}\nn_trials: 1\n")
    spec = load_spec(tmp_path / "s.yaml")
    text = dump_spec(spec)
    assert "validation_size" not in yaml.safe_load(text)  # refused beside the target's own validation split
    assert spec_from_text(text, source="exported") == spec


# -- `-o -` is standard output -----------------------------------------------------------------------------------


def _commands_with_an_output_option() -> set[str]:
    """Every command of the real typer app that has an option writing somewhere (-o, --output, --out)."""
    from typer.main import get_command

    from hpo.cli import app

    def walk(group, prefix: str):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    return {name for name, command in walk(get_command(app), "")
            if any({"-o", "--output", "--out"} & set(getattr(param, "opts", ()))
                   for param in command.params)}


def _saved_model(root, tiny_model_dir):
    """A classifier saved as `hpo train` saves one (random heads), to predict with."""
    from hpo.classifier.saved import save_classifier
    from hpo.spec import ModelSpec
    from hpo.train.model import TransferModel, load_encoder

    bundle = load_encoder(ModelSpec(id=str(tiny_model_dir)))
    model = TransferModel(bundle.encoder, 3, 2, "mean").eval()
    study = write_study(root / "study.yaml", tiny_model_dir)
    save_classifier(model, bundle.tokenizer, root / "model", label_names=("a", "b", "c"), source_label_names=("x", "y"),
                    config=load_spec(study).base_config(), study_text=study.read_text())
    return root / "model"


def test_every_command_with_an_output_option_takes_dash_for_standard_output(study_dir, tmp_path, tiny_model_dir):
    import shutil

    shutil.copy(study_dir / "hpo.db", tmp_path / "hpo.db")
    shutil.copy(study_dir / "best.yaml", tmp_path / "best.yaml")
    (tmp_path / "texts.txt").write_text("Crude oil prices rose.\nThe bank cut its rates.\n")
    model = _saved_model(tmp_path, tiny_model_dir)
    # command: (its arguments, what standard output holds; or None and the one-line refusal)
    expected = {
        "report": (["report", "tiny", "-o", "-"], lambda out: out.startswith("<!DOCTYPE html") and
                   'id="fig-states"' in out),
        "export": (["export", "tiny", "-o", "-"], lambda out: load_spec_text(out).searched() == {}),
        "predict": (["predict", str(model), "texts.txt", "-o", "-"], lambda out: out.splitlines()[0].startswith(
            "text,label,p_a,p_b,p_c") and len(out.splitlines()) == 3),
        "transfer-effect": (["transfer-effect", "tiny", "-o", "-"], "-o -: hpo transfer-effect writes two files, an "
                            "HTML page and the JSON beside it, which standard output cannot hold"),
        "train": (["train", "best.yaml", "--out", "-"], "--out -: a saved model is a directory of files, which "
                  "standard output cannot hold; give a directory"),
    }
    assert _commands_with_an_output_option() == set(expected)  # a new command with an output is checked here
    for name, (args, check) in expected.items():
        done = cli(*args, cwd=tmp_path)
        if isinstance(check, str):
            assert done.returncode == 1 and done.stdout == "", (name, done.stdout[-500:], done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {check}"), (name, done.stderr)
        else:
            assert done.returncode == 0, (name, done.stderr)
            assert check(done.stdout), (name, done.stdout[:500])
            assert "Traceback" not in done.stderr
        assert not (tmp_path / "-").exists(), f"{name} wrote a file named -"


def test_an_exported_trial_of_a_source_search_fixes_its_source_and_trains(tmp_path, tiny_model_dir):
    """A study that searches its source task: each exported trial carries the source it drew (`none`: no source),
    and `hpo train` fits it, a `none` trial on the target alone."""
    spec = write_study(tmp_path / "s.yaml", tiny_model_dir, n_trials=2, epochs=1, pruner="{name: none}")
    newsgroups = {"builtin": "20newsgroups", "max_samples": 96}
    study_from(spec, spec, {"source": DELETE})
    study_from(spec, spec, {"source": {"choices": [newsgroups, "none"]}})
    origin = {"study": "x", "spec_sha256": "0" * 64, "data": {}, "model": {}, "packages": {},
              "exported_at": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "queued.yaml").write_text(yaml.safe_dump({"exported_from": origin, "configs": [
        {"params": {"source": s, "learning_rate": 1e-3, "target_weight": 0.5}} for s in ("20newsgroups", "none")]}))
    done = hpo_cli("run", str(spec), "--enqueue", "queued.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for trial, source in ((0, newsgroups), (1, {"choices": ["none"]})):
        assert cli("export", "tiny", "--trial", str(trial), "-o", f"t{trial}.yaml", cwd=tmp_path).returncode == 0
        exported = yaml.safe_load((tmp_path / f"t{trial}.yaml").read_text())
        assert {k: v for k, v in exported["source"].items() if v is not None and k in source} == source
        fixed = load_spec(tmp_path / f"t{trial}.yaml")
        assert fixed.searched() == {} and not fixed.searches_source
    assert yaml.safe_load((tmp_path / "t1.yaml").read_text())["search_space"]["target_weight"] == 1.0
    done = hpo_cli("train", "t1.yaml", "--out", "m", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "m" / "hpo_classifier.json").read_text())["source_label_names"] == []
    assert "on the target alone (no source task)" in (tmp_path / "m" / "README.md").read_text()
    refused = cli("train", "s.yaml", "--out", "n", cwd=tmp_path)  # the study file itself still searches
    assert refused.returncode == 1 and "searches learning_rate, target_weight, freeze_depth, l1, l2, source" in \
        " ".join(refused.stderr.split()), refused.stderr
