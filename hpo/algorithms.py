"""Samplers and pruners from the study file: one small registry each, all Optuna's own implementations."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from hpo.spec import PrunerSpec, SamplerSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["make_pruner", "make_sampler"]


def make_sampler(spec: SamplerSpec, seed: int) -> optuna.samplers.BaseSampler:
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
    return samplers[spec.name]()


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
