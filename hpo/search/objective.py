"""objective(trial): suggested params -> one fine-tune -> the best value of the study's validation objective (F1
unless the study file chose another), with everything recorded.

Outcomes map to trial states in one place, Optuna's `_run_trial`: `TrialPruned` -> PRUNED, `TrialFailed`
(listed in `catch`) -> FAIL and the study goes on. Every failure records `failure_reason` first.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from hpo.errors import HpoError, StorageUnavailable, TrialTakenOver
from hpo.preemption import Preempted
from hpo.search.space import suggest
from hpo.spec import StudySpec
from hpo.storage import retry_trial, still_running
from hpo.train.activation_store import ActivationCacheError
from hpo.train.config import LAMBDA, TrainConfig
from hpo.train.loop import Evaluation, NonFiniteLoss, TrainResult, placement

if TYPE_CHECKING:
    from collections.abc import Callable

    from hpo.search.kept import KeptModels
    from hpo.workbench import Workbench

__all__ = ["Objective", "Reporter", "TimeLimitExceeded", "TrialFailed"]

log = logging.getLogger("hpo")


class TrialFailed(Exception):
    """A trial that failed for a reason of its own (NaN loss, out of memory, time limit, bad data)."""


class TimeLimitExceeded(RuntimeError):
    """The trial ran past the study's `time_limit_s`: a search's guard against runaway trials."""


class Reporter(Protocol):
    def trial_started(self, number: int, config: TrainConfig, searched: list[str]) -> None: ...
    def step(self, step: int, total: int) -> None: ...
    def evaluated(self, evaluation: Evaluation, epochs: int) -> None: ...


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host, process, GPU, and the scheduler's job and task ids when there is one."""
    identity: dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    for key, variable in (("gpu", "CUDA_VISIBLE_DEVICES"), ("slurm_job_id", "SLURM_JOB_ID"),
                          ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"), ("k8s_index", "JOB_COMPLETION_INDEX"),
                          ("k8s_pod", "POD_NAME")):
        if os.environ.get(variable):
            identity[key] = os.environ[variable]
    return identity


class Objective:
    """`objective(trial)` for a study's spec on a workbench; λ is suggested as `lambda_param` (the study's name)."""

    def __init__(self, spec: StudySpec, bench: Workbench, reporter: Reporter, worker_seed: int,
                 lambda_param: str = LAMBDA, keeper: KeptModels | None = None) -> None:
        self.spec = spec
        self.bench = bench
        self.reporter = reporter
        self.lambda_param = lambda_param
        self.keeper = keeper  # keep_models: the best trials' models, saved as they finish
        self.identity = {**worker_identity(), "worker_seed": worker_seed}

    def __call__(self, trial: optuna.Trial) -> float:
        curve: list[Evaluation] = []
        where = None
        run = TrainResult()  # filled as the run goes: a pruned or failed trial still records its reuse
        writable = True  # false once the storage is down or the trial is no longer this worker's
        try:  # from the first storage call on: a preemption can land in any of them
            config = suggest(trial, self.spec, self.lambda_param)
            where = placement(config)
            for key, value in {**self.identity, "device": str(where.device), "precision": where.precision}.items():
                trial.set_user_attr(key, value)
            self.reporter.trial_started(trial.number, config, list(self.spec.searched()))
            result = self._fit(trial, config, curve, where, run)
        except optuna.TrialPruned:
            raise
        except (StorageUnavailable, TrialTakenOver):
            writable = False
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            writable = False
            raise _taken_over(trial) from None
        except KeyboardInterrupt:
            trial.set_user_attr("failure_reason", "interrupted")
            raise
        except Preempted:
            # Queued before Optuna fails this trial, so the retry holds the place the failure frees.
            trial.set_user_attr("failure_reason", "preempted")
            retry_trial(trial.study, trial, "preempted", self.spec.max_retries)
            raise
        except Exception as exc:  # every other outcome of one trial is that trial's failure
            reason = _reason(exc)
            trial.set_user_attr("failure_reason", reason)
            if not isinstance(exc, _EXPECTED):
                trial.set_user_attr("failure_traceback", traceback.format_exc(limit=8)[-4000:])
            raise TrialFailed(reason) from exc
        finally:
            if where is not None:
                _release_memory(where.device)
            if writable:
                _record(trial, curve, run)
        # A trial failed by a peer while this worker was paused must not be told: Optuna would raise inside its
        # clean-up ("Cannot tell a FAIL trial"). Looked up last, just before Optuna tells the value.
        if not still_running(trial):
            raise _taken_over(trial)
        return result.best.value

    def _fit(self, trial: optuna.Trial, config: TrainConfig, curve: list[Evaluation], where: Any,
             run: TrainResult) -> Any:
        source = self.spec.trial_source(trial.params)
        model = self.bench.new_model(config, source)
        if self.keeper is not None:
            self.keeper.start()
        trial.set_user_attr("trainable_params", sum(p.numel() for p in model.parameters() if p.requires_grad))
        started = time.monotonic()

        label = self.spec.validation_objective.label

        def on_eval(evaluation: Evaluation) -> None:
            curve.append(evaluation)
            trial.report(evaluation.value, evaluation.number)
            trial.set_user_attr("curve", [[e.number, e.epoch, round(e.value, 5)] for e in curve])
            if self.keeper is not None:
                self.keeper.evaluated(evaluation, model)
            self.reporter.evaluated(evaluation, config.epochs)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at evaluation {evaluation.number} ({label} "
                                         f"{evaluation.value:.4f})")

        def on_step(step: int, total: int) -> None:
            self.reporter.step(step, total)
            limit = config.time_limit_s
            if limit is not None and time.monotonic() - started > limit:
                raise TimeLimitExceeded(f"passed the time limit of {limit:g} s at step {step}")

        result = self.bench.fit(config, on_eval, model=model, on_step=on_step, where=where, result=run,
                                source=source)[1]
        if self.keeper is not None:
            try:
                self.keeper.save(trial, model, config, source)
            except OSError as exc:  # the value stands; only the kept copy is missing (a full or read-only disk)
                log.warning("trial %d: its model was not kept: %s", trial.number, exc)
        return result


def _taken_over(trial: optuna.Trial) -> TrialTakenOver:
    return TrialTakenOver(f"trial {trial.number} was failed and queued for a retry by another worker while this one "
                          "was paused (no heartbeat); dropping it and going on")


def _record(trial: optuna.Trial, curve: list[Evaluation], run: TrainResult) -> None:
    """What every trial records, pruned and failed ones included (documented in the README)."""
    try:
        _write_record(trial, curve, run)
    except optuna.exceptions.UpdateFinishedTrialError:
        raise _taken_over(trial) from None


def _write_record(trial: optuna.Trial, curve: list[Evaluation], run: TrainResult) -> None:
    if run.trainable_params:  # as the loop counted them (the objective counted the model's before it started)
        trial.set_user_attr("trainable_params", run.trainable_params)
    if run.reuse_record() is not None:
        trial.set_user_attr("reuse", run.reuse_record())
    if not curve:
        trial.set_user_attr("epochs_run", 0.0)
        return
    best = run.best  # the loop's curve: the evaluations `curve` holds, judged by the study's objective
    last = curve[-1]
    trial.set_user_attr("epochs_run", last.epoch)
    trial.set_user_attr("train_seconds", round(last.train_seconds, 3))
    trial.set_user_attr("fit_seconds", round(last.fit_seconds, 3))
    trial.set_user_attr("samples_per_second", round(last.samples_seen / max(last.train_seconds, 1e-9), 2))
    trial.set_user_attr("best_evaluation", best.number)
    trial.set_user_attr("best_epoch", best.epoch)
    trial.set_user_attr("best_accuracy", round(best.accuracy, 5))
    trial.set_user_attr("best_f1", round(best.f1, 5))


def _release_memory(device: Any) -> None:
    gc.collect()
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()


def _out_of_memory_types() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.cuda.OutOfMemoryError,)


_EXPECTED: tuple[type[BaseException], ...] = (NonFiniteLoss, TimeLimitExceeded, HpoError)


def _reason(exc: BaseException) -> str:
    labels: dict[type[BaseException], Callable[[BaseException], str]] = {
        NonFiniteLoss: lambda e: f"non-finite loss: {e}",
        TimeLimitExceeded: lambda e: f"time limit: {e}",
    }
    for kind, label in labels.items():
        if isinstance(exc, kind):
            return label(exc)
    if isinstance(exc, _out_of_memory_types()):
        return "out of memory: " + str(exc).splitlines()[0]
    if isinstance(exc, ActivationCacheError):
        return f"cache: {exc}"
    if isinstance(exc, HpoError):
        return f"data: {exc}"
    return f"error: {type(exc).__name__}: {exc}"
