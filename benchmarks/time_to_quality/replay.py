"""Whole searches replayed on the surrogate: which strategy reaches a good configuration soonest.

A strategy samples the continuous space (space.py) through Optuna's real samplers and pruners. A trial's reports are
a curve the surrogate draws for its configuration (the expected validation macro-F1 at each evaluation plus the
measured noise between seeds, drawn with the replay's seed), at the times the cost model gives (costs.py: seconds per
evaluation by freeze depth and by whether a source batch is trained, and the one-time cost of computing a depth's
frozen activations, paid by the first trial at that depth when reuse is on; a trial at that depth that starts during
the build waits for it, as the project's cache makes a second worker wait on the entry's file lock and then read it,
hpo/train/activations.py). N workers run at once: events happen in the order of their simulated times, as Optuna's
`async_opt_simulator` orders them, and a worker asks for its next trial when its trial ends or is pruned.
Hand-written: Optuna has no replay of recorded curves.

A replay ends at its budget of simulated seconds; its outcome is the time until some report reached the target, and
the configuration the strategy would pick (its best complete trial) with the test F1 the surrogate predicts for it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Costs", "Curves", "Outcome", "Search", "replay"]


class Curves(Protocol):
    """What a replay draws trials from: the surrogate, or a hand-made table in the tests."""

    def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray: ...

    def test_f1(self, config: dict[str, Any]) -> float: ...


@dataclass(frozen=True)
class Costs:
    """Simulated seconds: an evaluation segment (half an epoch of training, then one validation pass) by freeze depth,
    with a source batch per step (λ < 1) or without (λ = 1), and the one-time computation of a depth's frozen
    activations (with reuse, paid by the first trial at that depth; without, every segment runs the frozen layers)."""

    transfer: dict[int, float]  # depth -> seconds per segment, λ < 1
    target_only: dict[int, float]  # depth -> seconds per segment, λ = 1
    build: dict[int, float]  # depth -> seconds to store the frozen layers' outputs once, from the input

    def build_seconds(self, depth: int, stored: dict[int, float], now: float) -> float:
        """Storing `depth`'s activations at `now`: the project starts from the deepest entry already stored below
        it (`stored`: depth -> when it was ready; hpo/train/activations.py), so it runs only the layers between."""
        below = max((d for d, ready in stored.items() if d < depth and ready <= now), default=0)
        return max(0.0, self.build.get(depth, 0.0) - self.build.get(below, 0.0))

    def ready_at(self, depth: int, stored: dict[int, float], now: float) -> float:
        """When `depth`'s activations are ready for a trial starting at `now`: the first trial at a depth builds
        them (recorded in `stored`), one starting during the build waits for it, as the cache's file lock makes it."""
        if depth not in stored:
            stored[depth] = now + self.build_seconds(depth, stored, now)
        return stored[depth]

    def segment(self, config: dict[str, Any]) -> float:
        table = self.target_only if float(config["target_weight"]) >= 1.0 else self.transfer
        return table[int(config["freeze_depth"])]


@dataclass
class Outcome:
    strategy: str
    seed: int
    time_to_target: float  # simulated seconds until a report reached the target (inf: never within the budget)
    chosen: dict[str, Any] | None  # the configuration the strategy would pick at the end
    test_f1: float | None  # the surrogate's test F1 of that configuration
    trials: int = 0
    trace: list[tuple[float, float]] = field(default_factory=list)  # (time, best val F1 so far)


Propose = Callable[[Any], dict[str, Any]]  # an Optuna trial -> a configuration


@dataclass
class Search:
    """A strategy: an Optuna study (sampler, pruner) and how a trial picks its configuration."""

    study: Any
    propose: Propose
    limit: int | None = None  # trials at most (a grid: its size)
    reuse: bool = True  # the first trial at a depth pays for its stored activations (strategies that freeze nothing
    # never do)


def replay(curves: Curves, costs: Costs, search: Search, *, seed: int, workers: int, budget_s: float,
           target: float, name: str = "") -> Outcome:
    """Run `search` on drawn curves with `workers` at once until `budget_s` simulated seconds."""
    from optuna.trial import TrialState

    rng = np.random.default_rng(seed)
    events: list[tuple[float, int, int]] = []  # (time, tie-break, trial number)
    running: dict[int, tuple[Any, np.ndarray, int, float, float, dict]] = {}
    built: dict[int, float] = {}  # depth -> when its stored activations are ready
    best, reached, trace, started, counter = -1.0, math.inf, [], 0, 0

    def start(now: float) -> None:
        nonlocal started, counter
        if search.limit is not None and started >= search.limit:
            return
        trial = search.study.ask()
        config = search.propose(trial)
        trial.set_user_attr("config", config)
        depth = int(config["freeze_depth"])
        began = now
        if search.reuse and depth > 0:  # the first trial at a depth builds; one starting during the build waits
            began = max(now, costs.ready_at(depth, built, now))
        step = costs.segment(config)
        started += 1
        counter += 1
        running[trial.number] = (trial, curves.draw(config, rng), 0, began, step, config)
        heapq.heappush(events, (began + step, counter, trial.number))

    for _ in range(workers):
        start(0.0)
    while events:
        now, _, number = heapq.heappop(events)
        if now > budget_s:
            break
        trial, curve, index, began, step, config = running.pop(number)
        value = float(curve[index])
        trial.report(value, index + 1)
        if value > best:
            best = value
            trace.append((now, best))
            if best >= target and reached == math.inf:
                reached = now
        if index + 1 == len(curve) or trial.should_prune():
            pruned = index + 1 < len(curve)
            _tell(search.study, trial, None if pruned else float(curve.max()),
                  TrialState.PRUNED if pruned else TrialState.COMPLETE)
            start(now)
        else:
            running[number] = (trial, curve, index + 1, began, step, config)
            counter += 1
            heapq.heappush(events, (began + (index + 2) * step, counter, number))
    chosen = _chosen(search.study)
    return Outcome(name, seed, reached, chosen, curves.test_f1(chosen) if chosen else None, started, trace)


def _tell(study: Any, trial: Any, value: float | None, state: Any) -> None:
    """`study.tell`. Optuna's GridSampler calls `study.stop()` once every grid point has run, which outside
    `study.optimize` raises; the trial's state is stored before that (Optuna sets it in a `finally`)."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _chosen(study: Any) -> dict[str, Any] | None:
    """The best complete trial's configuration (ties: the earlier trial)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: (t.value, -t.number)).user_attrs["config"]
