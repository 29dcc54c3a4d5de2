"""One worker process: open the study, check it still matches its study file, run trials until the study's
budget is spent or its deadline passes.

The budget is the study's total of COMPLETE + PRUNED trials over every run and process (a FAIL does not use
it); it lives in the study's user attributes, so a re-run continues where the last one stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from hpo.errors import HpoError, SpecError
from hpo.retry import Preempted
from hpo.settings import resolve_storage
from hpo.spec import Range, StudySpec, load_spec
from hpo.storage import count_states, open_storage, study_storage

if TYPE_CHECKING:
    import optuna

__all__ = ["RunResult", "check_model", "load_data", "run", "run_trials", "worker_seed"]

log = logging.getLogger("hpo")

MAX_CONSECUTIVE_FAILURES = 5
COUNT_EVERY_S = 1.0
METRIC = "val_f1"


@dataclass(frozen=True)
class RunResult:
    study: optuna.Study
    storage: str  # password masked
    budget: int | None
    wall_seconds: float
    message: str | None = None  # why nothing ran, when nothing did


def worker_seed(study_seed: int, n_existing_trials: int) -> int:
    """Per-process sampler seed: parallel workers and repeated runs do not replay the same startup trials."""
    identity = f"{study_seed}:{socket.gethostname()}:{os.getpid()}:{n_existing_trials}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "little")


def check_model(spec: StudySpec, source: str) -> None:
    """Problems that need the model's config: a model family this project cannot fine-tune, a freeze depth
    beyond its layers, a max length beyond its position embeddings. Raised before anything is stored or trained."""
    from hpo.errors import HpoError
    from hpo.train.model import model_shape

    try:
        shape = model_shape(spec.model)
    except HpoError as exc:
        raise SpecError(source, [("model -> id", str(exc))]) from None
    problems = []
    highest, where = _highest(spec, "freeze_depth")
    if highest > shape.depth:
        problems.append((where, f"{highest} exceeds the {shape.depth} layers of {spec.model.id} (0 .. {shape.depth})"))
    longest, where = _highest(spec, "max_length")
    if shape.max_length is not None and longest > shape.max_length:
        problems.append((where, f"{longest} exceeds the {shape.max_length} positions of {spec.model.id} "
                                f"({shape.family}); at most {shape.max_length}"))
    if problems:
        raise SpecError(source, problems)


def _highest(spec: StudySpec, name: str) -> tuple[int, str]:
    """The highest value a training field can take in the study, and the field path that sets it."""
    entry = spec.search_space.get(name, getattr(spec.training, name))
    highest = entry.high if isinstance(entry, Range) else max(getattr(entry, "choices", [entry]))
    return int(highest), (f"search_space -> {name}" if name in spec.search_space else f"training -> {name}")


def load_data(spec: StudySpec, source: str | None = None):
    """The study's source, target-train and validation data; a DataError names the study file (`source`)."""
    from hpo.errors import DataError
    from hpo.train.data import load_task_data

    try:
        return load_task_data(spec.source, spec.target, validation_size=spec.validation_size,
                              seed=spec.training.seed)
    except DataError as exc:
        raise DataError(f"{source}: {exc}" if source else str(exc)) from None


def run(
    spec_path: str | Path,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    force: bool = False,
    console: Console | None = None,
    enqueue: Path | None = None,
) -> RunResult:
    import optuna

    from hpo.algorithms import make_pruner, make_sampler
    from hpo.progress import LiveDisplay
    from hpo.provenance import check_unchanged, provenance
    from hpo.space import target_only_share

    started = time.monotonic()
    console = console or Console()
    # The live display reports every trial, failures with their reason; Optuna's own log would repeat
    # them with a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    spec_text = spec_path.read_text()
    target = resolve_storage(storage, spec.storage)
    shown = target.display

    with console.status("checking the model and loading data…"):
        check_model(spec, str(spec_path))
        data = load_data(spec, str(spec_path))
    storage_backend = open_storage(target, max_retries=spec.max_retries)
    study = optuna.create_study(
        study_name=spec.name, storage=study_storage(storage_backend), direction=spec.direction, load_if_exists=True,
        pruner=make_pruner(spec.pruner, spec.max_evaluations()),
    )
    current = provenance(spec, spec_text, data.fingerprint(spec.source, spec.target))
    stored = study.user_attrs.get("provenance")
    if stored is None:
        study.set_user_attr("provenance", current)
        study.set_metric_names([METRIC])
        if spec.timeout is not None:
            deadline = datetime.now(UTC) + timedelta(seconds=spec.timeout)
            study.set_user_attr("deadline", deadline.isoformat(timespec="seconds"))
    elif force:
        console.print("[yellow]--force: continuing a study whose setup changed[/]")
        study.set_user_attr("provenance_forced", current)
    else:
        check_unchanged(stored, current, spec.name)

    if enqueue is not None:
        _enqueue_exported(study, spec, enqueue, console)
    budget = _budget(study, spec, n_trials, console)
    message = _nothing_to_do(study, budget)
    if message:
        return RunResult(study, shown, budget, time.monotonic() - started, message)

    trials = study.get_trials(deepcopy=False)
    seed = worker_seed(spec.training.seed, len(trials))
    study.sampler = make_sampler(spec.sampler, seed, target_only_share(spec), study)
    with console.status("loading the model…"):
        from hpo.objective import Objective, TrialFailed
        from hpo.resources import Workbench
        from hpo.train.model import load_encoder

        resources = Workbench(load_encoder(spec.model), data)
    counts = Counter(t.state.name for t in trials)
    console.print(f"study [bold]{spec.name}[/] · storage {shown} · "
                  f"{counts['COMPLETE'] + counts['PRUNED']}/{budget or '-'} trials done", highlight=False)
    with LiveDisplay(console, spec.name, budget, counts) as display, _preemption_signals():
        objective = Objective(spec, resources, display, seed)
        run_trials(study, objective, budget=budget, display=display, catch=(TrialFailed,),
                   max_retries=spec.max_retries)
    return RunResult(study, shown, budget, time.monotonic() - started)


@contextmanager
def _preemption_signals() -> Iterator[None]:
    """SIGTERM (Kubernetes, local launchers) and SIGUSR2 (Slurm's preemption and timeout warning) stop the
    running trial at once: it is failed as `preempted` and retried, and the worker exits with code 75."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    from hpo.retry import preempt

    def on_signal(signum: int, _frame: object) -> None:
        preempt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _enqueue_exported(study: optuna.Study, spec: StudySpec, path: Path, console: Console) -> None:
    import yaml

    from hpo.export import enqueued_configs

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HpoError(f"{path}: cannot read the exported configs: {exc}") from None
    configs = enqueued_configs(document if isinstance(document, dict) else {}, spec, str(path))
    for params in configs:
        study.enqueue_trial(params, user_attrs={"enqueued_from": str(path)}, skip_if_exists=True)
    console.print(f"enqueued {len(configs)} exported config(s) from {path}; they run first", highlight=False)


def _fail_if_still_running(study: optuna.Study, max_retries: int) -> None:
    """A preemption that came outside the objective (while Optuna created the trial, or stored its result)
    leaves this process's trial RUNNING, maybe without a heartbeat that would ever go stale: fail it as
    preempted and queue its retry here."""
    from optuna.trial import TrialState

    from hpo.retry import fail_and_retry

    storage = study._storage
    trial_id = getattr(getattr(storage, "_backend", storage), "last_started_trial_id", None)
    if trial_id is not None and (trial := storage.get_trial(trial_id)).state == TrialState.RUNNING:
        fail_and_retry(study, trial, "preempted", max_retries)


def _count(study: optuna.Study, display: Any) -> None:
    display.counts.clear()
    display.counts.update(count_states(study))


def _out_of_budget(budget: int | None, deadline: datetime | None, counts: Any, include_running: bool = False) -> bool:
    used = counts["COMPLETE"] + counts["PRUNED"] + (counts["RUNNING"] if include_running else 0)
    return (budget is not None and used >= budget) or (deadline is not None and datetime.now(UTC) >= deadline)


def _budget(study: optuna.Study, spec: StudySpec, n_trials: int | None, console: Console) -> int | None:
    """--n-trials sets a new total; otherwise the stored total; a new study takes the study file's."""
    stored = study.user_attrs.get("n_trials")
    budget = n_trials or stored or spec.n_trials
    if budget != stored:
        study.set_user_attr("n_trials", budget)
    elif spec.n_trials is not None and spec.n_trials != budget:
        console.print(f"[dim]the study's budget is {budget} trials (set earlier with --n-trials); "
                      f"the study file says {spec.n_trials}[/]")
    return budget


def _deadline(study: optuna.Study) -> datetime | None:
    value = study.user_attrs.get("deadline")
    return datetime.fromisoformat(value) if value else None


def _nothing_to_do(study: optuna.Study, budget: int | None) -> str | None:
    from optuna.trial import TrialState

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if budget is not None and done >= budget:
        return (f"study {study.study_name!r} is finished: {done} of {budget} trials done. "
                "Raise its budget with --n-trials N to continue.")
    deadline = _deadline(study)
    if deadline is not None and datetime.now(UTC) >= deadline:
        return f"study {study.study_name!r} passed its deadline ({deadline:%Y-%m-%d %H:%M:%S} UTC); nothing to run."
    return None


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    budget: int | None,
    display: Any,
    catch: tuple[type[Exception], ...] = (),
    max_retries: int = 3,
) -> None:
    """Run trials one at a time through `study.optimize` (heartbeats, state mapping) until the budget is spent or
    the deadline passes. The study's storage is this project's (hpo.storage.open_storage): it admits a trial
    only within the budget (hpo/budget.py). `display` takes `counts`, `trial_finished(trial)` and `note(text)`."""
    import optuna
    from optuna.trial import TrialState

    from hpo.budget import BudgetSpent

    storage = study._storage
    getattr(storage, "_backend", storage).limit_trials(storage.get_study_id_from_name(study.study_name), budget)
    failures_in_a_row = 0
    waiting_noted = False
    finished: list[optuna.trial.FrozenTrial] = []
    callbacks = [lambda _study, trial: (finished.append(trial), display.trial_finished(trial))]
    deadline = _deadline(study)
    counted_until = 0.0
    while True:
        # A cheap look first (at most once a second: COMPLETE + PRUNED only grow, so a stale count never stops a
        # worker early), so that waiting and finishing cost nothing; the storage's admission is the exact check,
        # and a refusal (another worker took the last place first) comes back here with a fresh count.
        if time.monotonic() >= counted_until:
            _count(study, display)
            counted_until = time.monotonic() + COUNT_EVERY_S
        if _out_of_budget(budget, deadline, display.counts, include_running=True):
            if _out_of_budget(budget, deadline, display.counts):
                return
            if not waiting_noted:
                display.note(f"waiting for {display.counts['RUNNING']} running trial(s) of other workers…")
                waiting_noted = True
            # If a worker died, its heartbeat stops and its trial is failed (and retried) after the grace
            # period, which frees the budget again.
            optuna.storages.fail_stale_trials(study)
            time.sleep(1)
            counted_until = 0.0
            continue
        waiting_noted = False
        try:
            study.optimize(objective, n_trials=1, catch=catch, callbacks=callbacks)
        except BudgetSpent:
            counted_until = 0.0
            continue
        except Preempted:
            _fail_if_still_running(study, max_retries)
            raise
        last = finished[-1]
        failures_in_a_row = failures_in_a_row + 1 if last.state == TrialState.FAIL else 0
        if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise HpoError(
                f"{failures_in_a_row} trials in a row failed; stopping. Last reason: "
                f"{last.user_attrs.get('failure_reason', 'unknown')}"
            )
