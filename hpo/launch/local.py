"""`hpo launch local`: N worker processes on this machine, one study, one storage.

Each worker is `python -m hpo run STUDY` with its own environment: `CUDA_VISIBLE_DEVICES` pins it to a GPU
(round-robin over `--gpus`, at most `--per-gpu` workers on one), or, on a CPU-only machine, the cores are divided
among the workers (`OMP_NUM_THREADS`) so they don't oversubscribe. The storage URL travels in `HPO_STORAGE`, never
on a command line. Ctrl-C or SIGTERM is forwarded as SIGTERM: running trials end `preempted` and are retried later.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hpo.errors import HpoError
from hpo.launch.interface import Launch, StudyFile
from hpo.launch.records import record_launch
from hpo.preemption import EXIT_PREEMPTED

if TYPE_CHECKING:
    from hpo.settings import StorageURL

__all__ = ["LocalLauncher", "WorkerPlan", "available_gpus", "plan_workers"]


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
        """One shell line per worker: its environment, its command and its log."""
        plans = plan_workers(workers, _gpu_list(gpus), per_gpu, available=available_gpus() if gpus else [],
                             cpus=os.cpu_count() or 1)
        logs = _log_dir(study.name)
        return "".join(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in plan.env.items()), "HPO_STORAGE=...",
                                 *map(shlex.quote, _command(study)), ">", str(logs / f"worker-{plan.index}.log"),
                                 "2>&1 &"]) + "\n" for plan in plans)

    OPTIONS_FROM = render

    def submit(self, study: StudyFile, target: StorageURL, *, storage: str | None, workers: int = 2,
               gpus: str | None = None, per_gpu: int = 1) -> Launch:
        """Start the workers, show their combined progress until they end; the launch's exit code is 0 when every
        worker finished, 75 when they were preempted (Ctrl-C, SIGTERM), 1 when one crashed."""
        from rich.console import Console

        plans = plan_workers(workers, _gpu_list(gpus), per_gpu, available=available_gpus() if gpus else [],
                             cpus=os.cpu_count() or 1)
        log_dir = _log_dir(study.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        processes = [_start(study, plan, target.url, log_dir) for plan in plans]
        logs = [str(log_dir / f"worker-{plan.index}.log") for plan in plans]
        record_launch(study.name, "local", pids=[p.pid for p in processes], logs=logs, storage=target.display)
        console = Console()
        console.print(f"{len(processes)} workers on study [bold]{study.name}[/] · storage {target.display} · "
                      f"logs in {log_dir}", highlight=False)
        stopping = _forward_signals(processes)
        _watch(console, study.name, target, plans, processes)
        codes = [p.returncode for p in processes]
        crashed = [i for i, code in enumerate(codes) if code not in (0, EXIT_PREEMPTED)]
        message = "\n".join(f"[red]worker {i} exited with code {codes[i]}[/]: see {logs[i]}" for i in crashed)
        code = 1 if crashed else EXIT_PREEMPTED if stopping["signalled"] or EXIT_PREEMPTED in codes else 0
        return Launch(study.name, "", message, exit_code=code, handles={"pids": [p.pid for p in processes]})

    def stop(self, record: dict[str, Any]) -> str:
        stopped = []
        for pid in record.get("pids", []):
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
            except ProcessLookupError:
                pass
        return f"local: sent SIGTERM to {len(stopped)} running worker(s)" if stopped else \
            "local: no worker is running"

    def logs(self, record: dict[str, Any], worker: int) -> str:
        paths = dict(enumerate(map(Path, record.get("logs") or [])))
        path = paths.get(worker)
        if path is None or not path.exists():
            raise HpoError(f"no log for worker {worker} (workers: {', '.join(map(str, paths)) or 'none'})")
        return path.read_text(errors="replace")


def _log_dir(study: str) -> Path:
    return Path(".hpo") / "logs" / study


def _command(study: StudyFile) -> list[str]:
    return [sys.executable, "-m", "hpo", *study.worker_args()]


def _start(study: StudyFile, plan: WorkerPlan, url: str, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, **plan.env, "HPO_STORAGE": url, "HPO_WORKER_INDEX": str(plan.index),
           "COLUMNS": os.environ.get("COLUMNS", "160")}
    log = (log_dir / f"worker-{plan.index}.log").open("w")
    return subprocess.Popen(_command(study), env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # our Ctrl-C is forwarded, once


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


def _watch(console: Any, name: str, target: StorageURL, plans: list[WorkerPlan],
           processes: list[subprocess.Popen]) -> None:
    from rich.live import Live

    watch = _StudyWatch(name, target)
    with Live(console=console, refresh_per_second=1, transient=not console.is_terminal) as live:
        while any(p.poll() is None for p in processes):
            live.update(_table(name, plans, processes, watch.trials()))
            time.sleep(1)
        live.update(_table(name, plans, processes, watch.trials()))


class _StudyWatch:
    """The study's trials for the display, from one storage opened once the workers have created the study."""

    def __init__(self, name: str, target: StorageURL) -> None:
        self.name, self.target, self.study = name, target, None

    def trials(self) -> list:
        import optuna

        from hpo.storage import open_storage

        try:
            if self.study is None:
                self.study = optuna.load_study(study_name=self.name, storage=open_storage(self.target))
            return self.study.get_trials(deepcopy=False)
        except Exception:  # not created yet, or a storage hiccup: show the processes anyway
            return []


def _table(name: str, plans: list[WorkerPlan], processes: list[subprocess.Popen], trials: list) -> Any:
    from rich.table import Table

    by_pid = Counter(t.user_attrs.get("pid") for t in trials if t.state.name in ("COMPLETE", "PRUNED"))
    running = {t.user_attrs.get("pid"): t for t in trials if t.state.name == "RUNNING"}
    states = Counter(t.state.name for t in trials)
    best = max((t.value for t in trials if t.state.name == "COMPLETE"), default=None)
    table = Table(title=f"study {name}: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
                  f"{states['FAIL']} failed; best val F1 {best:.4f}" if best is not None else f"study {name}",
                  title_justify="left")
    for column in ("worker", "pid", "gpu", "state", "trials done", "running trial", "val F1"):
        table.add_column(column)
    for plan, process in zip(plans, processes, strict=True):
        trial = running.get(process.pid)
        last = max(trial.intermediate_values) if trial is not None and trial.intermediate_values else None
        code = process.poll()
        table.add_row(str(plan.index), str(process.pid), plan.gpu or "cpu",
                      "running" if code is None else f"exited {code}", str(by_pid[process.pid]),
                      str(trial.number) if trial is not None else "-",
                      f"{trial.intermediate_values[last]:.4f}" if last is not None else "-")
    return table

