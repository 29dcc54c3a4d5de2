"""The run's live display, on a fake clock (no sleeping): its ETA follows the running trial's own pace, and a
trial that ends (pruned here) leaves the panel and is counted at once. Finished trials come from a real Optuna
study, as the runner's callback hands them over."""

from __future__ import annotations

import io
from collections import Counter

import optuna
import pytest
from rich.console import Console

from hpo.search.progress import LiveDisplay
from hpo.train.config import TrainConfig
from hpo.train.loop import Evaluation


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _display(clock: FakeClock, budget: int) -> tuple[LiveDisplay, io.StringIO]:
    printed = io.StringIO()
    return LiveDisplay(Console(file=printed, width=200), "s", budget, Counter(), now=clock), printed


def _finished(state: optuna.trial.TrialState, reports: dict[int, float]) -> optuna.trial.FrozenTrial:
    """A trial of a real in-memory study that reported `reports` and ended in `state`."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    for step, value in reports.items():
        trial.report(value, step)
    study.tell(trial, max(reports.values()) if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return study.trials[0]


def _panel(display: LiveDisplay) -> list[str]:
    shown = io.StringIO()
    Console(file=shown, width=200).print(display)
    return shown.getvalue().splitlines()


def test_the_eta_follows_a_trial_that_runs_slower_than_the_mean():
    clock = FakeClock()
    display, _ = _display(clock, budget=4)
    display.trial_started(0, TrainConfig(), [])
    for step in range(1, 11):  # the first trial: 6 s a step, 60 s in all
        clock.now = 6.0 * step
        display.step(step, 10)
        if step == 5:
            # no trial has finished yet: the first one's projected length (30 s + 5 steps × 6 s) stands for a trial's
            assert display.eta_seconds() == pytest.approx(3 * 60 + 30)
    display.trial_finished(_finished(optuna.trial.TrialState.COMPLETE, {1: 0.5}))
    assert display.eta_seconds() == pytest.approx(3 * 60)

    display.trial_started(1, TrainConfig(), [])
    etas = []
    for step in range(1, 11):  # the second trial at half the pace: 12 s a step, 120 s where the mean is 60
        clock.now = 60 + 12.0 * step
        display.step(step, 10)
        etas.append(display.eta_seconds())
    # two trials after this one × 60 s, plus this one's steps left × 12 s; at step 1 there is no pace yet, so a
    # trial of mean length (60 - 12 s gone). The old estimate stopped at 2:00 once the trial passed the mean.
    assert etas == pytest.approx([120 + 48] + [120 + 12.0 * (10 - step) for step in range(2, 11)])
    display.trial_finished(_finished(optuna.trial.TrialState.COMPLETE, {1: 0.6}))
    assert display.eta_seconds() == pytest.approx(2 * 90)


def test_a_pruned_trial_leaves_the_panel_and_is_counted_at_once():
    clock = FakeClock()
    display, printed = _display(clock, budget=8)
    display.trial_started(3, TrainConfig(), [])
    clock.now = 10.0
    display.step(8, 30)
    display.evaluated(Evaluation(number=2, epoch=0.8, value=0.31, f1=0.31, accuracy=0.5, train_seconds=9.0,
                                 samples_seen=128), 3)
    assert _panel(display)[1].startswith("trial 3  epoch 0.80/3  step 8/30"), "shown while it runs"

    display.trial_finished(_finished(optuna.trial.TrialState.PRUNED, {1: 0.2, 2: 0.31}))
    # the runner recounts the study only between trials: the display counts what it just saw end
    (head,) = _panel(display)  # no trial line: nothing is running
    assert "complete 0  pruned 1  failed 0" in head
    assert "PRUNED   val F1 0.3100 at evaluation 2" in printed.getvalue()
