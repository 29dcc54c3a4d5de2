"""A study's trials recorded in experiment trackers as well (the study file's `trackers:`): MLflow (a parent run
per study, a child run per trial) and Weights & Biases (a run per trial, grouped by the study).

Each tracker hears what the worker's live display hears: a trial started (the objective's reporter), each
evaluation's F1, and the finished trial (the runner's display, called from `study.optimize`'s callback with the
FrozenTrial Optuna stored: its state, value, parameters and user attributes). So `TrackedDisplay` wraps the display
and tells both, and neither the objective nor the trial loop knows trackers exist.

A tracker never fails a trial: each call is retried for a few seconds, then the tracker is off for the rest of the
run after one warning (_calls.py). The packages are optional extras, checked before the study is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.markup import escape

from hpo.errors import SpecError, StorageUnavailable
from hpo.search.trackers._calls import TRACKER_RETRY_S, TrackerCalls
from hpo.search.trackers._mlflow import PARENT_RUN_ATTR, MlflowTracker
from hpo.search.trackers._wandb import WandbTracker
from hpo.settings import StorageURL
from hpo.spec import StudySpec
from hpo.spec.trackers import tracker_problems
from hpo.storage import frozen_trials

if TYPE_CHECKING:
    import optuna

    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation

__all__ = ["PARENT_RUN_ATTR", "TRACKER_RETRY_S", "TrackedDisplay", "require_trackers", "tracked"]


class Tracker(Protocol):
    name: str
    calls: TrackerCalls

    def open(self) -> str | None: ...
    def trial_started(self, number: int, config: TrainConfig) -> None: ...
    def evaluated(self, number: int, evaluation: Evaluation) -> None: ...
    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None: ...
    def abandon(self) -> None: ...
    def close(self, storage_reachable: bool) -> None: ...


def require_trackers(spec: StudySpec, source: str) -> None:
    """SpecError naming each tracker the study file names whose package is not installed."""
    problems = tracker_problems(spec.trackers)
    if problems:
        raise SpecError(source, problems)


def tracked(display: Any, spec: StudySpec, study: optuna.Study, storage: StorageURL, metric: str,
            console: Console) -> Any:
    """`display` with the study's trackers told the same events; `display` itself when the study names none."""
    if spec.trackers is None or not spec.trackers.named():
        return display

    def warn(message: str) -> None:
        # escaped: an error's text may hold brackets ("[errno 111]") that rich would read as markup
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, markup=True)

    trackers: list[Tracker] = []
    if spec.trackers.mlflow is not None:
        trackers.append(MlflowTracker(spec.trackers, study, storage, metric, warn))
    if spec.trackers.wandb is not None:
        trackers.append(WandbTracker(spec.trackers, study, metric, warn))
    return TrackedDisplay(display, trackers, study, console)


class TrackedDisplay:
    """The worker's live display (the objective's Reporter and the trial loop's display), with every tracker told
    the same events. Used as a context manager around the trial loop: trackers open on entry, and on exit a trial
    still open (preempted, interrupted) is recorded as the storage has it."""

    def __init__(self, display: Any, trackers: list[Tracker], study: optuna.Study, console: Console) -> None:
        self.display = display
        self.trackers = trackers
        self.study = study
        self.console = console
        self._running: int | None = None  # the trial started here and not yet finished

    @property
    def counts(self) -> Any:
        return self.display.counts

    def note(self, message: str) -> None:
        self.display.note(message)

    def trial_started(self, number: int, config: TrainConfig, searched: list[str]) -> None:
        if self._running is not None:  # taken over by another worker: record it as the storage now has it
            self._settle(self._running, storage_reachable=True)
        self._running = number
        for tracker in self.trackers:
            tracker.trial_started(number, config)
        self.display.trial_started(number, config, searched)

    def step(self, step: int, total: int) -> None:
        self.display.step(step, total)

    def evaluated(self, evaluation: Evaluation, epochs: int) -> None:
        if self._running is not None:
            for tracker in self.trackers:
                tracker.evaluated(self._running, evaluation)
        self.display.evaluated(evaluation, epochs)

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        self.display.trial_finished(trial)
        self._running = None
        for tracker in self.trackers:
            tracker.trial_finished(trial)

    def __enter__(self) -> TrackedDisplay:
        self.display.__enter__()
        for tracker in self.trackers:
            line = tracker.open()
            if line:
                self.console.print(f"tracking: {line}", highlight=False, markup=False)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        # After an outage of the storage, reading it would wait out its retry window again: runs end KILLED.
        reachable = kind is None or not issubclass(kind, StorageUnavailable)
        try:
            if self._running is not None:
                self._settle(self._running, reachable)
            for tracker in self.trackers:
                tracker.close(reachable)
        finally:
            self.display.__exit__(kind, *rest)

    def _settle(self, number: int, storage_reachable: bool) -> None:
        self._running = None
        found = frozen_trials(self.study, [number]) if storage_reachable else []
        for tracker in self.trackers:
            if found and found[0].state.is_finished():
                tracker.trial_finished(found[0])
            else:
                tracker.abandon()
