"""Samplers and pruners from the study file: one small registry each, all Optuna's own implementations, and
the one wrapper that keeps the study's share of target-only trials (space.py)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo.spec import PrunerSpec, SamplerSpec
from hpo.train.config import LAMBDA

if TYPE_CHECKING:
    import optuna

__all__ = ["make_pruner", "make_sampler"]


def make_sampler(
    spec: SamplerSpec, seed: int, target_only_share: float | None = None, study: optuna.Study | None = None,
    target_only: Mapping[str, object] | None = None,
) -> optuna.samplers.BaseSampler:
    """The study file's sampler; with a target-only share, wrapped to keep that share of the whole `study`, each
    reserved trial fixing `target_only` (default λ = 1; see hpo.search.space.target_only_params)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    samplers = {
        # Multivariate TPE models the parameters jointly (λ and learning rate interact); the constant liar
        # keeps parallel workers from proposing the same point while their trials are still running.
        "tpe": lambda: optuna.samplers.TPESampler(
            n_startup_trials=spec.n_startup_trials, multivariate=True, constant_liar=True, seed=seed
        ),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(n_startup_trials=spec.n_startup_trials, seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(scramble=True, seed=seed, warn_asynchronous_seeding=False),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(n_startup_trials=spec.n_startup_trials, seed=seed),
    }
    sampler = samplers[spec.name]()
    if not target_only_share:
        return sampler
    if study is None:
        raise ValueError("a target-only share is kept over a study: pass study=")
    return _target_only_share_sampler(sampler, target_only_share, study, dict(target_only or {LAMBDA: 1.0}))


def _target_only_share_sampler(
    base: optuna.samplers.BaseSampler, share: float, whole: optuna.Study, target_only: dict[str, object]
) -> optuna.samplers.BaseSampler:
    """Decides before each trial whether it is target only; such a trial is sampled by Optuna's
    PartialFixedSampler with λ fixed to 1, every other one by `base`. The decision is taken once the trial
    exists, after the budget admitted it, so it never queues a trial that might not run. It counts over the
    `whole` study, through the storage: the study Optuna hands a sampler is filtered to the trial's bracket
    under Hyperband, and counting there would keep the share per bracket, which leaves most studies with none."""
    import optuna

    from hpo.search.space import wants_target_only
    from hpo.storage import target_only_tally

    class TargetOnlyShare(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._sampler = base

        def reseed_rng(self) -> None:
            base.reseed_rng()

        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            # A queued trial (a retry, an exported config) keeps its own λ: Optuna keeps queued parameters
            # in the trial's "fixed_params" system attribute.
            queued = bool(trial.system_attrs.get("fixed_params"))
            fixed = not queued and wants_target_only(share, *target_only_tally(whole, trial.number))
            self._sampler = optuna.samplers.PartialFixedSampler(target_only, base) if fixed else base
            self._sampler.before_trial(study, trial)

        def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Any:
            return self._sampler.infer_relative_search_space(study, trial)

        def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, space: Any) -> Any:
            return self._sampler.sample_relative(study, trial, space)

        def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str,
                               distribution: Any) -> Any:
            return self._sampler.sample_independent(study, trial, name, distribution)

        def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any,
                        values: Sequence[float] | None) -> None:
            self._sampler.after_trial(study, trial, state, values)

    return TargetOnlyShare()


def make_pruner(spec: PrunerSpec, max_evaluations: int) -> optuna.pruners.BasePruner:
    """Steps are evaluations: 1 .. epochs × evaluations_per_epoch."""
    import optuna

    pruners = {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource, max_resource=max_evaluations, reduction_factor=spec.reduction_factor
        ),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        ),
        "median": lambda: optuna.pruners.MedianPruner(
            n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps
        ),
        "none": optuna.pruners.NopPruner,
    }
    pruner = pruners[spec.name]()
    if spec.patience is not None:
        pruner = optuna.pruners.PatientPruner(pruner, patience=spec.patience)
    return pruner
