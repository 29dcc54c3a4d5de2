"""`hpo launch local`: N worker processes on this machine, one study, one storage.

Each worker is `python -m hpo run STUDY` with its own environment: `CUDA_VISIBLE_DEVICES` pins it to a GPU
(round-robin over `--gpus`, at most `--per-gpu` workers on one), or, on a CPU-only machine, the cores are divided
among the workers (`OMP_NUM_THREADS`) so they don't oversubscribe. The storage URL travels in `HPO_STORAGE`, never
on a command line (`--dry-run` prints the same lines for a shell, the storage named as $HPO_STORAGE, never shown).
Ctrl-C or SIGTERM is forwarded as SIGTERM: running trials end `preempted` and are retried later. While they run,
local_watch.py shows their progress.

The launch record names each worker by its pid, its start time and its command line: `hpo stop` signals a pid only
while the process holding it is still that worker (a pid is reused once its process has ended).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hpo.errors import HpoError
from hpo.launch.interface import Launch, StudyFile
from hpo.launch.records import LocalLaunchRecord, WorkerProcess, record_launch
from hpo.preemption import EXIT_PREEMPTED

if TYPE_CHECKING:
    from hpo.settings import StorageURL

__all__ = ["LocalLauncher", "WorkerPlan", "available_gpus", "plan_workers", "process_identity"]

# The dry run's storage: a shell expansion that fails, and so starts nothing, while HPO_STORAGE is unset.
STORAGE = '"${HPO_STORAGE:?set HPO_STORAGE to the storage URL}"'


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    env: dict[str, str]

    @property
    def gpu(self) -> str | None:
        return self.env.get("CUDA_VISIBLE_DEVICES") or None


def available_gpus() -> list[str]:
    """GPU ids this process may use: its own CUDA_VISIBLE_DEVICES when set (as a scheduler sets it), else those
    `nvidia-smi` lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU ")]


def plan_workers(workers: int, gpus: list[str] | None, per_gpu: int, *, available: list[str],
                 cpus: int) -> list[WorkerPlan]:
    """Each worker's environment. Pure: the launcher and its tests share it."""
    if workers < 1:
        raise HpoError(f"--workers must be at least 1 (got {workers})")
    if per_gpu < 1:
        raise HpoError(f"--per-gpu must be at least 1 (got {per_gpu})")
    if not gpus:
        threads = max(1, cpus // workers)
        return [WorkerPlan(i, {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads),
                               "MKL_NUM_THREADS": str(threads)}) for i in range(workers)]
    unknown = [g for g in gpus if g not in available]
    if unknown:
        raise HpoError(f"unknown GPU id{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; this machine "
                       f"offers {', '.join(available) or 'no GPUs'} (CUDA_VISIBLE_DEVICES or nvidia-smi -L)")
    if workers > len(gpus) * per_gpu:
        raise HpoError(f"{workers} workers do not fit on {len(gpus)} GPU(s) at {per_gpu} per GPU; "
                       f"raise --per-gpu to {-(-workers // len(gpus))} or give more GPUs")
    return [WorkerPlan(i, {"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}) for i in range(workers)]


def _gpu_list(gpus: str | None) -> list[str] | None:
    return [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None


class LocalLauncher:
    name: ClassVar[str] = "local"
    NOT_OPTIONS: ClassVar[tuple[str, ...]] = ()
    OPTION_HELP: ClassVar[dict[str, str]] = {
        "workers": "Worker processes to start.",
        "gpus": "GPU ids, e.g. 0,1,2,3; none: CPU workers sharing the cores.",
        "per_gpu": "Workers packed on one GPU.",
    }

    def check_storage(self, target: StorageURL) -> tuple[str, ...]:
        if target.in_memory:
            raise HpoError("an in-memory storage cannot be shared by worker processes; use a SQLite file or "
                           "PostgreSQL")
        return ()

    @staticmethod
    def render(study: StudyFile, *, workers: int = 2, gpus: str | None = None, per_gpu: int = 1) -> str:
        """A shell script that starts the workers as the launch would: one line per worker, its environment, its
        command and its log. The storage is named, never shown: each line takes it from HPO_STORAGE, and refuses
        to start while that is unset."""
        plans = plan_workers(workers, _gpu_list(gpus), per_gpu, available=available_gpus() if gpus else [],
                             cpus=os.cpu_count() or 1)
        logs = _log_dir(study.name)
        head = [f"# {len(plans)} workers on study {study.name}. Set HPO_STORAGE to the storage URL first (export "
                "HPO_STORAGE=...); these lines read it and never show it.", f": {STORAGE}",
                f"mkdir -p {shlex.quote(str(logs))}"]
        starts = [_start_line(study, plan, logs / f"worker-{plan.index}.log") for plan in plans]
        return "\n".join([*head, *starts, "wait  # until every worker has exited", ""])

    OPTIONS_FROM = render

    def submit(self, study: StudyFile, target: StorageURL, *, storage: str | None, workers: int = 2,
               gpus: str | None = None, per_gpu: int = 1) -> Launch:
        """Start the workers, show their combined progress until they end; the launch's exit code is 0 when every
        worker finished, 75 when they were preempted (Ctrl-C, SIGTERM), 1 when one crashed."""
        from rich.console import Console

        from hpo.launch.local_watch import watch_workers  # reads the storage through Optuna: not for `hpo --help`

        plans = plan_workers(workers, _gpu_list(gpus), per_gpu, available=available_gpus() if gpus else [],
                             cpus=os.cpu_count() or 1)
        log_dir = _log_dir(study.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        processes = [_start(study, plan, target.url, log_dir) for plan in plans]
        started = [_worker_process(p, str(log_dir / f"worker-{plan.index}.log"))
                   for plan, p in zip(plans, processes, strict=True)]
        record = record_launch(LocalLaunchRecord(study=study.name, host=socket.gethostname(), storage=target.display,
                                                 workers=tuple(started)))
        console = Console()
        console.print(f"{len(processes)} workers on study [bold]{study.name}[/] · storage {target.display} · "
                      f"logs in {log_dir}", highlight=False)
        stopping = _forward_signals(processes)
        watch_workers(console, study.name, target, processes, [plan.gpu or "cpu" for plan in plans])
        codes = [p.returncode for p in processes]
        crashed = [i for i, code in enumerate(codes) if code not in (0, EXIT_PREEMPTED)]
        message = "\n".join(f"[red]worker {i} exited with code {codes[i]}[/]: see {started[i].log}" for i in crashed)
        code = 1 if crashed else EXIT_PREEMPTED if stopping["signalled"] or EXIT_PREEMPTED in codes else 0
        return Launch(study.name, "", message, exit_code=code, record=record)

    def stop(self, record: LocalLaunchRecord) -> str:
        """SIGTERM to each worker of the launch that still runs: the process holding its pid has its start time
        and command line. A pid held by another process now is left alone."""
        if record.host != socket.gethostname():
            return f"local: launched on {record.host}, not here ({socket.gethostname()}); run hpo stop there"
        stopped, gone = [], []
        for index, worker in enumerate(record.workers):
            (stopped if _signal_if_same(worker, signal.SIGTERM) else gone).append(f"{index} (pid {worker.pid})")
        if not stopped:
            return "local: no worker of this launch is running"
        ended = f"; no longer running: worker {', '.join(gone)}" if gone else ""
        return f"local: sent SIGTERM to {len(stopped)} running worker(s){ended}"

    def logs(self, record: LocalLaunchRecord, worker: int) -> str:
        paths = {index: Path(w.log) for index, w in enumerate(record.workers)}
        path = paths.get(worker)
        if path is None or not path.exists():
            raise HpoError(f"no log for worker {worker} (workers: {', '.join(map(str, paths)) or 'none'})")
        return path.read_text(errors="replace")


def _log_dir(study: str) -> Path:
    return Path(".hpo") / "logs" / study


def _command(study: StudyFile) -> list[str]:
    return [sys.executable, "-m", "hpo", *study.worker_args()]


def _worker_env(plan: WorkerPlan) -> dict[str, str]:
    """What a worker's environment adds to the launcher's, but the storage."""
    return {**plan.env, "HPO_WORKER_INDEX": str(plan.index), "COLUMNS": os.environ.get("COLUMNS", "160")}


def _start_line(study: StudyFile, plan: WorkerPlan, log: Path) -> str:
    """What `_start` does, as a shell line: the worker in the background, its environment, its log."""
    env = [f"HPO_STORAGE={STORAGE}", *(f"{key}={shlex.quote(value)}" for key, value in _worker_env(plan).items())]
    return " ".join([*env, *map(shlex.quote, _command(study)), ">", shlex.quote(str(log)), "2>&1 &"])


def _start(study: StudyFile, plan: WorkerPlan, url: str, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, **_worker_env(plan), "HPO_STORAGE": url}
    log = (log_dir / f"worker-{plan.index}.log").open("w")
    return subprocess.Popen(_command(study), env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # our Ctrl-C is forwarded, once


def process_identity(pid: int) -> tuple[str, tuple[str, ...]] | None:
    """(start time, command line) of the process holding `pid` now; None when none does or it cannot be read.
    Linux: /proc/<pid>/stat field 22 (clock ticks from boot to its start) and /proc/<pid>/cmdline; elsewhere
    psutil's, where it is installed. A zombie has no command line, so it is no longer the worker it was."""
    if Path("/proc/self/stat").exists():
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # after the command's name, which may hold spaces and ')'
        return f"ticks:{fields[19]}", tuple(arg.decode(errors="replace") for arg in command.split(b"\0")[:-1])
    try:
        import psutil
    except ImportError:
        return None
    try:
        process = psutil.Process(pid)
        return f"psutil:{process.create_time()}", tuple(process.cmdline())
    except psutil.Error:
        return None


def _worker_process(process: subprocess.Popen, log: str) -> WorkerProcess:
    """A started worker as the launch records it. Popen returns once the command is exec'd, so /proc shows the
    worker's own command line; a worker that already ended gets no start time, which no live process matches."""
    start_time, command = process_identity(process.pid) or ("", tuple(map(str, process.args)))
    return WorkerProcess(pid=process.pid, start_time=start_time, command=command, log=log)


def _signal_if_same(worker: WorkerProcess, signum: int) -> bool:
    """Send `signum` to the recorded worker if the process holding its pid is still that worker; True if sent.
    Through a pidfd where there is one: opened before the check, it keeps naming the checked process even if
    that one ends and its pid is taken again before the signal goes."""
    try:
        handle: int | None = os.pidfd_open(worker.pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # no pidfd here: check, then signal by pid
        handle = None
    try:
        if process_identity(worker.pid) != (worker.start_time, worker.command):
            return False
        if handle is None:
            os.kill(worker.pid, signum)
        else:
            signal.pidfd_send_signal(handle, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if handle is not None:
            os.close(handle)


def _forward_signals(processes: list[subprocess.Popen]) -> dict[str, bool]:
    state = {"signalled": False}

    def forward(_signum: int, _frame: object) -> None:
        state["signalled"] = True
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    return state
