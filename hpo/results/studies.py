"""`hpo studies`: what the storage holds, without the study files."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from rich.table import Table

from hpo.settings import resolve_storage
from hpo.storage import open_storage, storage_exists

__all__ = ["delete_study", "list_studies"]


def list_studies(storage: str | None) -> Table | str:
    import optuna

    target = resolve_storage(storage, None)
    if not storage_exists(target):  # a listing must not create the database file
        return f"no studies in {target.display} (the file does not exist)"
    backend = open_storage(target)
    summaries = optuna.get_all_study_summaries(backend, include_best_trial=True)
    if not summaries:
        return f"no studies in {target.display}"
    table = Table(title=f"studies in {target.display}", title_justify="left")
    table.add_column("study", no_wrap=True)
    for column in ("complete", "pruned", "failed", "running", "budget", "best F1"):
        table.add_column(column, justify="right", min_width=len(column), no_wrap=True)
    for summary in sorted(summaries, key=lambda s: s.datetime_start or datetime.min):
        study_id = backend.get_study_id_from_name(summary.study_name)
        counts = Counter(t.state.name for t in backend.get_all_trials(study_id, deepcopy=False))
        best = summary.best_trial.value if summary.best_trial else None
        table.add_row(
            summary.study_name, str(counts["COMPLETE"]), str(counts["PRUNED"]), str(counts["FAIL"]),
            str(counts["RUNNING"]), str(summary.user_attrs.get("n_trials", "-")),
            f"{best:.4f}" if best is not None else "-",
        )
    return table


def delete_study(storage: str | None, name: str) -> str:
    import optuna

    from hpo.errors import HpoError

    target = resolve_storage(storage, None)
    if not storage_exists(target):
        raise HpoError(f"no study named {name!r}: {target.display} does not exist")
    backend = open_storage(target)
    try:
        optuna.delete_study(study_name=name, storage=backend)
    except KeyError:
        raise HpoError(f"no study named {name!r} in {target.display}") from None
    return f"deleted study {name!r} from {target.display}"
