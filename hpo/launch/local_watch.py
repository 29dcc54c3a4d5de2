"""What `hpo launch local` shows while its workers run: on a terminal a table redrawn every second (one row per
worker: its GPU, trials done, running trial and its latest val F1); elsewhere (a file, a pipe, CI) one plain line
per finished trial; then, either way, a summary: the study's counts, its best trial, each worker's exit code.

The trials are read from the database at every refresh (`hpo.storage.trial_rows`), not through a loaded study:
Optuna's trial cache behind `study.get_trials()` re-reads only the trials it still holds as unfinished and those
above the last finished trial it has seen, a bookkeeping made for the process that writes the trials; the
display of trials that other processes finish must not depend on it (a pruned trial was shown running there).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from hpo.storage import TrialRow, curves, open_storage, trial_rows
from hpo.train.metrics import OBJECTIVES, ValidationObjective, objective_of

if TYPE_CHECKING:
    from rich.console import Console

    from hpo.settings import StorageURL

__all__ = ["progress_line", "summary_lines", "watch_workers"]

DONE = ("COMPLETE", "PRUNED", "FAIL")


class _StudyWatch:
    """The study's trials, read afresh from its database, once the workers have created the study."""

    def __init__(self, name: str, target: StorageURL) -> None:
        self.name, self.target = name, target
        self.study: Any = None

    def rows(self) -> list[TrialRow]:
        import optuna

        try:
            if self.study is None:
                self.study = optuna.load_study(study_name=self.name, storage=open_storage(self.target))
            return trial_rows(self.study, params=False, attrs=("pid", "failure_reason"))
        except Exception:  # not created yet, or a storage hiccup: show the processes anyway
            return []

    @property
    def objective(self) -> ValidationObjective:
        """The study's objective, once the study exists (F1 until then: nothing is shown yet anyway)."""
        return objective_of(self.study.metric_names if self.study is not None else None)

    def latest(self, numbers: list[int]) -> dict[int, float]:
        """The latest objective value each of these (running) trials reported."""
        if self.study is None or not numbers:
            return {}
        try:
            return {n: values[max(values)] for n, values in curves(self.study, numbers).items() if values}
        except Exception:
            return {}


def watch_workers(console: Console, name: str, target: StorageURL, processes: list[subprocess.Popen],
                  gpus: list[str]) -> None:
    """Show the progress of the workers (worker K: `processes[K]` on `gpus[K]`) until every one has exited, then
    the summary."""
    watch = _StudyWatch(name, target)
    workers = {process.pid: str(index) for index, process in enumerate(processes)}
    if console.is_terminal:
        _live_table(console, watch, name, processes, gpus)
    else:
        _plain_lines(console, watch, workers, processes)
    for line in summary_lines(name, watch.rows(), processes, watch.objective):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _live_table(console: Console, watch: _StudyWatch, name: str, processes: list[subprocess.Popen],
                gpus: list[str]) -> None:
    from rich.live import Live

    with Live(console=console, refresh_per_second=1) as live:
        while True:
            running = any(p.poll() is None for p in processes)
            live.update(_table(name, processes, gpus, watch))
            if not running:
                return
            time.sleep(1)


def _plain_lines(console: Console, watch: _StudyWatch, workers: dict[int, str],
                 processes: list[subprocess.Popen]) -> None:
    shown: set[int] = set()
    while True:
        running = any(p.poll() is None for p in processes)  # before reading: the last read sees every trial
        for row in watch.rows():
            if row.state in DONE and row.number not in shown:
                shown.add(row.number)
                console.print(progress_line(row, workers, watch.objective.label), highlight=False, markup=False,
                              soft_wrap=True)
        if not running:
            return
        time.sleep(1)


def _worker(row: TrialRow, workers: dict[int, str]) -> str:
    pid = row.user_attrs.get("pid")
    return workers.get(pid, f"pid {pid}" if pid is not None else "-")  # pid: a worker started elsewhere


def progress_line(row: TrialRow, workers: dict[int, str], label: str = "val F1") -> str:
    """`trial 3 PRUNED val F1 0.4123 worker 1`: one finished trial, for output nobody watches."""
    value = f"{row.value:.4f}" if row.value is not None else "-"
    reason = row.user_attrs.get("failure_reason")
    return f"trial {row.number} {row.state} {label} {value} worker {_worker(row, workers)}" + \
        (f" ({reason})" if row.state == "FAIL" and reason else "")


def summary_lines(name: str, rows: list[TrialRow], processes: list[subprocess.Popen],
                  objective: ValidationObjective = OBJECTIVES["f1"]) -> list[str]:
    """The study's counts and best trial, and each worker's exit code."""
    states = Counter(row.state for row in rows)
    best = _best(rows, objective)
    shown = f"; best {objective.label} {best.value:.4f} (trial {best.number})" if best is not None else \
        "; no trial complete"
    codes = ", ".join(f"{index} exited {process.poll()}" for index, process in enumerate(processes))
    return [f"study {name}: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed{shown}",
            f"workers: {codes}"]


def _best(rows: list[TrialRow], objective: ValidationObjective) -> TrialRow | None:
    """The best COMPLETE row by the objective; of equals the earliest."""
    sign = -1 if objective.direction == "minimize" else 1
    complete = [row for row in rows if row.state == "COMPLETE" and row.value is not None]
    return max(complete, key=lambda row: (sign * row.value, -row.number), default=None)


def _table(name: str, processes: list[subprocess.Popen], gpus: list[str], watch: _StudyWatch) -> Any:
    from rich.table import Table

    rows = watch.rows()
    by_pid = Counter(row.user_attrs.get("pid") for row in rows if row.state in ("COMPLETE", "PRUNED"))
    running = {row.user_attrs.get("pid"): row for row in rows if row.state == "RUNNING"}
    latest = watch.latest([row.number for row in running.values()])
    states = Counter(row.state for row in rows)
    objective = watch.objective
    best = _best(rows, objective)
    table = Table(title=f"study {name}: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
                  f"{states['FAIL']} failed; best {objective.label} {best.value:.4f}" if best is not None
                  else f"study {name}", title_justify="left")
    for column in ("worker", "pid", "gpu", "state", "trials done", "running trial", objective.label):
        table.add_column(column)
    for index, (process, gpu) in enumerate(zip(processes, gpus, strict=True)):
        trial = running.get(process.pid)
        code = process.poll()
        table.add_row(str(index), str(process.pid), gpu,
                      "running" if code is None else f"exited {code}", str(by_pid[process.pid]),
                      str(trial.number) if trial is not None else "-",
                      f"{latest[trial.number]:.4f}" if trial is not None and trial.number in latest else "-")
    return table
