"""The one place that calls `trial.suggest_*`: a study's search space -> the trial's TrainConfig.

Target-only trials. A study compares transfer against training on the target alone, so λ = 1 must be tried
on purpose, not left to chance. `target_weight: {low, high: 1.0, target_only_share: s}` makes the sampler
(algorithms.py) fix λ to 1 for a trial whenever target-only trials would otherwise fall below the share s:
trial n is target only when fewer than floor(s·(n' + 1)) of the n' non-failed trials before it are (counted
over the whole study, by the storage). With s = 0.25 and no failures, trials 3, 7, 11, … are target only.
Every other field is sampled as usual; the value 1.0 lies inside the declared range, so the sampler models these
trials like any other. Every trial that runs at λ = 1 carries the user attribute `target_only = True`.

λ's parameter name. New studies store λ as `target_weight`; a study created before the rename keeps
`source_weight` (`lambda_name`), so its trials never mix both names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hpo.spec import Choice, Range, StudySpec
from hpo.spec.sources import NO_SOURCE
from hpo.train.config import LAMBDA, LEGACY_LAMBDA, LORA_FIELDS, TrainConfig, lambda_of

if TYPE_CHECKING:
    import optuna

__all__ = ["SOURCE", "is_target_only", "lambda_name", "suggest", "target_only_params", "target_only_share",
           "wants_target_only"]

SOURCE = "source"  # the trial parameter of a study that searches its source task


def lambda_name(search_space_record: dict[str, Any] | None) -> str:
    """The parameter name a study stores λ under, from the search space it was created with (its provenance)."""
    record = search_space_record or {}
    created_with = {*record.get("fixed", {}), *record.get("searched", {})}
    return LEGACY_LAMBDA if LEGACY_LAMBDA in created_with else LAMBDA


def suggest(trial: optuna.Trial, spec: StudySpec, lambda_param: str = LAMBDA) -> TrainConfig:
    """Sample the trial's parameters (λ under the study's name for it; the source task, as the parameter `source`,
    when the study searches it) and return its training config. Conditional fields are sampled only where they
    count: the LoRA fields only in trials whose `adapter` is `lora`, λ only in trials with a source."""
    values: dict[str, object] = {}
    if spec.searches_source:
        values[SOURCE] = trial.suggest_categorical(SOURCE, list(spec.source_candidates()))
    searched = spec.searched()
    for name, entry in sorted(searched.items(), key=lambda item: item[0] in LORA_FIELDS):  # adapter first
        if name in LORA_FIELDS and values.get("adapter", spec.base_config().adapter) != "lora":
            continue
        if name == LAMBDA and spec.trial_source(values) == NO_SOURCE:
            continue
        stored = lambda_param if name == LAMBDA else name
        if isinstance(entry, Choice):
            values[stored] = trial.suggest_categorical(stored, entry.choices)
        elif TrainConfig.model_fields[name].annotation is int:
            values[stored] = trial.suggest_int(stored, int(entry.low), int(entry.high), step=entry.step or 1,
                                               log=entry.log)
        else:
            values[stored] = trial.suggest_float(stored, entry.low, entry.high, step=entry.step, log=entry.log)
    config = spec.trial_config(values)  # a trial without a source trains at λ = 1
    if config.target_weight == 1.0:  # recorded, so that counts and reports need not infer it from λ
        trial.set_user_attr("target_only", True)
    return config


def is_target_only(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("target_only")) or lambda_of(trial.params) == 1.0


def target_only_params(spec: StudySpec, lambda_param: str) -> dict[str, object]:
    """What a reserved target-only trial fixes: λ = 1, and no source where `none` is a candidate source."""
    fixed: dict[str, object] = {lambda_param: 1.0}
    if spec.searches_source and NO_SOURCE in spec.source_candidates():
        fixed[SOURCE] = NO_SOURCE
    return fixed


def target_only_share(spec: StudySpec) -> float | None:
    entry = spec.search_space.get(LAMBDA)
    return entry.target_only_share if isinstance(entry, Range) and entry.target_only_share else None


def wants_target_only(share: float, counted: int, target_only: int) -> bool:
    """True when the next trial should be target only, to keep them at `share` of the study's trials: `counted`
    trials before it (every one but the failed), `target_only` of them target only."""
    return target_only < math.floor(share * (counted + 1))
