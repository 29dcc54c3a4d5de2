"""Exporting trials: a runnable study file with every searched field fixed (`yaml`), the k best configs for a warm
start (`--top K`), or the keyword arguments of transformers' `TrainingArguments` (`training-args`). Built from the
study's stored spec (never its YAML as raw dicts).

The TrainingArguments JSON loads as `TrainingArguments(**json.load(f))`, exactly as written: `bf16`, `fp16` and
`use_cpu` say how the trial actually ran, warmup is written as the installed transformers expects it (a float below
1 in `warmup_steps` is the ratio in transformers 5; `warmup_ratio` where it still exists). What TrainingArguments
has no field for (λ, the freeze depth, the penalties, the pooling, where the trial came from) goes to a sibling
file, `FILE.transfer-hpo.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo.errors import HpoError, OutputError
from hpo.results.records import ExportFormat
from hpo.spec import ExportedFrom, StudySpec, dump_spec, stored_spec
from hpo.train.config import current_names

if TYPE_CHECKING:
    import optuna

__all__ = ["ExportFormat", "Exported", "best_trials", "export_study", "exported_spec", "top_configs",
           "training_args"]

STDOUT = Path("-")
# TrainConfig fields that TrainingArguments has under another name, or the same one.
_TRAINING_ARGS = {
    "learning_rate": "learning_rate", "epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size",
    "weight_decay": "weight_decay", "seed": "seed",
}
# What TrainingArguments has no field for: the transfer recipe, read by whoever reimplements it.
_TRANSFER_ONLY = ("target_weight", "freeze_depth", "l1", "l2", "penalty_reference", "head_lr_multiplier",
                  "max_length", "evaluations_per_epoch", "f1_average")


@dataclass(frozen=True)
class Exported:
    message: str  # what was exported where
    stdout: str | None = None  # the export itself, when written to standard output (-o -)


def best_trials(study: optuna.Study, k: int = 1) -> list[optuna.trial.FrozenTrial]:
    """The k best complete trials, best first, read with a query or two whatever the size of the study."""
    from hpo.storage import best_numbers, frozen_trials

    numbers = best_numbers(study, k)
    if not numbers:
        raise HpoError(f"study {study.study_name!r} has no completed trial to export yet")
    return sorted(frozen_trials(study, numbers), key=lambda t: numbers.index(t.number))


def _origin(study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> ExportedFrom:
    """Where an export comes from: the study's provenance, and the trial when one is exported."""
    from hpo.storage import provenance_of

    prov = provenance_of(study)
    if prov is None:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no provenance to export from)")
    origin = ExportedFrom(study=study.study_name, spec_sha256=prov["spec_sha256"], data=prov["data"],
                          model=prov["model"], packages=prov["packages"], git_commit=prov["git_commit"],
                          exported_at=datetime.now(UTC).isoformat(timespec="seconds"), metric=_metric(study))
    return origin if trial is None else origin.model_copy(update=_trial_record(trial))


def _metric(study: optuna.Study) -> str:
    return (study.metric_names or [None])[0] or "val_f1"


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"trial": trial.number, "value": trial.value, "best_evaluation": trial.user_attrs.get("best_evaluation"),
            "best_epoch": trial.user_attrs.get("best_epoch"), "params": current_names(trial.params)}


def exported_spec(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> StudySpec:
    """The spec the study was created from, with the trial's values fixed in the search space, one trial, and where
    it came from."""
    spec, _ = stored_spec(study)
    config = spec.trial_config(trial.params)  # validated; λ under today's name
    fixed = {name: getattr(config, name) for name in spec.searched()}
    return spec.model_copy(update={
        "name": f"{study.study_name}-trial{trial.number}", "search_space": {**spec.search_space, **fixed},
        "n_trials": 1, "timeout": None, "storage": None, "exported_from": _origin(study, trial),
    })


def top_configs(study: optuna.Study, k: int) -> dict[str, Any]:
    """The k best trials' parameters, for `hpo run --enqueue` on another study."""
    metric = _metric(study)
    return {"exported_from": _origin(study).model_dump(mode="json", exclude={"trial", "value", "best_evaluation",
                                                                            "best_epoch", "params"}),
            "configs": [{**_trial_record(t), "metric": metric} for t in best_trials(study, k)]}


def training_args(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrainingArguments keyword arguments, the transfer recipe and provenance that have no field there)."""
    spec, _ = stored_spec(study)
    config = spec.trial_config(trial.params)
    fields = _training_arguments_fields()
    args: dict[str, Any] = {hf: getattr(config, ours) for ours, hf in _TRAINING_ARGS.items() if hf in fields}
    args["warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"] = config.warmup_ratio
    precision = trial.user_attrs.get("precision", "fp32")  # as the trial ran, not as the study file asked
    args |= {"output_dir": f"{study.study_name}-trial{trial.number}",
             "per_device_eval_batch_size": config.batch_size * 4, "lr_scheduler_type": "linear", "optim": "adamw_torch",
             "bf16": precision == "bf16", "fp16": precision == "fp16",
             "use_cpu": trial.user_attrs.get("device", "cpu") == "cpu"}
    recipe = {name: getattr(config, name) for name in _TRANSFER_ONLY} | {
        "pooling": spec.model.pooling, "head_learning_rate": config.learning_rate * config.head_lr_multiplier,
        "exported_from": _origin(study, trial).model_dump(mode="json"),
    }
    return args, recipe


def _training_arguments_fields() -> set[str]:
    import dataclasses

    from transformers import TrainingArguments

    return {field.name for field in dataclasses.fields(TrainingArguments)}


def _check_options(output: Path, top: int | None, fmt: ExportFormat, trial: int | None) -> None:
    """Every combination either works or is refused here, naming the two options that clash."""
    if top is not None and trial is not None:
        raise HpoError("--top and --trial cannot be used together: --top exports the k best configs, --trial one trial")
    if top is not None and fmt is ExportFormat.training_args:
        raise HpoError("--top and --format training-args cannot be used together: TrainingArguments describe one "
                       "trial (the best, or --trial N)")
    suffixes = {ExportFormat.yaml: (".yaml", ".yml"), ExportFormat.training_args: (".json",)}[fmt]
    if output != STDOUT and output.is_dir():  # the clearer reason first: no suffix makes a directory writable
        raise OutputError(f"{output}: cannot write: it is a directory; give a file name")
    if output != STDOUT and output.suffix.lower() not in suffixes:
        raise HpoError(f"--format {fmt.value} and -o {output} do not match: write it to a {' or '.join(suffixes)} "
                       "file (or - for standard output)")


def export_study(name: str, output: Path, *, top: int | None, output_format: ExportFormat, trial: int | None,
                 storage: str | None) -> Exported:
    """`hpo export`: load the study, write the requested export (`-o -`: return it for standard output)."""
    from hpo.files import write_output
    from hpo.storage import load_study

    output_format = ExportFormat(output_format)
    _check_options(Path(output), top, output_format, trial)
    study, _ = load_study(name, storage)
    written: dict[Path, str] = {}
    if top is not None:
        document = top_configs(study, top)
        written[output] = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        what = f"the {len(document['configs'])} best configs"
    else:
        chosen = best_trials(study)[0] if trial is None else _trial(study, trial)
        what = f"trial {chosen.number} (val F1 {chosen.value:.4f})"
        if output_format is ExportFormat.training_args:
            args, recipe = training_args(study, chosen)
            written[output] = json.dumps(args, indent=2) + "\n"
            if output != STDOUT:
                written[output.with_suffix(".transfer-hpo.json")] = json.dumps(recipe, indent=2) + "\n"
        else:
            comment = f"trial {chosen.number} of study {name!r}, exported by hpo export"
            written[output] = dump_spec(exported_spec(study, chosen), comment=comment)
    for path, text in written.items():
        if path != STDOUT:
            write_output(path, text)
    where = " and ".join(str(path) for path in written if path != STDOUT) or "standard output"
    if output == STDOUT and output_format is ExportFormat.training_args:
        where += " (TrainingArguments only: -o FILE.json also writes the transfer recipe, FILE.transfer-hpo.json)"
    return Exported(f"exported {what} of study {name!r} to {where}", written.get(STDOUT))


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    from hpo.storage import frozen_trials

    trials = frozen_trials(study, [number])
    if not trials or trials[0].state != TrialState.COMPLETE:
        raise HpoError(f"study {study.study_name!r} has no completed trial {number}")
    return trials[0]
