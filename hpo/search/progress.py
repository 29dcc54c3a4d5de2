"""The live progress display of a run, and its closing summary table (rich)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from statistics import fmean
from typing import TYPE_CHECKING, Any, Self

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hpo.train.metrics import OBJECTIVES, ValidationObjective, objective_for_metric

if TYPE_CHECKING:
    import optuna

    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation

__all__ = ["FitProgress", "LiveDisplay", "clock", "format_params", "summary_table"]


def format_params(params: dict[str, Any]) -> str:
    short = {"learning_rate": "lr", "target_weight": "λ", "freeze_depth": "freeze", "penalty_reference": "ref"}
    return "  ".join(f"{short.get(k, k)}={_fmt(v)}" for k, v in params.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e3 else f"{value:.2e}"
    return str(value)


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _left_at_pace(first_step_at: float | None, now: float, step: int, total: int) -> float | None:
    """Seconds a run still needs at its own pace since its first step (`step` steps of `total` done), or None
    while there is no pace to go by yet (the first step's time holds the model's setup, not a step's)."""
    if first_step_at is None or step < 2:
        return None
    return (now - first_step_at) / (step - 1) * (total - step)


class _Panel:
    """A rich Live panel that redraws itself on a terminal, and is absent elsewhere (CI, log files). `now` is its
    clock (a test's fake one)."""

    def __init__(self, console: Console, now: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._now = now
        self._live = Live(console=console, refresh_per_second=4, transient=True) if console.is_terminal else None

    def __enter__(self) -> Self:
        if self._live:
            self._live.start()
            self._live.update(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.stop()


class LiveDisplay(_Panel):
    """Implements the objective's Reporter. On a terminal it redraws a panel; elsewhere (CI, log files) it
    prints one line per finished trial, which it also does above the panel on a terminal."""

    def __init__(self, console: Console, study_name: str, budget: int | None, counts: Counter,
                 objective: ValidationObjective = OBJECTIVES["f1"], *,
                 now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, now)
        self.study_name = study_name
        self.objective = objective
        self.budget = budget
        self.counts = counts  # of trial states; the runner keeps it current
        self.best: tuple[float, int] | None = None
        self.started = now()
        self.trial_walls: list[float] = []
        self._trial: int | None = None  # the trial running now, if any
        self._trial_started = 0.0
        self._first_step_at: float | None = None
        self._params = ""
        self._step = (0, 0)
        self._eval: Evaluation | None = None
        self._epochs = 0

    # -- Reporter ---------------------------------------------------------------------------------------

    def trial_started(self, number: int, config: TrainConfig, searched: list[str]) -> None:
        self._trial, self._trial_started, self._first_step_at = number, self._now(), None
        self._params = format_params({k: getattr(config, k) for k in searched})
        self._step, self._eval, self._epochs = (0, 0), None, config.epochs
        self._refresh()

    def step(self, step: int, total: int) -> None:
        if step == 1:
            self._first_step_at = self._now()
        self._step = (step, total)
        if step % 4 == 0 or step == total:
            self._refresh()

    def evaluated(self, evaluation: Evaluation, epochs: int) -> None:
        self._eval = evaluation
        self._refresh()

    # -- from the runner ----------------------------------------------------------------------------------

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        wall = self._now() - self._trial_started
        self.trial_walls.append(wall)
        state = trial.state.name
        # The runner recounts the study between trials, at most once a second: until it does, this trial is counted
        # here, and it is no longer shown as the running one (a pruned trial used to linger there as if running).
        self.counts[state] += 1
        self._trial = None
        if trial.value is not None and state == "COMPLETE" and (
                self.best is None or self.objective.better(trial.value, self.best[0])):
            self.best = (trial.value, trial.number)
        label = self.objective.label
        value = f"{label} {trial.value:.4f}" if trial.value is not None else ""
        if state == "PRUNED" and trial.intermediate_values:
            step = max(trial.intermediate_values)
            value = f"{label} {trial.intermediate_values[step]:.4f} at evaluation {step}"
        reason = trial.user_attrs.get("failure_reason", "") if state == "FAIL" else ""
        style = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(state, "")
        self.console.print(
            f"trial {trial.number:>3} [{style}]{state:<8}[/] {value:<32} {clock(wall):>6}  "
            f"{format_params(trial.params)}{'  ' + reason if reason else ''}",
            highlight=False, soft_wrap=True,
        )
        self._refresh()

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)

    # -- rendering --------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self._live:
            self._live.update(self)

    def eta_seconds(self) -> float | None:
        """The trials still to start × the mean trial time, plus what the running trial still needs at its own
        pace; while the first trial runs, its projected length stands for the mean."""
        if self.budget is None:
            return None
        now = self._now()
        running = self._trial is not None
        current = _left_at_pace(self._first_step_at, now, *self._step) if running else 0.0
        if self.trial_walls:
            mean = fmean(self.trial_walls)
        elif current is not None:
            mean = now - self._trial_started + current
        else:
            return None
        if current is None:  # no pace yet: a trial of mean length
            current = max(0.0, mean - (now - self._trial_started))
        done = self.counts["COMPLETE"] + self.counts["PRUNED"]
        after_this = max(0, self.budget - done - (1 if running else 0))
        return after_this * mean + current

    def __rich__(self) -> Group:
        elapsed = self._now() - self.started
        eta = self.eta_seconds()
        head = Text.assemble(
            ("study ", "dim"), (self.study_name, "bold"),
            ("   complete ", "dim"), (str(self.counts["COMPLETE"]), "green"),
            ("  pruned ", "dim"), (str(self.counts["PRUNED"]), "yellow"),
            ("  failed ", "dim"), (str(self.counts["FAIL"]), "red"),
            ("   budget ", "dim"), (str(self.budget) if self.budget else "-", ""),
            ("   best ", "dim"), (f"{self.best[0]:.4f} (trial {self.best[1]})" if self.best else "-", "bold"),
            ("   elapsed ", "dim"), (clock(elapsed), ""),
            ("  eta ", "dim"), (clock(eta) if eta is not None else "-", ""),
        )
        if self._trial is None:
            return Group(head)
        step, total = self._step
        epoch = step / total * self._epochs if total else 0.0
        value = f"{self._eval.value:.4f} (evaluation {self._eval.number})" if self._eval else "-"
        line = Text.assemble(
            ("trial ", "dim"), (str(self._trial), "bold"),
            ("  epoch ", "dim"), (f"{epoch:.2f}/{self._epochs}", ""),
            ("  step ", "dim"), (f"{step}/{total}", ""),
            (f"  {self.objective.label} ", "dim"), (value, "cyan"),
        )
        return Group(head, line, Text(self._params, style="dim"))


class FitProgress(_Panel):
    """`hpo train`'s live line, as `hpo run` shows a trial: epoch, step, the objective's value (and the best),
    elapsed, ETA. On a terminal it redraws; elsewhere it prints one line per evaluation."""

    def __init__(self, console: Console, title: str, objective: ValidationObjective = OBJECTIVES["f1"], *,
                 now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, now)
        self.title = title
        self.objective = objective
        self.started = now()
        self._first_step_at: float | None = None
        self._step, self._epochs = (0, 0), 0
        self._eval: Evaluation | None = None
        self._best: Evaluation | None = None

    def started_training(self, config: TrainConfig, objective: ValidationObjective = OBJECTIVES["f1"]) -> None:
        self._epochs, self.objective = config.epochs, objective

    def step(self, step: int, total: int) -> None:
        if step == 1:
            self._first_step_at = self._now()
        self._step = (step, total)
        if self._live and (step % 4 == 0 or step == total):
            self._live.update(self)

    def evaluated(self, evaluation: Evaluation) -> None:
        self._eval = evaluation
        if self._best is None or self.objective.better(evaluation.value, self._best.value):
            self._best = evaluation
        if not self._live:
            self.console.print(self._line(), highlight=False, soft_wrap=True)

    def eta_seconds(self) -> float | None:
        return _left_at_pace(self._first_step_at, self._now(), *self._step)

    def _line(self) -> Text:
        step, total = self._step
        epoch = step / total * self._epochs if total else 0.0
        eta = self.eta_seconds()
        value = f"{self._eval.value:.4f}" if self._eval else "-"
        best = f" (best {self._best.value:.4f} at evaluation {self._best.number})" if self._best else ""
        return Text.assemble(
            (self.title, "bold"), ("  epoch ", "dim"), (f"{epoch:.2f}/{self._epochs}", ""),
            ("  step ", "dim"), (f"{step}/{total}", ""), (f"  {self.objective.label} ", "dim"), (value + best, "cyan"),
            ("  elapsed ", "dim"), (clock(self._now() - self.started), ""),
            ("  eta ", "dim"), (clock(eta) if eta is not None else "-", ""),
        )

    def __rich__(self) -> Text:
        return self._line() if self._step[1] else Text(f"{self.title}: loading the model and data…", style="dim")


def summary_table(
    study: optuna.Study, *, storage: str, wall_seconds: float, budget: int | None
) -> Table:
    """The closing table of a run, read with a few queries (a study may hold thousands of trials)."""
    from hpo.storage import best_numbers, count_states, frozen_trials

    counts = count_states(study)
    table = Table(title=f"study {study.study_name}", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    label = objective_for_metric((study.metric_names or [None])[0]).label
    best_number = best_numbers(study, 1)
    if best_number:
        (best,) = frozen_trials(study, best_number)
        table.add_row(f"best {label}", f"[bold]{best.value:.4f}[/]  (trial {best.number}, "
                      f"evaluation {best.user_attrs.get('best_evaluation', '?')}, "
                      f"accuracy {best.user_attrs.get('best_accuracy', float('nan')):.4f})")
        for name, value in best.params.items():
            table.add_row(f"  {name}", _fmt(value))
    else:
        table.add_row(f"best {label}", "no completed trial yet")
    used = counts["COMPLETE"] + counts["PRUNED"]
    table.add_row("trials", f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                  f"{counts['FAIL']} failed, {counts['RUNNING']} running")
    table.add_row("budget", f"{used} / {budget}" if budget else f"{used} (no trial budget; deadline only)")
    table.add_row("wall time", clock(wall_seconds))
    table.add_row("storage", storage)
    return table
