"""Exporting trials: a runnable study file with every searched field fixed, the k best configs for a warm start,
or TrainingArguments-style JSON. Built from the study's stored spec (never its YAML as raw dicts); the command
writes what they return."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo.errors import HpoError
from hpo.spec import StudySpec, dump_spec, stored_spec
from hpo.train.config import TrainConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["best_trials", "export_study", "exported_spec", "top_configs", "training_args"]

# TrainConfig fields that TrainingArguments has under another name, or the same one.
_TRAINING_ARGS = {
    "learning_rate": "learning_rate", "epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size",
    "warmup_ratio": "warmup_ratio", "weight_decay": "weight_decay", "seed": "seed",
}
# What TrainingArguments has no field for: the transfer recipe, read by whoever reimplements it.
_TRANSFER_ONLY = ("source_weight", "freeze_depth", "l1", "l2", "penalty_reference", "head_lr_multiplier",
                  "max_length", "evaluations_per_epoch", "f1_average")


def best_trials(study: optuna.Study, k: int = 1) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise HpoError(f"study {study.study_name!r} has no completed trial to export yet")
    return sorted(complete, key=lambda t: (-t.value, t.number))[:k]


def _origin(study: optuna.Study) -> dict[str, Any]:
    prov = study.user_attrs.get("provenance")
    if prov is None:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no provenance to export from)")
    return {"study": study.study_name, "spec_sha256": prov["spec_sha256"], "data": prov["data"],
            "model": prov["model"], "packages": prov["packages"], "git_commit": prov["git_commit"],
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"trial": trial.number, "val_f1": trial.value, "best_step": trial.user_attrs.get("best_step"),
            "best_epoch": trial.user_attrs.get("best_epoch"), "params": dict(trial.params)}


def exported_spec(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> StudySpec:
    """The spec the study was created from, with the trial's values fixed in the search space, one trial, and where
    it came from."""
    spec, _ = stored_spec(study)
    return spec.model_copy(update={
        "name": f"{study.study_name}-trial{trial.number}", "search_space": {**spec.search_space, **trial.params},
        "n_trials": 1, "timeout": None, "storage": None, "exported_from": {**_origin(study), **_trial_record(trial)},
    })


def top_configs(study: optuna.Study, k: int) -> dict[str, Any]:
    """The k best trials' parameters, for `hpo run --enqueue` on another study."""
    return {"exported_from": _origin(study), "configs": [_trial_record(t) for t in best_trials(study, k)]}


def training_args(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Fields of transformers' TrainingArguments under their names there; the transfer recipe under
    `transfer_hpo` (TrainingArguments has no field for it)."""
    spec, _ = stored_spec(study)
    config = TrainConfig.model_validate({**spec.base_config().model_dump(), **trial.params})
    fields = _training_arguments_fields()
    names = dict(_TRAINING_ARGS)
    if "warmup_ratio" not in fields:  # transformers 5 folded it into warmup_steps, where a float < 1 is a ratio
        names["warmup_ratio"] = "warmup_steps"
    args: dict[str, Any] = {hf: getattr(config, ours) for ours, hf in names.items() if hf in fields}
    args |= {"per_device_eval_batch_size": config.batch_size * 4, "lr_scheduler_type": "linear",
             "optim": "adamw_torch", "bf16": config.precision == "bf16"}
    args["transfer_hpo"] = {name: getattr(config, name) for name in _TRANSFER_ONLY} | {
        "pooling": spec.model.pooling, "head_learning_rate": config.learning_rate * config.head_lr_multiplier,
        "exported_from": {**_origin(study), **_trial_record(trial)},
    }
    return args


def _training_arguments_fields() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {field.name for field in dataclasses.fields(TrainingArguments)}


def export_study(name: str, output: Path, *, top: int | None, output_format: str, trial: int | None,
                 storage: str | None) -> str:
    """`hpo export`: load the study, write the requested export, say what was written."""
    from hpo.files import write_output
    from hpo.storage import load_study

    if output_format not in ("yaml", "training-args"):
        raise HpoError(f"--format must be yaml or training-args, not {output_format!r}")
    study, _ = load_study(name, storage)
    if top is not None:
        document = top_configs(study, top)
        write_output(output, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        return f"exported the {len(document['configs'])} best configs of study {name!r} to {output}"
    chosen = best_trials(study)[0] if trial is None else _trial(study, trial)
    if output_format == "training-args":
        write_output(output, json.dumps(training_args(study, chosen), indent=2) + "\n")
    else:
        write_output(output, dump_spec(exported_spec(study, chosen),
                                       comment=f"trial {chosen.number} of study {name!r}, exported by hpo export"))
    return f"exported trial {chosen.number} (val F1 {chosen.value:.4f}) of study {name!r} to {output}"


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not trials or trials[0].state != TrialState.COMPLETE:
        raise HpoError(f"study {study.study_name!r} has no completed trial {number}")
    return trials[0]
