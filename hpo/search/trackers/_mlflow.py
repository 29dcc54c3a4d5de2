"""MLflow: one parent run per study, shared by every worker and re-run, and one child run per trial.

The parent is created once, by the first worker, under a lock on the study's storage (two workers starting together
create one), and its id is kept with the study (user attribute `mlflow_parent_run_id`) for every later worker.

What optuna-integration's MLflowCallback writes when a trial ends is used as it is: the trial's parameters, its
`value` (as `hpo trials` names it: a complete trial's best F1; a pruned trial's last) and tags (state, number,
distributions, every user attribute: failure_reason, retry_of, trainable_params…). It opens the run named in the
trial's system attribute `mlflow_run_id`, so the child created here when the trial started is the one it
completes. What it lacks is written here: the run created at the start under the parent (the callback makes a run
only after the trial, parentless), the per-evaluation step series (a callback sees only the finished trial),
duration and trainable_params as metrics, and the run's status (the callback ends every run FINISHED, failures
included). optuna-integration deprecated the callback in 4.9 (it moves to OptunaHub, and goes in 6.0), so the
`mlflow` extra keeps optuna-integration below 6; what it writes is one `log_batch` should it have to be replaced.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from hpo.search.trackers._calls import TRACKER_RETRY_S, TrackerCalls, set_environment
from hpo.settings import StorageURL
from hpo.spec.trackers import TRACKING_URI_VARIABLE, TrackersSpec, mask_tracking_uri, parse_tracking_uri
from hpo.storage import count_states
from hpo.storage.locks import DatabaseLock

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation

__all__ = ["PARENT_RUN_ATTR", "MlflowTracker", "duration_s"]

PARENT_RUN_ATTR = "mlflow_parent_run_id"
_PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests child runs by
_RUN_ID_ATTR = "mlflow_run_id"  # the trial system attribute MLflowCallback resumes a run by


def duration_s(trial: optuna.trial.FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)


class MlflowTracker:
    name = "MLflow"

    def __init__(self, trackers: TrackersSpec, study: optuna.Study, storage: StorageURL, metric: str,
                 warn: Callable[[str], None]) -> None:
        assert trackers.mlflow is not None
        self.study = study
        self.metric = metric
        self.experiment = trackers.mlflow.experiment or study.study_name
        self._uri = trackers.tracking_uri()
        self._lock_url = storage  # the study's storage, where the parent's lock is taken
        self._warn = warn
        self.calls = TrackerCalls(self.name, warn)
        self.parent: str | None = None
        self._children: dict[int, str] = {}
        self._client: Any = None
        self._experiment_id = ""
        self._restore_environment: Callable[[], None] = lambda: None
        self._caller_uri: str | None = None

    def open(self) -> str | None:
        """Find or create the study's parent run; the line the run's header shows, or None when MLflow is off."""
        parsed = parse_tracking_uri(self._uri) if self._uri else None
        self.calls = TrackerCalls(self.name, self._warn, parsed.scrub if parsed else str)
        self._restore_environment = set_environment(self._options(parsed))
        self._caller_uri = os.environ.get(TRACKING_URI_VARIABLE)
        self.parent = self.calls(self._open_parent)
        if self.parent is None:
            return None
        return (f"MLflow {mask_tracking_uri(self._uri or '')} · experiment {self.experiment!r} · parent run "
                f"{self.parent}")

    def _options(self, parsed: StorageURL | None) -> dict[str, str]:
        # MLflow's own HTTP retries wait minutes through an outage; ours are bounded (TrackerCalls), so its are off.
        options = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{TRACKER_RETRY_S:g}"}
        if self._uri and (parsed is None or parsed.backend == "file"):
            # MLflow 3 refuses a file store unless told it is wanted; the study file names one, so it is.
            options["MLFLOW_ALLOW_FILE_STORE"] = "true"
        return options

    def _open_parent(self) -> str:
        import mlflow

        # "Creating initial MLflow database tables…": set after the import, which sets MLflow's logger to INFO.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._uri = self._uri or mlflow.get_tracking_uri()  # MLflow's default: sqlite:///mlflow.db here

        # The lock also covers creating the experiment, and MLflow's tables on a new SQLite store: two workers
        # starting together would race to create them.
        with DatabaseLock(self._lock_url, f"mlflow-parent:{self.study.study_name}", outage_s=TRACKER_RETRY_S):
            self._client = mlflow.MlflowClient(self._uri)
            found = self._client.get_experiment_by_name(self.experiment)
            self._experiment_id = found.experiment_id if found else self._client.create_experiment(self.experiment)
            stored = self.study.user_attrs.get(PARENT_RUN_ATTR)
            if stored and self._reusable(stored):
                self._client.update_run(stored, status="RUNNING")
                return stored
            parent = self._client.create_run(self._experiment_id, run_name=self.study.study_name,
                                             tags={"optuna.study": self.study.study_name}).info.run_id
            self.study.set_user_attr(PARENT_RUN_ATTR, parent)
            return parent

    def _reusable(self, run_id: str) -> bool:
        """The stored parent is in this store and experiment (a study moved to another store or experiment gets a
        new parent there)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        try:
            run = self._client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return False
            raise
        return run.info.experiment_id == self._experiment_id and run.info.lifecycle_stage == "active"

    # -- the objective's events ---------------------------------------------------------------------------

    def trial_started(self, number: int, config: TrainConfig | None = None) -> None:
        """The trial's child run under the parent. Its parameters are logged when it ends (by MLflowCallback,
        under the trial's own names), not from `config`: MLflow refuses a parameter logged twice with two values."""
        child = self.calls(lambda: self._new_child(number)) if self.parent else None
        if child is not None:
            self._children[number] = child

    def evaluated(self, number: int, evaluation: Evaluation) -> None:
        child = self._children.get(number)
        if child is not None:
            self.calls(lambda: self._client.log_metric(child, self.metric, evaluation.value, step=evaluation.number))

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        """The finished trial recorded on its child run (made now for a trial that failed before it started)."""
        if self.parent is None:
            return
        child = self._children.pop(trial.number, None) or self.calls(lambda: self._new_child(trial.number))
        if child is not None:
            self.calls(lambda: self._record(trial, child))

    def abandon(self) -> None:
        """Runs of trials whose outcome cannot be read (the storage is down): ended KILLED."""
        for child in self._children.values():
            self.calls(lambda child=child: self._client.set_terminated(child, "KILLED"))
        self._children.clear()

    def close(self, storage_reachable: bool) -> None:
        """The parent ends FINISHED, with the study's best value, once no trial of the study runs or waits (a later
        worker or re-run sets it RUNNING again)."""
        try:
            if self.parent is not None and storage_reachable:
                self.calls(self._close_parent)
        finally:
            self._restore_environment()
            if os.environ.get(TRACKING_URI_VARIABLE) != self._caller_uri:
                # MLflowCallback's mlflow.set_tracking_uri also exported it (for subprocesses), where it would win
                # over the next study's own tracking URI in this process (and in workers it starts).
                import mlflow

                mlflow.set_tracking_uri(self._caller_uri)

    def _close_parent(self) -> None:
        counts = count_states(self.study)
        if counts["COMPLETE"]:
            self._client.log_metric(self.parent, f"best_{self.metric}", self.study.best_value)
        if not counts["RUNNING"] and not counts["WAITING"]:
            self._client.set_terminated(self.parent, "FINISHED")

    def _new_child(self, number: int) -> str:
        return self._client.create_run(self._experiment_id, run_name=str(number), tags={
            _PARENT_TAG: self.parent, "optuna.study": self.study.study_name}).info.run_id

    def _record(self, trial: optuna.trial.FrozenTrial, child: str) -> None:
        import mlflow
        from mlflow.entities import Metric

        # MLflowCallback works through MLflow's active run; one left active by an attempt that failed half-way
        # would make every later attempt fail ("already active").
        if mlflow.active_run() is not None:
            mlflow.end_run()
        resumable = copy.copy(trial)
        resumable.system_attrs = {**trial.system_attrs, _RUN_ID_ATTR: child}
        self._callback()(self.study, resumable)
        extras = {"duration_s": duration_s(trial), "trainable_params": trial.user_attrs.get("trainable_params")}
        now = int(time.time() * 1000)
        self._client.log_batch(child, metrics=[Metric(k, float(v), now, 0) for k, v in extras.items() if v is not None])
        self._client.set_terminated(child, "FAILED" if trial.state.name == "FAIL" else "FINISHED")

    def _callback(self) -> Any:
        from optuna_integration.mlflow import MLflowCallback

        return MLflowCallback(tracking_uri=self._uri, metric_name="value", create_experiment=False,
                              mlflow_kwargs={"experiment_id": self._experiment_id}, tag_trial_user_attrs=True)
