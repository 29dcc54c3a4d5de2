"""`hpo trials NAME` and `hpo best NAME`: a study's trials (or its k best) as records, in a few queries whatever the
size of the study."""

from __future__ import annotations

from typing import Any

from hpo.results.records import OutputFormat, dump, trial_records, trial_table
from hpo.train.metrics import objective_of

__all__ = ["STATES", "best_trials", "list_trials"]

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def list_trials(name: str, storage: str | None, *, states: tuple[str, ...] = (),
                fmt: OutputFormat = OutputFormat.table) -> Any:
    """Every trial of the study (or those in `states`), by number."""
    from hpo.storage import load_study

    study, _ = load_study(name, storage)
    records = trial_records(study, states=tuple(states) or None)
    shown = f" ({', '.join(states)})" if states else ""
    return dump(records, fmt) if fmt is not OutputFormat.table else \
        trial_table(records, f"study {name}: {len(records)} trials{shown}", objective_of(study.metric_names).label)


def best_trials(name: str, storage: str | None, *, top: int = 1, fmt: OutputFormat = OutputFormat.table) -> Any:
    """The study's `top` best complete trials, best first."""
    from hpo.errors import HpoError
    from hpo.storage import best_numbers, load_study

    study, _ = load_study(name, storage)
    numbers = best_numbers(study, top)
    if not numbers:
        raise HpoError(f"study {name!r} has no complete trial yet")
    records = trial_records(study, numbers=numbers)
    return dump(records, fmt) if fmt is not OutputFormat.table else \
        trial_table(records, f"study {name}: the {len(records)} best trial{'s' if len(records) > 1 else ''}",
                    objective_of(study.metric_names).label)
