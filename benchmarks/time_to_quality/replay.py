"""Whole searches replayed on a table of real curves: which strategy reaches a good configuration soonest.

The table (record_curves.py) holds real fine-tunes of a grid of configurations on the quickstart task, each
evaluation's validation macro-F1 with the wall time at which it was reached, and the test macro-F1 of the run's
best step. A strategy samples the grid's own values (one categorical per axis) through Optuna's real samplers and
pruners; a trial's reports are the recorded curve of its configuration (one of the recorded seeds, drawn by the
replay's seed), at the recorded times. N workers run at once: events happen in the order of their simulated
times, as Optuna's `async_opt_simulator` orders them, and a worker asks for its next trial when its trial ends
or is pruned. Hand-written: Optuna has no replay of recorded curves.

Strategies (STRATEGIES): grid search; random search; one epoch of every configuration, then the top k run to
the end; TPE with median pruning over the learning rate alone (λ = 1, nothing frozen, no penalty: what
`Trainer.hyperparameter_search` users search); and this project's default (TPE, Hyperband with reduction factor
2, a quarter of the trials target only), without and with frozen-activation reuse (a trial's recorded times
scaled by the measured cost of an epoch at its freeze depth, see `ReuseCost`).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AXES = ("learning_rate", "target_weight", "freeze_depth", "l2")


@dataclass(frozen=True)
class Run:
    """One recorded fine-tune: per evaluation (val F1, seconds since the start), and its test F1."""

    config: tuple[float, ...]  # values in AXES order
    seed: int
    steps: tuple[tuple[float, float], ...]
    test_f1: float


@dataclass(frozen=True)
class Table:
    runs: dict[tuple[float, ...], tuple[Run, ...]]  # config -> its runs, one per seed
    axes: dict[str, tuple[float, ...]]

    @property
    def best_val(self) -> float:
        return max(v for runs in self.runs.values() for run in runs for v, _ in run.steps)

    @classmethod
    def load(cls, path: Path) -> Table:
        return cls.from_records([json.loads(line) for line in path.read_text().splitlines() if line.strip()])

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Table:
        runs: dict[tuple[float, ...], list[Run]] = {}
        for r in records:
            config = tuple(float(r["params"][a]) for a in AXES)
            steps = tuple((float(s["val_f1"]), float(s["wall_s"])) for s in r["curve"])
            runs.setdefault(config, []).append(Run(config, int(r["seed"]), steps, float(r["test_f1"])))
        axes = {a: tuple(sorted({c[i] for c in runs})) for i, a in enumerate(AXES)}
        return cls({c: tuple(sorted(rs, key=lambda run: run.seed)) for c, rs in runs.items()}, axes)


@dataclass(frozen=True)
class ReuseCost:
    """Measured cost of an epoch at each freeze depth with reuse, as a share of the same epoch without it:
    `warm` once the frozen layers' outputs exist, `first` for the trial that builds them (epoch_costs.py)."""

    warm: dict[int, float]
    first: dict[int, float]

    def scale(self, depth: int, built: bool) -> float:
        return (self.warm if built else self.first).get(depth, 1.0)


@dataclass
class Outcome:
    strategy: str
    seed: int
    time_to_target: float  # simulated seconds until a report reached the target (inf: never within the budget)
    chosen: tuple[float, ...] | None  # the configuration the strategy would pick at the end
    test_f1: float | None  # the chosen configuration's test F1 (of the seed its trial ran)
    trace: list[tuple[float, float]] = field(default_factory=list)  # (time, best val F1 so far)


Propose = Callable[[Any], tuple[float, ...]]  # an Optuna trial -> a configuration


@dataclass
class Search:
    """A strategy: an Optuna study (sampler, pruner) and how a trial picks its configuration."""

    study: Any
    propose: Propose
    limit: int | None = None  # trials at most (grid: the grid's size)


def replay(table: Table, search: Search, *, seed: int, workers: int, budget_s: float, target: float,
           reuse: ReuseCost | None = None, name: str = "") -> Outcome:
    """Run `search` on the recorded curves with `workers` at once until `budget_s` simulated seconds."""
    from optuna.trial import TrialState

    rng = random.Random(seed)
    events: list[tuple[float, int, int]] = []  # (time, tie-break, trial id)
    running: dict[int, tuple[Any, Run, int, float, float]] = {}  # id -> (trial, run, next step, start, scale)
    built: set[float] = set()
    best, reached, trace, started, counter = -1.0, math.inf, [], 0, 0

    def start(now: float) -> None:
        nonlocal started, counter
        if search.limit is not None and started >= search.limit:
            return
        trial = search.study.ask()
        config = search.propose(trial)
        run = rng.choice(table.runs[config])
        trial.set_user_attr("config", list(config))
        trial.set_user_attr("run_seed", run.seed)
        depth = config[AXES.index("freeze_depth")]
        scale = reuse.scale(int(depth), depth in built) if reuse is not None and depth > 0 else 1.0
        built.add(depth)
        started += 1
        counter += 1
        running[trial.number] = (trial, run, 0, now, scale)
        heapq.heappush(events, (now + run.steps[0][1] * scale, counter, trial.number))

    for _ in range(workers):
        start(0.0)
    while events:
        now, _, number = heapq.heappop(events)
        if now > budget_s:
            break
        trial, run, step, began, scale = running.pop(number)
        value = run.steps[step][0]
        trial.report(value, step + 1)
        if value > best:
            best = value
            trace.append((now, best))
            if best >= target and reached == math.inf:
                reached = now
        if step + 1 == len(run.steps) or trial.should_prune():
            pruned = step + 1 < len(run.steps)
            _tell(search.study, trial, None if pruned else max(v for v, _ in run.steps[: step + 1]),
                  TrialState.PRUNED if pruned else TrialState.COMPLETE)
            start(now)
        else:
            running[number] = (trial, run, step + 1, began, scale)
            counter += 1
            heapq.heappush(events, (began + run.steps[step + 1][1] * scale, counter, number))
    return Outcome(name, seed, reached, *_chosen(table, search.study), trace)


def _tell(study: Any, trial: Any, value: float | None, state: Any) -> None:
    """`study.tell`. Optuna's GridSampler calls `study.stop()` once every grid point has run, which outside
    `study.optimize` raises; the trial's state is stored before that (Optuna sets it in a `finally`)."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _chosen(table: Table, study: Any) -> tuple[tuple[float, ...] | None, float | None]:
    """The best complete trial's configuration (ties: the earlier trial) and the test F1 its run recorded."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None, None
    best = max(complete, key=lambda t: (t.value, -t.number))
    config = tuple(best.user_attrs["config"])
    run = next(r for r in table.runs[config] if r.seed == best.user_attrs["run_seed"])
    return config, run.test_f1
