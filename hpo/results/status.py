"""`hpo status NAME`: how far a study is, who is running what, and what was retried."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hpo.search.progress import clock, format_params

__all__ = ["study_status"]


def study_status(name: str, storage: str | None) -> Group:
    from hpo.storage import last_heartbeats, load_study

    study, _ = load_study(name, storage)
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    budget = study.user_attrs.get("n_trials")
    done = counts["COMPLETE"] + counts["PRUNED"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value) if complete else None

    head = Table(show_header=False, title=f"study {name}", title_justify="left")
    head.add_column(style="dim")
    head.add_column()
    head.add_row("budget", f"{done} / {budget}" if budget else f"{done} (no trial budget)")
    head.add_row("trials", ", ".join(f"{counts[s]} {s.lower()}" for s in
                                     ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")))
    head.add_row("best val F1", f"{best.value:.4f} (trial {best.number})  {format_params(best.params)}"
                 if best else "-")
    if study.user_attrs.get("deadline"):
        head.add_row("deadline", study.user_attrs["deadline"])
    parts: list[Any] = [head]

    running = [t for t in trials if t.state.name == "RUNNING"]
    beats: dict[int, float] = {}
    if running:
        beats = last_heartbeats(study, running)
        table = Table(title="running trials", title_justify="left")
        for column in ("trial", "worker", "device", "age", "last heartbeat", "evaluations", "val F1"):
            table.add_column(column)
        now = datetime.now(UTC).replace(tzinfo=None)
        for t in running:
            started = t.datetime_start.replace(tzinfo=None) if t.datetime_start else now
            beat = beats.get(t.number)
            last = max(t.intermediate_values) if t.intermediate_values else None
            table.add_row(
                str(t.number), f"{t.user_attrs.get('hostname', '?')}:{t.user_attrs.get('pid', '?')}",
                str(t.user_attrs.get("device", "?")), clock((now - started).total_seconds()),
                f"{clock(beat)} ago" if beat is not None else "-",
                str(len(t.intermediate_values)), f"{t.intermediate_values[last]:.4f}" if last else "-",
            )
        parts.append(table)

    parts.append(_workers(trials, beats if running else {}))
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    if retries:
        table = Table(title="retries", title_justify="left")
        for column in ("trial", "retry of", "attempt", "why", "state"):
            table.add_column(column)
        for t in retries:
            table.add_row(str(t.number), str(t.user_attrs["retry_of"]), str(t.user_attrs.get("attempt")),
                          str(t.user_attrs.get("retry_reason", "")), t.state.name)
        parts.append(table)
    for poison in study.user_attrs.get("poisonous", []):
        parts.append(Text(f"poisonous parameters (failed {poison['attempts']} times, {poison['reason']}): "
                          f"{format_params(poison['params'])}", style="red"))
    return Group(*parts)


def _workers(trials: list, beats: dict[int, float]) -> Table:
    """One row per worker process that ran a trial: where it runs, its scheduler ids and GPU, what it did."""
    table = Table(title="workers", title_justify="left")
    for column in ("worker", "scheduler", "gpu", "trials", "running", "last heartbeat"):
        table.add_column(column)
    workers: dict[tuple, list] = {}
    for t in trials:
        if "pid" in t.user_attrs:
            workers.setdefault((t.user_attrs.get("hostname"), t.user_attrs["pid"]), []).append(t)
    for (host, pid), ran in workers.items():
        attrs = ran[-1].user_attrs
        scheduler = (f"slurm {attrs['slurm_job_id']}_{attrs.get('slurm_array_task_id', '')}" if "slurm_job_id" in attrs
                     else f"k8s {attrs.get('k8s_pod', '')} #{attrs['k8s_index']}" if "k8s_index" in attrs else "-")
        live = [t for t in ran if t.state.name == "RUNNING"]
        beat = beats.get(live[0].number) if live else None
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in ran)
        table.add_row(f"{host}:{pid}", scheduler, str(attrs.get("gpu", "-")), f"{done} done, {len(ran)} started",
                      str(live[0].number) if live else "-", f"{clock(beat)} ago" if beat is not None else "-")
    return table
