"""One worker on a study: open it (or create it, with its provenance, budget and deadline), check it still matches
the spec it was created from, run trials until its budget is spent or its deadline passes, and report.

`run_and_report` is the one "run a study and say how it went" for `hpo run`, a Slurm task and the target-only
search of `hpo transfer-effect`; it takes a validated spec, never a file.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from hpo.errors import StudyMismatchError
from hpo.preemption import preemption_signals
from hpo.search.kept import KeptModels
from hpo.settings import resolve_storage
from hpo.spec import StudySpec
from hpo.storage import count_states, open_storage, study_storage
from hpo.workbench import Workbench, open_workbench

if TYPE_CHECKING:
    import optuna

    from hpo.search.objective import Objective

__all__ = ["RunResult", "quiet_libraries", "run_and_report", "run_file", "run_study", "worker_seed"]


@dataclass(frozen=True)
class RunResult:
    study: optuna.Study
    storage: str  # every secret masked
    budget: int | None
    wall_seconds: float
    message: str | None = None  # why nothing ran, when nothing did


def worker_seed(study_seed: int, n_existing_trials: int) -> int:
    """Per-process sampler seed: parallel workers and repeated runs do not replay the same startup trials."""
    identity = f"{study_seed}:{socket.gethostname()}:{os.getpid()}:{n_existing_trials}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "little")


def quiet_libraries(*, log_to_stderr: bool = False) -> None:
    """What every worker process sets up, whoever started it: quiet libraries (tokenisation happens once, before any
    fork; no download bars), and with `log_to_stderr` the `hpo` logger on stderr (where no CLI set one up)."""
    import logging
    import sys

    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Both libraries read the variable once, on import; a command that imported transformers before it got here
    # still drew its own bars ("Loading weights", "Writing model shards" in transformers 5), so tell them directly.
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
        if "transformers" in sys.modules:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # the hub's bars too
        elif "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
    for noisy in ("httpx", "transformers", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logger = logging.getLogger("hpo")
    if log_to_stderr and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_file(study_file: Path, *, console: Console, storage: str | None = None, n_trials: int | None = None,
             force: bool = False, enqueue: Path | None = None) -> RunResult:
    """The worker every launcher starts: `hpo run STUDY_FILE`."""
    from hpo.spec import load_study_file

    spec, text = load_study_file(study_file)
    return run_and_report(spec, text, source=str(study_file), console=console, storage=storage, n_trials=n_trials,
                          force=force, enqueue=enqueue)


def run_and_report(
    spec: StudySpec, spec_text: str, *, source: str, console: Console, storage: str | None = None,
    n_trials: int | None = None, force: bool = False, enqueue: Path | None = None,
) -> RunResult:
    """`run_study`, then its summary table (or why nothing ran) on `console`."""
    from hpo.search.progress import summary_table

    result = run_study(spec, spec_text, source=source, console=console, storage=storage, n_trials=n_trials,
                       force=force, enqueue=enqueue)
    if result.message:
        console.print(result.message, highlight=False)
    else:
        console.print(summary_table(result.study, storage=result.storage, wall_seconds=result.wall_seconds,
                                    budget=result.budget))
    return result


def run_study(
    spec: StudySpec, spec_text: str, *, source: str, storage: str | None = None, n_trials: int | None = None,
    force: bool = False, console: Console | None = None, enqueue: Path | None = None,
) -> RunResult:
    """Run trials of the study `spec` (whose file text is `spec_text`, named `source` in messages) in the resolved
    storage until its budget is spent or its deadline passes. Everything the study needs is checked before the
    study is created."""
    import optuna

    from hpo.search.algorithms import make_pruner, make_sampler
    from hpo.search.objective import Objective  # imports torch: only when a study runs
    from hpo.search.progress import LiveDisplay
    from hpo.search.space import target_only_params, target_only_share
    from hpo.search.trackers import require_trackers, tracked

    started = time.monotonic()
    console = console or Console()
    # The live display reports every trial, failures with their reason; Optuna's own log would repeat them.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    target = resolve_storage(storage, spec.storage)
    require_trackers(spec, source)  # a tracker's package missing: one error before the study exists
    with console.status("checking the model and loading data…"):
        bench = open_workbench(spec, source)
    study = optuna.create_study(
        study_name=spec.name, storage=study_storage(open_storage(target, max_retries=spec.max_retries)),
        direction=spec.direction, load_if_exists=True, pruner=make_pruner(spec.pruner, spec.max_evaluations()),
    )
    lambda_param = _adopt(study, spec, spec_text, bench, force, console)
    if enqueue is not None:
        from hpo.search.enqueue import enqueue_exported

        n = enqueue_exported(study, spec, enqueue, lambda_param)
        console.print(f"enqueued {n} exported config(s) from {enqueue}; they run first", highlight=False)
    budget = _budget(study, spec, n_trials, console)
    message = _nothing_to_do(study, budget)
    if message:
        return RunResult(study, target.display, budget, time.monotonic() - started, message)
    counts = count_states(study)
    seed = worker_seed(spec.training.seed, sum(counts.values()))
    study.sampler = make_sampler(spec.sampler, seed, target_only_share(spec), study,
                                 target_only_params(spec, lambda_param))
    with console.status("loading the model…"):
        bench.bundle  # noqa: B018 - loaded now, under the status line, not inside the first trial
    console.print(f"study [bold]{spec.name}[/] · storage {target.display} · "
                  f"{counts['COMPLETE'] + counts['PRUNED']}/{budget or '-'} trials done", highlight=False)
    display = tracked(LiveDisplay(console, spec.name, budget, counts, spec.validation_objective), spec, study,
                      target, spec.validation_objective.metric, console)
    keeper = KeptModels(spec, study, bench) if spec.keep_models is not None else None
    objective = Objective(spec, bench, display, seed, lambda_param, keeper)
    _run(study, objective, budget, spec.max_retries)
    if keeper is not None:
        keeper.clear()  # the last trial's folder may have outlived a peer's clearing
    return RunResult(study, target.display, budget, time.monotonic() - started)


def _run(study: optuna.Study, objective: Objective, budget: int | None, max_retries: int) -> None:
    from hpo.search.objective import TrialFailed
    from hpo.search.runner import run_trials

    keeper = objective.keeper
    with objective.reporter, preemption_signals():
        run_trials(study, objective, budget=budget, display=objective.reporter, catch=(TrialFailed,),
                   max_retries=max_retries, after_trial=keeper.clear if keeper is not None else None)


def _adopt(study: optuna.Study, spec: StudySpec, spec_text: str, bench: Workbench, force: bool,
           console: Console) -> str:
    """A new study records where it came from (and its deadline); a re-run must match that, unless forced.
    Returns the parameter name the study stores λ under."""
    from hpo.search.provenance import check_unchanged, provenance, summary
    from hpo.search.space import lambda_name
    from hpo.spec import stored_provenance
    from hpo.storage import store_provenance

    current = provenance(spec, spec_text, bench.data.fingerprint(spec.source_candidates(), spec.target))
    stored = stored_provenance(study)
    metric = spec.validation_objective.metric
    searched_on = (study.metric_names or ["val_f1"])[0]  # a study made before metric names were stored: F1
    if stored is not None and searched_on != metric:  # no --force: the values could not be compared
        raise StudyMismatchError(f"study {spec.name!r} was searched on {searched_on}; the study file's objective "
                                 f"{spec.objective!r} is {metric}. Its trials' values cannot be compared: give the "
                                 "study a new name")
    created_with = lambda_name((stored or current).search_space)
    if stored is None:
        store_provenance(study, current.record(), summary(current))
        study.set_metric_names([metric])
        if spec.timeout is not None:
            deadline = datetime.now(UTC) + timedelta(seconds=spec.timeout)
            study.set_user_attr("deadline", deadline.isoformat(timespec="seconds"))
    elif force:
        console.print("[yellow]--force: continuing a study whose setup changed[/]")
        store_provenance(study, current.record(), summary(current), forced=True)
    else:
        check_unchanged(stored, current, spec.name)
    return created_with


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


def _nothing_to_do(study: optuna.Study, budget: int | None) -> str | None:
    from hpo.search.runner import deadline_of

    counts = count_states(study)
    done = counts["COMPLETE"] + counts["PRUNED"]
    if budget is not None and done >= budget:
        return (f"study {study.study_name!r} is finished: {done} of {budget} trials done. "
                "Raise its budget with --n-trials N to continue.")
    deadline = deadline_of(study)
    if deadline is not None and datetime.now(UTC) >= deadline:
        return f"study {study.study_name!r} passed its deadline ({deadline:%Y-%m-%d %H:%M:%S} UTC); nothing to run."
    return None
