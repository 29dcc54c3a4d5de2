"""`hpo studies`: what the storage holds, without the study files, in a few queries whatever its size."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hpo.errors import HpoError
from hpo.results.records import COUNT_NAMES, OutputFormat, dump
from hpo.settings import resolve_storage
from hpo.storage import open_storage, storage_exists

__all__ = ["delete_study", "list_studies", "study_records"]


def study_records(storage: str | None) -> tuple[list[dict[str, Any]], str]:
    """One record per study: its trial counts by state, budget, best value, when it was created; and the storage
    (masked) they were read from. An absent SQLite file holds no studies (and is not created)."""
    from hpo.storage import study_summaries

    target = resolve_storage(storage, None)
    if not storage_exists(target):
        return [], f"{target.display} (the file does not exist)"
    summaries = sorted(study_summaries(open_storage(target)), key=lambda s: s.created or datetime.min)
    return [{"study": s.name, **{word: s.counts[state] for state, word in COUNT_NAMES.items()},
             "budget": s.budget, "best_value": s.best_value,
             "created": s.created.isoformat(timespec="seconds") if s.created else None} for s in summaries], \
        target.display


def list_studies(storage: str | None, fmt: OutputFormat = OutputFormat.table) -> Any:
    """`hpo studies`: a table, or the records as JSON or YAML."""
    from rich.table import Table

    records, shown = study_records(storage)
    if fmt is not OutputFormat.table:
        return dump(records, fmt)
    if not records:
        return f"no studies in {shown}"
    table = Table(title=f"studies in {shown}", title_justify="left")
    table.add_column("study", no_wrap=True)
    for column in ("complete", "pruned", "failed", "running", "budget", "best F1"):
        table.add_column(column, justify="right", min_width=len(column), no_wrap=True)
    for r in records:
        table.add_row(r["study"], str(r["complete"]), str(r["pruned"]), str(r["failed"]), str(r["running"]),
                      str(r["budget"] or "-"), f"{r['best_value']:.4f}" if r["best_value"] is not None else "-")
    return table


def delete_study(storage: str | None, name: str) -> str:
    import optuna

    target = resolve_storage(storage, None)
    if not storage_exists(target):
        raise HpoError(f"no study named {name!r}: {target.display} does not exist")
    backend = open_storage(target)
    try:
        optuna.delete_study(study_name=name, storage=backend)
    except KeyError:
        raise HpoError(f"no study named {name!r} in {target.display}") from None
    return f"deleted study {name!r} from {target.display}"
