"""The strategies the replay compares, each as a user would run it, over the table's own axis values.

Every Optuna strategy suggests one categorical per axis (the grid's values); the project's default uses the
project's own sampler and pruner factories (hpo/search/algorithms.py) with studies/quickstart.yaml's settings.
One-epoch-then-top-k (Egele et al., 2023) is a fixed procedure, not a sampler: it is simulated directly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from benchmarks.time_to_quality.replay import AXES, Outcome, ReuseCost, Search, Table, replay

__all__ = ["STRATEGIES", "one_epoch_top_k", "run_strategy"]

HF_FIXED = {"target_weight": 1.0, "freeze_depth": 0.0, "l2": 0.0}  # what hyperparameter_search users leave alone


def _study(sampler, pruner, name: str):
    """A named study: Hyperband assigns brackets by a hash of the study's name, so an unnamed study (a random
    name) would make the replay differ from run to run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=name)


def _every_axis(table: Table) -> Callable:
    def propose(trial) -> tuple[float, ...]:
        return tuple(float(trial.suggest_categorical(a, table.axes[a])) for a in AXES)
    return propose


def grid(table: Table, seed: int) -> Search:
    import optuna

    sampler = optuna.samplers.GridSampler({a: list(table.axes[a]) for a in AXES}, seed=seed)
    return Search(_study(sampler, optuna.pruners.NopPruner(), f"grid-{seed}"), _every_axis(table),
                  limit=len(table.runs))


def random_search(table: Table, seed: int) -> Search:
    import optuna

    return Search(_study(optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner(), f"random-{seed}"),
                  _every_axis(table))


def hf_style(table: Table, seed: int) -> Search:
    """`Trainer.hyperparameter_search(backend="optuna")`: Optuna's defaults (TPE, median pruning) over the
    learning rate; λ = 1 (it has no source task), nothing frozen, no penalty."""
    import optuna

    def propose(trial) -> tuple[float, ...]:
        lr = float(trial.suggest_categorical("learning_rate", table.axes["learning_rate"]))
        return (lr, *(HF_FIXED[a] for a in AXES[1:]))

    return Search(_study(optuna.samplers.TPESampler(seed=seed), optuna.pruners.MedianPruner(), f"hf-{seed}"), propose)


def project_default(table: Table, seed: int) -> Search:
    """studies/quickstart.yaml's sampler and pruner: TPE (multivariate, constant liar, 4 startup trials),
    Hyperband (reduction factor 2, 6 evaluations), a quarter of the trials target only."""
    from hpo.search.algorithms import make_pruner, make_sampler
    from hpo.spec import PrunerSpec, SamplerSpec

    pruner = make_pruner(PrunerSpec(name="hyperband", reduction_factor=2), max_evaluations=6)
    study = _study(None, pruner, f"default-{seed}")
    study.sampler = make_sampler(SamplerSpec(name="tpe", n_startup_trials=4), seed, target_only_share=0.25,
                                 study=study)
    return Search(study, _every_axis(table))


STRATEGIES: dict[str, Callable[[Table, int], Search] | None] = {
    "grid": grid,
    "random": random_search,
    "one-epoch-top-3": None,  # simulated directly: one_epoch_top_k
    "hyperparameter_search-style": hf_style,
    "project default": project_default,
    "project default + reuse": project_default,
}


def run_strategy(name: str, table: Table, seed: int, *, workers: int, budget_s: float, target: float,
                 reuse: ReuseCost | None) -> Outcome:
    if name.startswith("one-epoch-top-"):
        return one_epoch_top_k(table, int(name.rsplit("-", 1)[1]), seed=seed, workers=workers, budget_s=budget_s,
                               target=target)
    search = STRATEGIES[name](table, seed)
    return replay(table, search, seed=seed, workers=workers, budget_s=budget_s, target=target,
                  reuse=reuse if name.endswith("+ reuse") else None, name=name)


def one_epoch_top_k(table: Table, k: int, *, seed: int, workers: int, budget_s: float, target: float,
                    epoch_steps: int = 2) -> Outcome:
    """Every configuration (in a seeded order, each on one of its recorded seeds) runs its first epoch; once all
    have, the k best by validation F1 at that epoch continue to the end (from where they stopped)."""
    rng = random.Random(seed)
    configs = list(table.runs)
    rng.shuffle(configs)
    runs = {c: rng.choice(table.runs[c]) for c in configs}
    free = [0.0] * workers  # when each worker is next free
    reports: list[tuple[float, float]] = []

    def schedule(config, first: int, last: int, not_before: float) -> float:
        """Run steps [first, last) of a configuration on the first free worker; returns when it ends."""
        worker = min(range(workers), key=free.__getitem__)
        begin = max(free[worker], not_before)
        offset = runs[config].steps[first - 1][1] if first else 0.0
        for value, at in runs[config].steps[first:last]:
            reports.append((begin + at - offset, value))
        free[worker] = begin + runs[config].steps[last - 1][1] - offset
        return free[worker]

    phase_one = max(schedule(c, 0, epoch_steps, 0.0) for c in configs)
    ranked = sorted(configs, key=lambda c: -runs[c].steps[epoch_steps - 1][0])[:k]
    ends = {config: schedule(config, epoch_steps, len(runs[config].steps), phase_one) for config in ranked}
    best, reached, trace = -1.0, math.inf, []
    for at, value in sorted(reports):
        if at > budget_s:
            break
        if value > best:
            best = value
            trace.append((at, best))
            if best >= target and reached == math.inf:
                reached = at
    finished = [c for c in ranked if ends[c] <= budget_s]
    chosen = max(finished, key=lambda c: max(v for v, _ in runs[c].steps)) if finished else None
    return Outcome(f"one-epoch-top-{k}", seed, reached, chosen, runs[chosen].test_f1 if chosen else None, trace)
