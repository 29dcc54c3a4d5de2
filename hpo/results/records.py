"""The one record schema the listing commands print (`hpo trials`, `hpo best`, `hpo studies`, `hpo status`), and the
formats they print it in: a table for people, JSON or YAML for programs (`-f json | jq`), as Optuna's CLI does.

A trial record: `number, state, value, params, epochs_run, duration_s, worker, failure_reason`.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from hpo.storage import TrialRow

__all__ = ["COUNT_NAMES", "RECORD_ATTRS", "TRIAL_FIELDS", "ExportFormat", "OutputFormat", "State", "dump",
           "trial_record", "trial_records", "trial_table"]

# How a count of trials in each state is named in every output ("3 failed", `"failed": 3`), the state keeping
# Optuna's name (FAIL) where one trial's state is shown.
COUNT_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
TRIAL_FIELDS = ("number", "state", "value", "params", "epochs_run", "duration_s", "worker", "failure_reason")
RECORD_ATTRS = ("epochs_run", "hostname", "pid", "failure_reason")  # the user attributes a record reads


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class ExportFormat(StrEnum):
    """What `hpo export` writes: a runnable study file, or TrainingArguments JSON."""

    yaml = "yaml"
    training_args = "training-args"


class State(StrEnum):
    """A trial's state, by Optuna's names."""

    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    RUNNING = "RUNNING"
    WAITING = "WAITING"


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those become strings."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def trial_record(row: TrialRow) -> dict[str, Any]:
    attrs = row.user_attrs
    duration = (row.datetime_complete - row.datetime_start).total_seconds() \
        if row.datetime_start and row.datetime_complete else None
    worker = f"{attrs['hostname']}:{attrs['pid']}" if "hostname" in attrs and "pid" in attrs else None
    return {"number": row.number, "state": row.state, "value": _number(row.value),
            "params": {k: _number(v) if isinstance(v, float) else v for k, v in row.params.items()},
            "epochs_run": attrs.get("epochs_run"),
            "duration_s": round(duration, 3) if duration is not None else None,
            "worker": worker, "failure_reason": attrs.get("failure_reason")}


def trial_records(study: optuna.Study, *, states: tuple[str, ...] | None = None,
                  numbers: list[int] | None = None) -> list[dict[str, Any]]:
    from hpo.storage import trial_rows

    rows = trial_rows(study, states=states, numbers=numbers, attrs=RECORD_ATTRS)
    if numbers is not None:  # in the order asked for (best first, say)
        position = {number: i for i, number in enumerate(numbers)}
        rows.sort(key=lambda row: position[row.number])
    return [trial_record(row) for row in rows]


def dump(data: Any, fmt: OutputFormat) -> str:
    """`data` (records) as JSON or YAML text."""
    if fmt is OutputFormat.json:
        return json.dumps(data, indent=2, default=str) + "\n"
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False, allow_unicode=True)


def trial_table(records: list[dict[str, Any]], title: str, label: str = "val F1") -> str:
    """Trial records as aligned plain text, one line per trial (no wrapping: `| grep PRUNED` works, and 10,000
    trials print in a moment, where a rich table took 12 s)."""
    from hpo.search.progress import clock, format_params

    header = ("trial", "state", label, "epochs", "time", "worker", "params", "failure")
    rows = [(str(r["number"]), r["state"],
             f"{r['value']:.4f}" if isinstance(r["value"], float) else str(r["value"] or "-"),
             f"{r['epochs_run']:g}" if r["epochs_run"] is not None else "-",
             clock(r["duration_s"]) if r["duration_s"] is not None else "-", r["worker"] or "-",
             format_params(r["params"]) or "-", r["failure_reason"] or "") for r in records]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    right = {0, 2, 3, 4}  # numbers align right

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([title, line(header), *map(line, rows)]) + "\n"
