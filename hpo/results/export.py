"""Exporting trials: a runnable study file with every searched field fixed (`yaml`), the k best configs for a warm
start (`--top K`), or the keyword arguments of transformers' `TrainingArguments` (`training-args`). Built from the
study's stored spec (never its YAML as raw dicts).

An exported study file writes every field, defaults and nulls included, so that it means the same whatever a later
version's defaults are.

Every training field goes somewhere in the TrainingArguments export, by one table (`TRAINING_ARGUMENTS`, `RECIPE`,
`NOT_EXPORTABLE`; a test fails on a field in none of them): to TrainingArguments keyword arguments, which load as
`TrainingArguments(**json.load(f))` exactly as written; to the transfer recipe beside them,
`FILE.transfer-hpo.json`, for what TrainingArguments has no field for (λ, the freeze depth, the penalties, the
pooling, where the trial came from); or, for what means nothing outside this project's search, to NOT_EXPORTABLE
with the reason (listed in the recipe file too). `use_cpu` is true only when the study asked for the CPU
(`device: cpu`), never because the trial happened to run on one; `bf16`/`fp16` follow the study's `precision`, and
`auto` as the trial resolved it only where the trial ran on the kind of device the export asks for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo.errors import HpoError, OutputError
from hpo.results.records import ExportFormat
from hpo.spec import ExportedFrom, StudySpec, dump_spec, stored_provenance, stored_spec
from hpo.train.config import TrainConfig, current_names
from hpo.train.metrics import objective_of

if TYPE_CHECKING:
    import optuna

__all__ = ["NOT_EXPORTABLE", "RECIPE", "TRAINING_ARGUMENTS", "ExportFormat", "Exported", "TrialRun", "best_trials",
           "export_study", "exported_spec", "top_configs", "training_args", "trial_by_number"]

STDOUT = Path("-")


@dataclass(frozen=True)
class TrialRun:
    """What an argument's value may depend on besides the config: how the trial ran, the installed fields."""

    device: str  # where the trial ran: cpu or cuda
    precision: str  # how it ran: fp32, bf16 or fp16
    fields: frozenset[str]  # TrainingArguments' fields in the installed transformers

    def precision_for(self, config: TrainConfig) -> str:
        """The study's precision; `auto` as the trial resolved it where it ran on the kind of device the export
        asks for (a CPU only with `device: cpu`), else fp32: a CPU's bf16 says nothing of the GPU the Trainer
        may get, and TrainingArguments refuses bf16 on a CPU without use_cpu."""
        if config.precision != "auto":
            return config.precision
        return self.precision if (self.device == "cpu") == (config.device == "cpu") else "fp32"


# TrainConfig field -> the TrainingArguments keyword arguments it becomes.
TRAINING_ARGUMENTS: dict[str, Callable[[TrainConfig, TrialRun], dict[str, Any]]] = {
    "learning_rate": lambda c, _: {"learning_rate": c.learning_rate},
    "weight_decay": lambda c, _: {"weight_decay": c.weight_decay},
    "epochs": lambda c, _: {"num_train_epochs": c.epochs},
    "batch_size": lambda c, _: {"per_device_train_batch_size": c.batch_size,
                                "per_device_eval_batch_size": c.batch_size * 4},  # as the loop evaluates
    # transformers 5 reads a float below 1 in warmup_steps as the ratio; 4 has warmup_ratio
    "warmup_ratio": lambda c, ran: {"warmup_ratio" if "warmup_ratio" in ran.fields else "warmup_steps":
                                    c.warmup_ratio},
    "seed": lambda c, _: {"seed": c.seed},
    # None is our "no clipping"; the Trainer's is 0 (it clips when max_grad_norm > 0, and None fails that test)
    "max_grad_norm": lambda c, _: {"max_grad_norm": c.max_grad_norm if c.max_grad_norm is not None else 0.0},
    "device": lambda c, _: {"use_cpu": c.device == "cpu"},  # auto and cuda: the Trainer takes a GPU when there is one
    "precision": lambda c, ran: {"bf16": ran.precision_for(c) == "bf16", "fp16": ran.precision_for(c) == "fp16"},
    "gradient_checkpointing": lambda c, _: {"gradient_checkpointing": c.gradient_checkpointing},
}
# Fields TrainingArguments has nothing for: the transfer recipe, read by whoever reimplements it (the model's
# pooling, LoRA through peft's LoraConfig, the loss, the optimiser's parameter groups, the tokenizer's length).
RECIPE = ("target_weight", "source_batches_per_step", "freeze_depth", "l1", "l2", "penalty_reference",
          "head_lr_multiplier", "layer_lr_decay", "adapter", "lora_r", "lora_alpha", "lora_dropout",
          "lora_target_modules", "pooling", "max_length", "evaluations_per_epoch", "f1_average")
# Fields that mean nothing outside this project's loop and search, and why.
NOT_EXPORTABLE = {
    "reuse_activations": "a speed-up of this project's loop (the frozen layers' outputs computed once and reused): "
                         "the same results without it, and the Trainer has nothing like it",
    "time_limit_s": "a guard of the search (a trial running longer is marked FAIL): a single training run has no "
                    "trial to fail, and TrainingArguments has no time limit",
}


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
    prov = stored_provenance(study)
    if prov is None:
        raise HpoError(f"study {study.study_name!r} was not created by `hpo run` (no provenance to export from)")
    origin = ExportedFrom(study=study.study_name, spec_sha256=prov.spec_sha256, data=prov.data,
                          model=prov.model, packages=prov.packages, git_commit=prov.git_commit,
                          exported_at=datetime.now(UTC).isoformat(timespec="seconds"), metric=_metric(study))
    return origin if trial is None else origin.model_copy(update=_trial_record(trial))


def _metric(study: optuna.Study) -> str:
    return (study.metric_names or [None])[0] or "val_f1"


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"trial": trial.number, "value": trial.value, "best_evaluation": trial.user_attrs.get("best_evaluation"),
            "best_epoch": trial.user_attrs.get("best_epoch"), "params": current_names(trial.params)}


def exported_spec(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> StudySpec:
    """The spec the study was created from, with the trial's values fixed in the search space and its source task
    (of a study that searches it) fixed too, one trial, and where it came from."""
    spec, _ = stored_spec(study)
    fixed = spec.fixed_for(trial.params, f"{study.study_name}-trial{trial.number}")
    return fixed.model_copy(update={"exported_from": _origin(study, trial)})


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
    ran = TrialRun(str(trial.user_attrs.get("device", "cpu")).split(":")[0],
                   trial.user_attrs.get("precision", "fp32"), training_arguments_fields())
    args: dict[str, Any] = {"output_dir": f"{study.study_name}-trial{trial.number}", "lr_scheduler_type": "linear",
                            "optim": "adamw_torch"}  # the loop's schedule and its AdamW (fused there: same update)
    for to_arguments in TRAINING_ARGUMENTS.values():
        args |= to_arguments(config, ran)
    recipe = {name: getattr(config, name) for name in RECIPE} | {
        "objective": spec.objective, "metric": _metric(study),  # what the search maximised or minimised
        "pooling": config.pooling or spec.model.pooling,  # none: the model section's
        "head_learning_rate": config.learning_rate * config.head_lr_multiplier,
        "not_exportable": {name: {"value": getattr(config, name), "reason": reason}
                           for name, reason in NOT_EXPORTABLE.items()},
        "trial_ran_on": {"device": ran.device, "precision": ran.precision},
        "exported_from": _origin(study, trial).model_dump(mode="json"),
    }
    return args, recipe


def training_arguments_fields() -> frozenset[str]:
    import dataclasses

    from transformers import TrainingArguments

    return frozenset(field.name for field in dataclasses.fields(TrainingArguments))


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
        chosen = best_trials(study)[0] if trial is None else trial_by_number(study, trial)
        what = f"trial {chosen.number} ({objective_of(study.metric_names).label} {chosen.value:.4f})"
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


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState

    from hpo.storage import frozen_trials

    trials = frozen_trials(study, [number])
    if not trials or trials[0].state != TrialState.COMPLETE:
        raise HpoError(f"study {study.study_name!r} has no completed trial {number}")
    return trials[0]
