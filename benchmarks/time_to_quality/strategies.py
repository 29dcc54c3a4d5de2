"""The strategies the replay compares, each as a user would run it, over the continuous space (space.py).

- `grid`: three values per axis (low, middle, high; log-spaced on a log axis), 3^6 = 729 points in a random order:
  what a user writes.
- `random`: random search.
- `asha`: Optuna's SuccessiveHalvingPruner (asynchronous successive halving) with random sampling.
- `one-epoch-top-k`: one epoch of each of a batch of random configurations, then the k best of the batch run to
  the end (Egele et al., 2023), batch after batch.
- `hyperparameter_search-style`: `Trainer.hyperparameter_search(backend="optuna")`: Optuna's defaults (TPE, median
  pruning) over the learning rate; λ = 1 (it has no source task), nothing frozen, no penalty, no warmup.
- `default (previous)`: the study files' default before this benchmark: TPE (multivariate, the constant liar, 10
  random start-up trials) with Hyperband (reduction factor 3), a quarter of the trials target only.
- `default`: the study files' default sampler and pruner today, `SamplerSpec()` and `PrunerSpec()` themselves (one
  source: hpo/spec/models.py): the same TPE with asynchronous successive halving (reduction factor 3, from the
  first evaluation), through the project's own factories (hpo/search/algorithms.py), a quarter target only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.time_to_quality.replay import Costs, Curves, Outcome, Search, replay
from benchmarks.time_to_quality.space import SPACE, grid_values, suggest

__all__ = ["EVALUATIONS", "STRATEGIES", "one_epoch_top_k", "run_strategy"]

EVALUATIONS = 6  # the quickstart task: 3 epochs, 2 evaluations an epoch
HF_FIXED = {"target_weight": 1.0, "freeze_depth": 0, "l2": SPACE["l2"][0], "l1": SPACE["l1"][0], "warmup_ratio": 0.0}


def _study(sampler: Any, pruner: Any, name: str) -> Any:
    """A named study: Hyperband assigns brackets by a hash of the study's name, so an unnamed study (a random
    name) would make the replay differ from run to run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=name)


def grid(seed: int) -> Search:
    import optuna

    values = grid_values()
    sampler = optuna.samplers.GridSampler(values, seed=seed)
    return Search(_study(sampler, optuna.pruners.NopPruner(), f"grid-{seed}"), suggest,
                  limit=math.prod(len(v) for v in values.values()))


def random_search(seed: int) -> Search:
    import optuna

    return Search(_study(optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner(), f"random-{seed}"),
                  suggest)


def asha(seed: int) -> Search:
    import optuna

    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return Search(_study(optuna.samplers.RandomSampler(seed=seed), pruner, f"asha-{seed}"), suggest)


def hf_style(seed: int) -> Search:
    import optuna

    return Search(_study(optuna.samplers.TPESampler(seed=seed), optuna.pruners.MedianPruner(), f"hf-{seed}"),
                  lambda trial: suggest(trial, HF_FIXED), reuse=False)


def project(sampler_spec: Any, pruner_spec: Any, name: str) -> Callable[[int], Search]:
    """A strategy of the project's own: the study file's sampler and pruner through its factories, a quarter of
    the trials target only (λ fixed to 1 by the sampler, as `hpo run` does)."""

    def make(seed: int) -> Search:
        from hpo.search.algorithms import make_pruner, make_sampler

        study = _study(None, make_pruner(pruner_spec, EVALUATIONS), f"{name}-{seed}")
        study.sampler = make_sampler(sampler_spec, seed, target_only_share=0.25, study=study)
        return Search(study, suggest)

    return make


def _previous() -> Callable[[int], Search]:
    from hpo.spec import PrunerSpec, SamplerSpec

    return project(SamplerSpec(name="tpe", n_startup_trials=10), PrunerSpec(name="hyperband", reduction_factor=3),
                   "previous")


def _default() -> Callable[[int], Search]:
    from hpo.spec import PrunerSpec, SamplerSpec

    return project(SamplerSpec(), PrunerSpec(), "default")


STRATEGIES: dict[str, Callable[[], Callable[[int], Search]] | None] = {
    "grid": lambda: grid,
    "random": lambda: random_search,
    "asha": lambda: asha,
    "one-epoch-top-k": None,  # simulated directly: one_epoch_top_k
    "hyperparameter_search-style": lambda: hf_style,
    "default (previous)": _previous,
    "default": _default,
}


def run_strategy(name: str, curves: Curves, costs: Costs, seed: int, *, workers: int, budget_s: float,
                 target: float) -> Outcome:
    if name == "one-epoch-top-k":
        return one_epoch_top_k(curves, costs, seed=seed, workers=workers, budget_s=budget_s, target=target)
    make = STRATEGIES[name]
    return replay(curves, costs, make()(seed), seed=seed, workers=workers, budget_s=budget_s, target=target,
                  name=name)


def one_epoch_top_k(curves: Curves, costs: Costs, *, seed: int, workers: int, budget_s: float, target: float,
                    batch: int = 27, k: int = 3, epoch: int = 2) -> Outcome:
    """Batches of `batch` random configurations: each runs its first epoch (`epoch` evaluations); once the batch
    has, its `k` best by validation F1 there run to the end; then the next batch, until the budget. Its `trials`:
    the configurations that started within the budget (as `replay` counts them), not their reports."""
    rng = np.random.default_rng(seed)
    free = [0.0] * workers  # when each worker is next free
    built: dict[int, float] = {}  # depth -> when its stored activations are ready (as in `replay`)
    reports: list[tuple[float, float]] = []
    finished: list[tuple[float, float, dict[str, Any]]] = []  # (end, best val F1, config)
    started = 0

    def run(config: dict[str, Any], curve: np.ndarray, first: int, last: int, not_before: float) -> float:
        nonlocal started
        worker = int(np.argmin(free))
        depth = int(config["freeze_depth"])
        begin = max(free[worker], not_before)
        if first == 0 and begin <= budget_s:
            started += 1
        # The first run placed at a depth is also the first to start there (a phase fills the workers in time
        # order; a second phase runs only depths its first has seen): it builds, later ones wait until it is done.
        if depth:
            begin = max(begin, costs.ready_at(depth, built, begin))
        step = costs.segment(config)
        for index in range(first, last):
            reports.append((begin + (index - first + 1) * step, float(curve[index])))
        free[worker] = begin + (last - first) * step
        return free[worker]

    while min(free) < budget_s:
        configs = [_random_config(rng) for _ in range(batch)]
        drawn = [curves.draw(c, rng) for c in configs]
        phase = max(run(c, d, 0, epoch, 0.0) for c, d in zip(configs, drawn, strict=True))
        for i in sorted(range(batch), key=lambda i: -drawn[i][epoch - 1])[:k]:
            end = run(configs[i], drawn[i], epoch, len(drawn[i]), phase)
            finished.append((end, float(drawn[i].max()), configs[i]))
    best, reached, trace = -1.0, math.inf, []
    for at, value in sorted(reports):
        if at > budget_s:
            break
        if value > best:
            best = value
            trace.append((at, value))
            if best >= target and reached == math.inf:
                reached = at
    done = [f for f in finished if f[0] <= budget_s]
    chosen = max(done, key=lambda f: f[1])[2] if done else None
    return Outcome("one-epoch-top-k", seed, reached, chosen, curves.test_f1(chosen) if chosen else None, started,
                   trace)


def _random_config(rng: np.random.Generator) -> dict[str, Any]:
    from benchmarks.time_to_quality.space import from_unit

    return from_unit(rng.random(len(SPACE)))
