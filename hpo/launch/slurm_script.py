"""The Slurm job script of a launch, rendered by submitit exactly as it submits it: a pure function whose
keyword-only signature is the list of legal options (as submitit does for its own `_make_sbatch_string`), and the
checks on those options."""

from __future__ import annotations

import functools
import inspect
import math
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hpo.errors import HpoError

if TYPE_CHECKING:
    from hpo.settings import StorageURL

__all__ = ["NOT_OPTIONS", "OPTIONS_FROM", "OPTION_HELP", "exports_storage", "log_folder", "render_job_script",
           "require_shared_storage", "sbatch_parameters"]

NOT_OPTIONS = ("name", "python")  # render_job_script's parameters a launch fills in (the study's name) or not at all
OPTION_HELP = {
    "array": "Number of array tasks, one worker each.",
    "time": "Time limit of each task in Slurm's format: 4:00:00, 1-00:00:00, or minutes.",
    "log_dir": "Task logs and submitit's files, on a file system every node sees. Default: .hpo/slurm/NAME",
    "gpus_per_task": "GPUs per worker; 0 for CPU only.",
    "cpus_per_task": "CPUs per worker.",
    "mem": "Memory per worker, e.g. 16G.",
    "partition": "Partition (default: the cluster's).",
    "account": "Slurm account to charge.",
    "qos": "Quality of service.",
    "constraint": "Node features, e.g. a100.",
    "sbatch": "Another sbatch directive, e.g. --sbatch=--mail-type=END (repeatable).",
    "setup": 'A shell line run before the worker, e.g. "module load cuda" (repeatable).',
}

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
    array: int,
    time: str,
    log_dir: Path | None = None,
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

    name: the study (job name `hpo-NAME`); the other options are documented in SlurmLauncher.OPTION_HELP;
    python: the interpreter shown (default: this one, by its absolute path, which is what submitit submits).
    """
    parameters = sbatch_parameters(name=name, time=time, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task,
                                    mem=mem, partition=partition, account=account, qos=qos, constraint=constraint,
                                    sbatch=sbatch, setup=setup)
    if not isinstance(array, int) or isinstance(array, bool) or array < 1:
        raise HpoError(f"--array must be a number of tasks >= 1, not {array!r}")
    from submitit.slurm.slurm import _make_sbatch_string

    folder = log_folder(name, log_dir)
    return _make_sbatch_string(command=_task_command(python, folder), folder=folder,
                               map_count=array if array > 1 else None, **parameters)


def _task_command(python: str | None, folder: Path) -> str:
    """What submitit's executor runs in each task (`SlurmExecutor._submitit_command_str`)."""
    python = shlex.quote(sys.executable) if python is None else python
    return " ".join([python, "-u -m submitit.core._submit", shlex.quote(str(folder))])


def sbatch_parameters(
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


def log_folder(name: str, log_dir: str | Path | None) -> Path:
    """submitit's folder for a launch: `log_dir`, or `.hpo/slurm/NAME` in the working directory; absolute."""
    return (Path(log_dir).expanduser() if log_dir else Path(".hpo") / "slurm" / name).absolute()


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
        if key == "export" and not exports_storage(value or ""):
            raise HpoError(f"--sbatch {flag!r}: the tasks need HPO_STORAGE from this environment; "
                           "use --export=ALL[,...] or list HPO_STORAGE")
        extra[key] = True if value is None else value
    return extra


def exports_storage(export: str) -> bool:
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


OPTIONS_FROM = render_job_script  # the renderer whose keyword-only parameters are the launcher's options
