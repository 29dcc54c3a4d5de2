"""`hpo status NAME`: how far a study is, who is running what, and what was retried; a few queries whatever the
size of the study (hpo/storage/rows.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hpo.results.records import COUNT_NAMES, RECORD_ATTRS, OutputFormat, dump, trial_record
from hpo.search.progress import clock, format_params
from hpo.search.space import SOURCE
from hpo.train.metrics import objective_for_metric, objective_of

__all__ = ["status_record", "study_status"]

_WORKER = ("hostname", "pid", "gpu", "slurm_job_id", "slurm_array_task_id", "k8s_index", "k8s_pod")
_RETRY = ("retry_of", "attempt", "retry_reason")


def status_record(name: str, storage: str | None) -> dict[str, Any]:
    """Everything `hpo status` shows, as one record."""
    from hpo.storage import best_numbers, count_states, curves, last_heartbeats, load_study, trial_rows

    study, _ = load_study(name, storage)
    counts = count_states(study)
    best = best_numbers(study, 1)
    running = trial_rows(study, states=("RUNNING",), attrs=(*RECORD_ATTRS, "device"))
    steps = curves(study, [r.number for r in running])
    beats = last_heartbeats(study, running)
    now = datetime.now()  # naive local time, as Optuna stores trial times
    return {
        "study": name, "metric": objective_of(study.metric_names).metric, "budget": study.user_attrs.get("n_trials"),
        "done": counts["COMPLETE"] + counts["PRUNED"],
        "counts": {word: counts[state] for state, word in COUNT_NAMES.items()},
        "best": trial_record(trial_rows(study, numbers=best, attrs=RECORD_ATTRS)[0]) if best else None,
        "deadline": study.user_attrs.get("deadline"),
        "running": [{**trial_record(r), "device": r.user_attrs.get("device"),
                     "age_s": round((now - r.datetime_start).total_seconds(), 1) if r.datetime_start else None,
                     "heartbeat_age_s": beats.get(r.number), "evaluations": len(steps.get(r.number, {})),
                     "last_value": steps[r.number][max(steps[r.number])] if steps.get(r.number) else None}
                    for r in running],
        "workers": _workers(trial_rows(study, attrs=_WORKER, params=False), beats),
        "retries": [{"number": r.number, "state": r.state, **{k: r.user_attrs.get(k) for k in _RETRY}}
                    for r in trial_rows(study, attrs=_RETRY, params=False) if "retry_of" in r.user_attrs],
        "poisonous": study.user_attrs.get("poisonous", []),
        "sources": _by_source(trial_rows(study, states=("COMPLETE", "PRUNED"), attrs=()),
                              minimize=study.direction.name == "MINIMIZE"),
    }


def _by_source(rows: list[Any], *, minimize: bool) -> list[dict[str, Any]]:
    """For a study that searches its source task: each candidate's trials and best value (empty otherwise)."""
    keys = sorted({row.params[SOURCE] for row in rows if SOURCE in row.params})
    found = []
    for key in keys:
        mine = [row for row in rows if row.params.get(SOURCE) == key]
        complete = [row for row in mine if row.state == "COMPLETE" and row.value is not None]
        best = (min if minimize else max)(complete, key=lambda row: row.value, default=None)
        found.append({"source": key, "complete": len(complete), "pruned": len(mine) - len(complete),
                      "best": best.value if best else None, "best_trial": best.number if best else None})
    return found


def _workers(rows: list[Any], beats: dict[int, float]) -> list[dict[str, Any]]:
    """One record per worker process that ran a trial: where it runs, its scheduler ids and GPU, what it did."""
    workers: dict[tuple[Any, Any], list[Any]] = {}
    for row in rows:
        if "pid" in row.user_attrs:
            workers.setdefault((row.user_attrs.get("hostname"), row.user_attrs["pid"]), []).append(row)
    records = []
    for (host, pid), ran in workers.items():
        attrs = ran[-1].user_attrs
        scheduler = (f"slurm {attrs['slurm_job_id']}_{attrs.get('slurm_array_task_id', '')}" if "slurm_job_id" in attrs
                     else f"k8s {attrs.get('k8s_pod', '')} #{attrs['k8s_index']}" if "k8s_index" in attrs else None)
        live = [row.number for row in ran if row.state == "RUNNING"]
        records.append({"worker": f"{host}:{pid}", "scheduler": scheduler, "gpu": attrs.get("gpu"),
                        "done": sum(row.state in ("COMPLETE", "PRUNED") for row in ran), "started": len(ran),
                        "running": live[0] if live else None,
                        "heartbeat_age_s": beats.get(live[0]) if live else None})
    return records


def study_status(name: str, storage: str | None, fmt: OutputFormat = OutputFormat.table) -> Any:
    """`hpo status`: rich tables, or the record as JSON or YAML."""
    record = status_record(name, storage)
    return dump(record, fmt) if fmt is not OutputFormat.table else _tables(record)


def _tables(record: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Table(show_header=False, title=f"study {record['study']}", title_justify="left")
    head.add_column(style="dim")
    head.add_column()
    budget = record["budget"]
    head.add_row("budget", f"{record['done']} / {budget}" if budget else f"{record['done']} (no trial budget)")
    head.add_row("trials", ", ".join(f"{n} {word}" for word, n in record["counts"].items()))
    label = objective_for_metric(record["metric"]).label
    best = record["best"]
    head.add_row(f"best {label}", f"{best['value']:.4f} (trial {best['number']})  {format_params(best['params'])}"
                 if best else "-")
    if record["deadline"]:
        head.add_row("deadline", record["deadline"])
    parts: list[Any] = [head]
    if record["running"]:
        parts.append(_table("running trials", ("trial", "worker", "device", "age", "last heartbeat", "evaluations",
                                               label),
                            [(r["number"], r["worker"], r["device"], _ago(r["age_s"], ""),
                              _ago(r["heartbeat_age_s"]), r["evaluations"],
                              f"{r['last_value']:.4f}" if r["last_value"] is not None else "-")
                             for r in record["running"]]))
    parts.append(_table("workers", ("worker", "scheduler", "gpu", "trials", "running", "last heartbeat"),
                        [(w["worker"], w["scheduler"], w["gpu"], f"{w['done']} done, {w['started']} started",
                          w["running"], _ago(w["heartbeat_age_s"])) for w in record["workers"]]))
    if record["retries"]:
        parts.append(_table("retries", ("trial", "retry of", "attempt", "why", "state"),
                            [(r["number"], r["retry_of"], r["attempt"], r["retry_reason"], r["state"])
                             for r in record["retries"]]))
    if record["sources"]:
        parts.append(_table("sources", ("source", "complete", "pruned", f"best {label}", "trial"),
                            [(r["source"], r["complete"], r["pruned"],
                              f"{r['best']:.4f}" if r["best"] is not None else "-", r["best_trial"])
                             for r in record["sources"]]))
    for poison in record["poisonous"]:
        parts.append(Text(f"poisonous parameters (failed {poison['attempts']} times, {poison['reason']}): "
                          f"{format_params(poison['params'])}", style="red"))
    return Group(*parts)


def _ago(seconds: float | None, suffix: str = " ago") -> str:
    return f"{clock(seconds)}{suffix}" if seconds is not None else "-"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    return table
