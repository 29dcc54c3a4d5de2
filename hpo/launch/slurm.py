"""`hpo launch slurm`: a Slurm job array whose every task is one `hpo run` worker on the same study, submitted
through submitit.

What runs where:

- The job script comes from submitit's own sbatch renderer (`render_job_script`, a pure function whose keyword-only
  signature is the list of legal options). Each array task runs `python -m submitit.core._submit LOG_DIR`, which
  loads the task's pickle: a `SlurmWorker` holding the study file's absolute path and the worker's options. It
  runs `hpo.runner.run` in that process, exactly what `hpo run STUDY` does.
- The storage URL reaches the tasks only through the environment: sbatch exports the submitting environment, and
  `--storage` is put into that environment (`HPO_STORAGE`) for the `sbatch` call only. It is never written into
  the job script, the pickles or the logs (the worker prints it masked). Only PostgreSQL is accepted: every task,
  on any node, must reach the same database.

Preemption and time limits. The script asks Slurm for SIGUSR2 90 s before the time limit (`--signal=USR2@90`,
submitit's signal for time-outs and preemption; `scancel --signal=USR2 JOB_TASK` sends it by hand). Inside the
task submitit installs its handlers first (SIGUSR2: checkpoint and requeue; SIGTERM: ignored); `SlurmWorker` makes
SIGTERM stop the task while the model loads, and the worker's trial loop installs its own handler for both over
them (the running trial ends as FAIL `preempted` and its retry is queued), restoring them when the loop ends. Then:

- SIGUSR2: `SlurmWorker` hands the signal back to submitit's handler, which requeues the task (`scontrol requeue
  JOB_TASK`; the worker is checkpointable and `checkpoint()` resubmits it as it is). Slurm starts a requeued task
  about two minutes later; it continues the study, or ends at once if the budget is spent. submitit counts the
  signal as a time-out once the task ran min(80% of --time, --time - 10 min) and requeues at most 3 time-outs per
  task; earlier signals are preemptions, always requeued.
- SIGTERM (`scancel`, `hpo stop`, Slurm's own preemption, which requeues or cancels the job itself): the task
  exits with code 75 (as `hpo run` does) and is not requeued.

Either way the preempted trial's retry is run by whichever worker asks for a trial next: another task of the array
or the requeued one.

Launches are recorded in `.hpo/launches/<study>.json` (job id, log dir, launcher), so `hpo stop` and `hpo logs`
find them.
"""

from __future__ import annotations

import functools
import inspect
import io
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import submitit
from submitit.slurm.slurm import _make_sbatch_string

from hpo.errors import HpoError
from hpo.launch.registry import record_launch
from hpo.settings import StorageURL, resolve_storage

__all__ = ["PREEMPTED_EXIT_CODE", "SlurmLaunch", "SlurmWorker", "launch_log_paths", "launch_slurm",
           "render_job_script", "require_shared_storage", "slurm_log_path", "stop_slurm"]

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL, as `hpo run` exits when preempted
REGISTRY = Path(".hpo")  # launches/<study>.json; default Slurm logs in slurm/<study>/
SIGNAL_DELAY_S = 90  # SIGUSR2 this long before the time limit: the trial ends at once, so 90 s is plenty

# sbatch options the launcher sets itself; `--sbatch` may not override them.
_MANAGED = {"array": None, "output": None, "error": None, "signal": None, "open-mode": None, "job-name": None,
            "nodes": None, "ntasks": None, "ntasks-per-node": None, "partition": "--partition",
            "time": "--time", "gpus-per-task": "--gpus-per-task", "cpus-per-task": "--cpus-per-task",
            "mem": "--mem", "account": "--account", "qos": "--qos", "constraint": "--constraint"}
_SBATCH_FLAG = re.compile(r"--(?P<name>[a-z][a-z0-9-]*)(?:=(?P<value>.*))?", re.DOTALL)
_MEM = re.compile(r"\d+(?:[KMGT]B?)?")
_TIME_FORMATS = "minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or " \
                "days-hours:minutes:seconds"

F = TypeVar("F", bound=Callable[..., Any])


def _legal_options(render: F) -> F:
    """Refuse an unknown option by name, listing the legal ones: the render function's signature is their
    one definition (as submitit does for its own `_make_sbatch_string`)."""
    signature = inspect.signature(render)
    legal = list(signature.parameters)

    @functools.wraps(render)
    def checked(**options: Any) -> Any:
        unknown = sorted(set(options) - set(legal))
        if unknown:
            raise HpoError(f"unknown Slurm launch option{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(unknown)}; valid options: {', '.join(legal)}")
        missing = [n for n, p in signature.parameters.items() if p.default is p.empty and n not in options]
        if missing:
            raise HpoError(f"missing Slurm launch option{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        return render(**options)

    checked.legal_options = tuple(legal)  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


@_legal_options
def render_job_script(
    *,
    name: str,
    log_dir: str | Path,
    array: int,
    time: str | int,
    gpus_per_task: int = 1,
    cpus_per_task: int | None = None,
    mem: str | None = None,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    constraint: str | None = None,
    sbatch: Sequence[str] = (),
    setup: Sequence[str] = (),
    python: str | None = None,
) -> str:
    """The sbatch script of a launch, rendered by submitit exactly as it submits it. Pure: no file, no Slurm.

    name: the study (job name `hpo-NAME`); log_dir: submitit's folder (task logs and pickles, on a shared file
    system); array: number of tasks, one worker each; time: Slurm's time format (`4:00:00`, `1-00:00:00`,
    minutes), rendered in minutes; gpus_per_task: 0 for CPU-only; mem: `16G`; sbatch: extra `--flag=value`
    directives; setup: shell lines run before the worker (`module load cuda`); python: the interpreter shown
    (default: this one, by its absolute path, which is what submitit submits).
    """
    parameters = _sbatch_parameters(name=name, time=time, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task,
                                    mem=mem, partition=partition, account=account, qos=qos, constraint=constraint,
                                    sbatch=sbatch, setup=setup)
    if not isinstance(array, int) or isinstance(array, bool) or array < 1:
        raise HpoError(f"--array must be a number of tasks >= 1, not {array!r}")
    folder = Path(log_dir).expanduser().absolute()
    return _make_sbatch_string(command=_task_command(python, folder), folder=folder,
                               map_count=array if array > 1 else None, **parameters)


def _task_command(python: str | None, folder: Path) -> str:
    """What submitit's executor runs in each task (`SlurmExecutor._submitit_command_str`)."""
    python = shlex.quote(sys.executable) if python is None else python
    return " ".join([python, "-u -m submitit.core._submit", shlex.quote(str(folder))])


def _sbatch_parameters(
    *, name: str, time: str | int, gpus_per_task: int, cpus_per_task: int | None, mem: str | None,
    partition: str | None, account: str | None, qos: str | None, constraint: str | None, sbatch: Sequence[str],
    setup: Sequence[str],
) -> dict[str, Any]:
    """The launch's options as submitit's Slurm parameters (`SlurmExecutor.update_parameters`)."""
    if not isinstance(gpus_per_task, int) or gpus_per_task < 0:
        raise HpoError(f"--gpus-per-task must be a number >= 0, not {gpus_per_task!r}")
    if cpus_per_task is not None and (not isinstance(cpus_per_task, int) or cpus_per_task < 1):
        raise HpoError(f"--cpus-per-task must be a number >= 1, not {cpus_per_task!r}")
    if mem is not None and not _MEM.fullmatch(str(mem)):
        raise HpoError(f"--mem must be a size such as 16G, 16GB, 4096M or 4096 (megabytes), not {mem!r}")
    parameters: dict[str, Any] = {
        "job_name": f"hpo-{name}", "time": _minutes(time), "nodes": 1, "ntasks_per_node": 1,
        "signal_delay_s": SIGNAL_DELAY_S, "wckey": None,  # submitit's default wckey names submitit, not the study
    }
    if gpus_per_task:
        parameters["gpus_per_task"] = gpus_per_task  # with one task per node Slurm needs --ntasks-per-node
    optional = {"cpus_per_task": cpus_per_task, "mem": mem, "partition": partition, "account": account, "qos": qos,
                "constraint": constraint}
    parameters.update({key: value for key, value in optional.items() if value not in (None, "")})
    extra = _extra_directives(sbatch)
    if extra:
        parameters["additional_parameters"] = extra
    if setup:
        parameters["setup"] = [str(line) for line in setup]
    return parameters


def _minutes(time: str | int) -> int:
    """Slurm's time formats -> whole minutes (submitit's `time`, which also drives its time-out bookkeeping)."""
    text = str(time).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text)
    if not match:
        raise HpoError(f"--time {text!r} is not a Slurm time; use {_TIME_FORMATS}")
    days, parts = match.group(1), [int(part) for part in match.group(2).split(":")]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = [*parts, 0, 0][:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(parts) == 3:  # hours:minutes:seconds
        total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    else:  # minutes[:seconds]
        total = parts[0] * 60 + (parts[1] if len(parts) == 2 else 0)
    if total <= 0:
        raise HpoError(f"--time must be positive, not {text!r}")
    return math.ceil(total / 60)


def _extra_directives(flags: Sequence[str]) -> dict[str, Any]:
    """`--sbatch "--flag=value"` -> {"flag": "value"}; `--sbatch --flag` -> {"flag": True}."""
    extra: dict[str, Any] = {}
    for flag in flags:
        match = _SBATCH_FLAG.fullmatch(str(flag).strip())
        if not match:
            raise HpoError(f"--sbatch {flag!r}: write a long sbatch option, --name=value or --name "
                           "(e.g. --sbatch=--mail-type=END)")
        key, value = match.group("name"), match.group("value")
        if key in _MANAGED:
            dedicated = _MANAGED[key]
            raise HpoError(f"--sbatch {flag!r}: " + (f"use {dedicated} instead" if dedicated else
                                                     f"--{key} is set by the launcher and cannot be changed"))
        if key == "export" and not _exports_storage(value or ""):
            raise HpoError(f"--sbatch {flag!r}: the tasks need HPO_STORAGE from this environment; "
                           "use --export=ALL[,...] or list HPO_STORAGE")
        extra[key] = True if value is None else value
    return extra


def _exports_storage(export: str) -> bool:
    names = [part.split("=", 1)[0] for part in export.split(",")]
    return bool(names) and (names[0] == "ALL" or "HPO_STORAGE" in names)


def require_shared_storage(target: StorageURL) -> None:
    """Every task, on any node, must reach the same storage: a PostgreSQL server. SQLite (a file, or in memory)
    is refused with what to do instead."""
    if target.backend == "postgresql":
        return
    what = "an in-memory database" if target.in_memory else \
        "a SQLite file, which tasks on other nodes cannot share" if target.backend == "sqlite" else \
        f"a {target.backend} database"
    raise HpoError(f"hpo launch slurm needs a storage that tasks on every node share: a PostgreSQL URL in "
                   f"HPO_STORAGE or --storage (e.g. postgresql+psycopg2://user:password@db-host:5432/hpo); "
                   f"{target.display} is {what}")


@dataclass(frozen=True)
class SlurmLaunch:
    """A submitted (or, with `job_id` None, a dry-run) launch."""

    study: str
    script: str
    log_dir: Path
    tasks: int
    job_id: str | None = None
    notes: list[str] = field(default_factory=list)


def launch_slurm(
    study_file: str | Path,
    *,
    storage: str | None = None,
    log_dir: str | Path | None = None,
    dry_run: bool = False,
    n_trials: int | None = None,
    force: bool = False,
    registry: Path = REGISTRY,
    **options: Any,
) -> SlurmLaunch:
    """Submit a job array of `options["array"]` workers on the study (or, with `dry_run`, only render its script).

    `options` are `render_job_script`'s (array, time, gpus_per_task, partition, ...). The storage is resolved as
    the workers resolve it (--storage, HPO_STORAGE, the study file's) and must be PostgreSQL; `--storage` reaches
    the tasks as HPO_STORAGE in the submission's environment, never as an argument.
    """
    from hpo.spec import load_spec

    if "name" in options:
        raise HpoError("the job's name comes from the study file's name; do not pass name=")
    study_file = Path(study_file).expanduser().absolute()
    spec = load_spec(study_file)
    target = resolve_storage(storage, spec.storage)
    require_shared_storage(target)
    folder = Path(log_dir).expanduser().absolute() if log_dir else (registry / "slurm" / spec.name).absolute()
    script = render_job_script(name=spec.name, log_dir=folder, **options)
    tasks = int(options["array"])
    notes = []
    if target.local_only:
        notes.append("the storage's host is this machine (localhost): tasks on other nodes cannot reach it")
    if dry_run:
        return SlurmLaunch(spec.name, script, folder, tasks, notes=notes)
    if options.get("python") not in (None, shlex.quote(sys.executable)):
        raise HpoError("python= only renders a script: submitit runs array tasks with the Python that submits them")

    export = os.environ.get("SBATCH_EXPORT")
    if export and not _exports_storage(export):
        raise HpoError(f"SBATCH_EXPORT={export} keeps HPO_STORAGE from the tasks; unset it or add HPO_STORAGE")
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise HpoError("sbatch and srun are not on PATH: run hpo launch slurm on a Slurm login node")
    # the same options, defaults and checks as the script just rendered: render_job_script's signature
    chosen = inspect.signature(render_job_script).bind(name=spec.name, log_dir=folder, **options)
    chosen.apply_defaults()
    executor = submitit.SlurmExecutor(folder=folder, python=chosen.arguments["python"])
    executor.update_parameters(**_sbatch_parameters(
        **{key: value for key, value in chosen.arguments.items() if key not in ("log_dir", "array", "python")}))
    worker = SlurmWorker(str(study_file), n_trials=n_trials, force=force)
    with submitit.helpers.environment_variables(**({"HPO_STORAGE": storage} if storage else {})):
        try:
            with redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint; the error below says it once
                jobs = executor.submit_array([worker] * tasks)
        except submitit.core.utils.FailedJobError as exc:  # sbatch refused the script
            raise HpoError(f"sbatch refused the job: {_sbatch_error(exc)}") from None
    job_id = jobs[0].job_id.split("_")[0]
    record_launch(spec.name, "slurm", root=registry, job_id=job_id, log_dir=str(Path(folder).absolute()),
                  tasks=tasks, study_file=str(Path(study_file).absolute()), host=socket.gethostname())
    return SlurmLaunch(spec.name, script, folder, tasks, job_id, notes)


def _sbatch_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    line = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1])
    return line.removeprefix("sbatch: error: ")


class SlurmWorker(submitit.helpers.Checkpointable):
    """What one array task runs: `hpo run STUDY` in the task's process. Holds the study file's path and the
    worker's options, nothing else (it is pickled into the log dir); the storage comes from HPO_STORAGE.

    Checkpointable: on SIGUSR2 submitit requeues the task with `checkpoint()`, i.e. this same worker.
    """

    def __init__(self, study_file: str, *, n_trials: int | None = None, force: bool = False) -> None:
        self.study_file = study_file
        self.n_trials = n_trials
        self.force = force

    def __call__(self) -> dict[str, Any]:
        from rich.console import Console

        from hpo.retry import Preempted
        from hpo.runner import run
        from hpo.spec import load_spec

        _quiet_task()
        console = Console(width=None if "COLUMNS" in os.environ else 160)
        err = Console(stderr=True, width=console.width)
        try:
            with _sigterm_preempts():
                require_shared_storage(resolve_storage(None, load_spec(self.study_file).storage))
                result = run(self.study_file, storage=None, n_trials=self.n_trials, force=self.force,
                             console=console)
        except Preempted as exc:
            err.print(f"preempted ({exc}): a trial this worker was running is FAIL `preempted` and queued for a retry")
            if str(exc) == "SIGUSR2" and callable(signal.getsignal(signal.SIGUSR2)):
                # submitit's handler is back in place: it checkpoints this worker and requeues the task (or says
                # why not: timed out too often), and exits.
                signal.raise_signal(signal.SIGUSR2)
            sys.exit(PREEMPTED_EXIT_CODE)
        except HpoError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            sys.exit(1)
        if result.message:
            console.print(result.message, highlight=False)
        else:
            from hpo.progress import summary_table

            console.print(summary_table(result.study, storage=result.storage, wall_seconds=result.wall_seconds,
                                        budget=result.budget))
        return {"study": result.study.study_name, "budget": result.budget, "wall_seconds": result.wall_seconds}


@contextmanager
def _sigterm_preempts() -> Iterator[None]:
    """SIGTERM outside the trial loop too (while the model loads): submitit ignores it, but a task that got it is
    about to be killed, so stop now. Inside the loop the worker's own handler takes over."""
    from hpo.retry import Preempted

    def preempt(signum: int, _frame: object) -> None:
        raise Preempted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, preempt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_task() -> None:
    """What `hpo`'s CLI sets up for a worker: quiet libraries, and the `hpo` logger on stderr."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logger = logging.getLogger("hpo")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for noisy in ("httpx", "transformers", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


# -- logs, stop, and the registry of launches ----------------------------------------------------------------


def slurm_log_path(log_dir: str | Path, job_id: str, task: int | None, *,
                   stream: Literal["out", "err"] = "out") -> Path:
    """A task's stdout (or stderr) file: `LOG_DIR/<job>_<task>_0_log.out` for array task `task`, or
    `LOG_DIR/<job>_0_log.out` for a one-task launch (task None), as submitit names them."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(Path(log_dir), job_id=str(job_id) if task is None else f"{job_id}_{task}", task_id=0)
    return paths.stdout if stream == "out" else paths.stderr


def launch_log_paths(launch: dict[str, Any], worker: int) -> tuple[Path, Path]:
    """(stdout, stderr) of worker `worker` (its array index) of a recorded Slurm launch."""
    tasks = int(launch["tasks"])
    if not 0 <= worker < tasks:
        raise HpoError(f"Slurm job {launch['job_id']} has workers 0 .. {tasks - 1}, not {worker}")
    task = worker if tasks > 1 else None
    return tuple(slurm_log_path(launch["log_dir"], launch["job_id"], task, stream=s)  # type: ignore[return-value]
                 for s in ("out", "err"))


def stop_slurm(job_id: str) -> str:
    """Cancel a launch: `scancel JOB` ends every task of the array, running or pending. Slurm sends SIGTERM first,
    so running trials are failed as `preempted` and queued for a retry (whichever worker runs next takes them).
    A job with nothing left in the queue is reported, not an error (scancel itself says nothing then)."""
    if shutil.which("scancel") is None or shutil.which("squeue") is None:
        raise HpoError("scancel is not on PATH: run hpo stop on a Slurm login node")
    queued = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%i"], capture_output=True, text=True,
                            timeout=60)
    tasks = queued.stdout.split() if queued.returncode == 0 else []
    if not tasks:
        return f"Slurm job {job_id} has no task queued or running; nothing to cancel"
    done = subprocess.run(["scancel", str(job_id)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise HpoError(f"scancel {job_id} failed: {reason[-1] if reason else f'exit code {done.returncode}'}")
    return (f"cancelled Slurm job {job_id} ({len(tasks)} task{'s' if len(tasks) != 1 else ''} queued or running); "
            "running trials are FAIL `preempted` and queued for a retry")
