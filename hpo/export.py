"""Exporting trials: a runnable study file with every searched field fixed, the k best configs for a warm start,
or TrainingArguments-style JSON. Pure functions of a study; the CLI writes what they return."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo.errors import HpoError
from hpo.spec import Choice, Range, StudySpec
from hpo.train.config import TrainConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["best_trials", "enqueued_configs", "export_study", "exported_study", "top_configs", "training_args"]

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


def exported_study(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The study file the study was created from, with the trial's values fixed in the search space."""
    raw = yaml.safe_load(study.user_attrs["provenance"]["spec_text"]) if study.user_attrs.get("provenance") else {}
    origin = _origin(study)
    raw["name"] = f"{study.study_name}-trial{trial.number}"
    raw["search_space"] = {**(raw.get("search_space") or {}), **trial.params}
    raw["n_trials"] = 1
    raw.pop("timeout", None)
    raw.pop("storage", None)
    raw["exported_from"] = {**origin, **_trial_record(trial)}
    return raw


def top_configs(study: optuna.Study, k: int) -> dict[str, Any]:
    """The k best trials' parameters, for `hpo run --enqueue` on another study."""
    return {"exported_from": _origin(study), "configs": [_trial_record(t) for t in best_trials(study, k)]}


def training_args(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Fields of transformers' TrainingArguments under their names there; the transfer recipe under
    `transfer_hpo` (TrainingArguments has no field for it)."""
    raw = yaml.safe_load(study.user_attrs["provenance"]["spec_text"])
    config = TrainConfig.model_validate({**(raw.get("training") or {}),
                                         **_fixed(raw.get("search_space") or {}), **trial.params})
    fields = _training_arguments_fields()
    names = dict(_TRAINING_ARGS)
    if "warmup_ratio" not in fields:  # transformers 5 folded it into warmup_steps, where a float < 1 is a ratio
        names["warmup_ratio"] = "warmup_steps"
    args: dict[str, Any] = {hf: getattr(config, ours) for ours, hf in names.items() if hf in fields}
    args |= {"per_device_eval_batch_size": config.batch_size * 4, "lr_scheduler_type": "linear",
             "optim": "adamw_torch", "bf16": config.precision == "bf16"}
    pooling = (raw.get("model") or {}).get("pooling", "mean") if isinstance(raw.get("model"), dict) else "mean"
    args["transfer_hpo"] = {name: getattr(config, name) for name in _TRANSFER_ONLY} | {
        "pooling": pooling, "head_learning_rate": config.learning_rate * config.head_lr_multiplier,
        "exported_from": {**_origin(study), **_trial_record(trial)},
    }
    return args


def _training_arguments_fields() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {field.name for field in dataclasses.fields(TrainingArguments)}


def _fixed(space: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in space.items() if not isinstance(v, dict)}


def enqueued_configs(document: dict[str, Any], spec: StudySpec, source: str) -> list[dict[str, Any]]:
    """The parameter sets an exported file (`--top k`, or a single exported study file) asks to try first,
    checked against the new study's search space."""
    if "configs" in document:
        configs = [c.get("params", {}) for c in document["configs"]]
    elif "params" in (document.get("exported_from") or {}):
        configs = [document["exported_from"]["params"]]
    else:
        raise HpoError(f"{source}: not a file written by `hpo export` (no configs or exported_from.params)")
    searched = spec.searched()
    for number, params in enumerate(configs):
        for name, value in params.items():
            entry = searched.get(name)
            if entry is None:
                raise HpoError(f"{source}: config {number} sets {name}, which study {spec.name!r} does not search "
                               f"(searched: {', '.join(searched) or 'nothing'})")
            inside = value in entry.choices if isinstance(entry, Choice) else _in_range(entry, value)
            if not inside:
                raise HpoError(f"{source}: config {number} has {name} = {value!r}, outside study {spec.name!r}'s "
                               f"search space ({_describe(entry)})")
    return configs


def _in_range(entry: Range, value: Any) -> bool:
    return isinstance(value, int | float) and entry.low <= value <= entry.high


def _describe(entry: Range | Choice) -> str:
    return f"choices {entry.choices}" if isinstance(entry, Choice) else f"{entry.low} .. {entry.high}"


def export_study(name: str, output: Path, *, top: int | None, output_format: str, trial: int | None,
                 storage: str | None) -> str:
    """`hpo export`: load the study, write the requested export, say what was written."""
    import json

    from hpo.storage import load_study

    if output_format not in ("yaml", "training-args"):
        raise HpoError(f"--format must be yaml or training-args, not {output_format!r}")
    study, _ = load_study(name, storage)
    if top is not None:
        document: Any = top_configs(study, top)
        what = f"the {len(document['configs'])} best configs"
    else:
        chosen = best_trials(study)[0] if trial is None else _trial(study, trial)
        document = training_args(study, chosen) if output_format == "training-args" else exported_study(study, chosen)
        what = f"trial {chosen.number} (val F1 {chosen.value:.4f})"
    from hpo.files import write_output

    if output_format == "training-args" and top is None:
        write_output(output, json.dumps(document, indent=2) + "\n")
    else:
        write_output(output, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return f"exported {what} of study {name!r} to {output}"


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not trials or trials[0].state != TrialState.COMPLETE:
        raise HpoError(f"study {study.study_name!r} has no completed trial {number}")
    return trials[0]
