"""Weights & Biases: one run per trial, in a group named after the study (W&B has no parent runs; a group is what
its UI gathers runs by), with the trial's training config, every evaluation's F1 as a step series, and how it ended.

Written by hand rather than with optuna-integration's WeightsAndBiasesCallback: the callback starts a trial's run
only after the trial (or, with its decorator, before the objective but without the trial's number or config), and in
its run-per-trial mode it logs the final value at step = trial number into the same run, which lands in the middle
of the evaluation step series (or is dropped by W&B as a step gone backwards). The state, failure reason and retry
link it does not record at all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hpo.search.trackers._calls import TRACKER_RETRY_S, TrackerCalls
from hpo.search.trackers._mlflow import duration_s
from hpo.spec.trackers import TrackersSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation

__all__ = ["WandbTracker", "outcome"]


def outcome(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """How a trial ended, as a run's summary: state, value (as `hpo trials` names it), duration, trainable
    parameters, and why it failed or which trial it retries, where it did."""
    record = {"state": trial.state.name, "value": trial.value, "duration_s": duration_s(trial),
              "trainable_params": trial.user_attrs.get("trainable_params"),
              "failure_reason": trial.user_attrs.get("failure_reason"), "retry_of": trial.user_attrs.get("retry_of")}
    return {key: value for key, value in record.items() if value is not None}


class WandbTracker:
    name = "W&B"

    def __init__(self, trackers: TrackersSpec, study: optuna.Study, metric: str,
                 warn: Callable[[str], None]) -> None:
        assert trackers.wandb is not None
        self.spec = trackers.wandb
        self.study = study
        self.metric = metric
        self.calls = TrackerCalls(self.name, warn)
        self._runs: dict[int, Any] = {}

    def open(self) -> str | None:
        """The line the run's header shows; runs start with each trial, so nothing else is opened here."""
        folder = os.environ.get("WANDB_DIR")
        if folder:  # W&B writes its files under it but does not make it
            self.calls(lambda: os.makedirs(folder, exist_ok=True))
        where = f", under {folder or '.'}" if self.spec.mode == "offline" else ""
        return f"W&B project {self.spec.project!r} ({self.spec.mode}{where}) · group {self.study.study_name!r}"

    def trial_started(self, number: int, config: TrainConfig | None = None) -> None:
        run = self.calls(lambda: self._new_run(number, config))
        if run is not None:
            self._runs[number] = run

    def evaluated(self, number: int, evaluation: Evaluation) -> None:
        run = self._runs.get(number)
        if run is not None:
            self.calls(lambda: run.log({self.metric: evaluation.value}, step=evaluation.number))

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        run = self._runs.pop(trial.number, None) or self.calls(lambda: self._new_run(trial.number, None))
        if run is not None:
            self.calls(lambda: self._record(run, trial))

    def abandon(self) -> None:
        for run in self._runs.values():
            self.calls(lambda run=run: run.finish(exit_code=1))
        self._runs.clear()

    def close(self, storage_reachable: bool) -> None:
        """Nothing is kept open between trials."""

    def _new_run(self, number: int, config: TrainConfig | None) -> Any:
        import wandb

        settings = wandb.Settings(console="off", silent=True, init_timeout=TRACKER_RETRY_S, x_disable_stats=True)
        return wandb.init(
            project=self.spec.project, entity=self.spec.entity, mode=self.spec.mode,
            group=self.study.study_name, job_type="trial",
            name=f"{self.study.study_name}-trial-{number}", reinit="create_new", settings=settings,
            config={"study": self.study.study_name, "trial": number,
                    **(config.model_dump(mode="json") if config is not None else {})},
        )

    def _record(self, run: Any, trial: optuna.trial.FrozenTrial) -> None:
        # The trial's own parameter names (a searched `source`, λ under its stored name) beside the training config.
        run.config.update({"params": trial.params}, allow_val_change=True)
        run.summary.update(outcome(trial))
        run.tags = (self.study.study_name, trial.state.name)
        run.finish(exit_code=1 if trial.state.name == "FAIL" else 0)
