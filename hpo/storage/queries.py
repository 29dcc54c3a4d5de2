"""What the rest of the project asks a study's storage, answered with a query each instead of loading every trial,
and the few storage handles a worker needs (its budget, its own running trial). The only place outside the
storage classes that touches Optuna's private attributes (`study._storage`, `trial._trial_id`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import optuna
from sqlalchemy import text

from hpo.storage.outage import retrying

__all__ = ["backend_of", "count_states", "engine_of", "fail_own_running_trial", "fetch", "last_heartbeats",
           "limit_trials", "still_running", "target_only_tally"]


def backend_of(study: optuna.Study) -> Any:
    storage = study._storage
    return getattr(storage, "_backend", storage)  # Optuna wraps an RDB storage in its trial cache


def engine_of(study: optuna.Study) -> Any:
    """The SQLAlchemy engine under the study's storage, or None for an in-memory study."""
    return getattr(backend_of(study), "engine", None)


@retrying
def fetch(engine: Any, query: Any, **values: Any) -> list[Any]:
    """The rows of `query` (SQL text, or a prepared statement), retried through outages."""
    with engine.connect() as connection:
        return list(connection.execute(text(query) if isinstance(query, str) else query, values))


def count_states(study: optuna.Study) -> Counter[str]:
    """Trials per state, counted by the database: the budget check runs before every trial of every worker, and
    loading every trial for it would grow with the study."""
    engine = engine_of(study)
    if engine is None:
        return Counter(t.state.name for t in study.get_trials(deepcopy=False))
    rows = fetch(engine, "SELECT t.state, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                         "WHERE s.study_name = :name GROUP BY t.state", name=study.study_name)
    return Counter({str(state): int(n) for state, n in rows})


# A trial counts for the target-only share unless it FAILed; it is target only when its λ is 1 or it carries the
# `target_only` attribute (a queued retry of a target-only trial, before its λ is set). λ is stored as
# `target_weight`, or as `source_weight` in studies created before the rename (hpo.train.config.LAMBDA_NAMES:
# storage sits beside train, below it, so the two names are repeated here).
LAMBDA_NAMES = ("target_weight", "source_weight")
_TALLY = """
SELECT count(*), coalesce(sum(CASE WHEN
    EXISTS (SELECT 1 FROM trial_params p WHERE p.trial_id = t.trial_id
            AND p.param_name IN ({lambda_names}) AND p.param_value = 1.0)
    OR EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'target_only'
               AND a.value_json = 'true')
    THEN 1 ELSE 0 END), 0)
FROM trials t JOIN studies s ON s.study_id = t.study_id
WHERE s.study_name = :name AND t.state <> 'FAIL' AND t.number <> :number
""".replace("{lambda_names}", ", ".join(f"'{name}'" for name in LAMBDA_NAMES))


def target_only_tally(study: optuna.Study, number: int) -> tuple[int, int]:
    """(trials that count, target-only trials among them) over the whole study, trial `number` left out.

    The sampler decides with it whether trial `number` is target only. It reads the storage, not the study it is
    handed: under Hyperband Optuna hands samplers a study filtered to the trial's bracket."""
    engine = engine_of(study)
    if engine is None:
        counted = [t for t in study.get_trials(deepcopy=False) if t.state.name != "FAIL" and t.number != number]
        return len(counted), sum(any(t.params.get(name) == 1.0 for name in LAMBDA_NAMES)
                                 or bool(t.user_attrs.get("target_only")) for t in counted)
    ((counted, target_only),) = fetch(engine, _TALLY, name=study.study_name, number=number)
    return int(counted), int(target_only)


def last_heartbeats(study: optuna.Study, trials: list[Any]) -> dict[int, float]:
    """Seconds since each trial's last heartbeat, by trial number, by the database's own clock (`trials`: Optuna's
    FrozenTrials or this package's TrialRows). Optuna keeps heartbeats in its `trial_heartbeats` table but has no
    public getter for them."""
    engine = engine_of(study)
    numbers = {getattr(t, "trial_id", None) or t._trial_id: t.number for t in trials}
    if engine is None or not numbers:
        return {}
    ((now,),) = fetch(engine, "SELECT CURRENT_TIMESTAMP")
    rows = fetch(engine, "SELECT trial_id, heartbeat FROM trial_heartbeats")
    return {numbers[tid]: (_naive(now) - _naive(beat)).total_seconds() for tid, beat in rows if tid in numbers}


def _naive(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def still_running(trial: optuna.Trial) -> bool:
    """The trial is RUNNING in the database itself: the worker's trial cache holds its own trials as it left them,
    and cannot see that another worker failed this one while the process was paused."""
    from optuna.trial import TrialState

    return backend_of(trial.study).get_trial(trial._trial_id).state == TrialState.RUNNING


def limit_trials(study: optuna.Study, budget: int | None) -> None:
    """From now on this process's storage starts a trial of `study` only within `budget` (budget.py)."""
    backend_of(study).limit_trials(study._storage.get_study_id_from_name(study.study_name), budget)


def fail_own_running_trial(study: optuna.Study, reason: str, max_retries: int) -> None:
    """A preemption that came outside the objective (while Optuna created the trial, or stored its result) leaves
    this process's latest trial RUNNING, maybe without a heartbeat that would ever go stale: queue its retry and
    fail it here."""
    from optuna.trial import TrialState

    from hpo.storage.retries import fail_and_retry

    trial_id = getattr(backend_of(study), "last_started_trial_id", None)
    if trial_id is not None and (trial := study._storage.get_trial(trial_id)).state == TrialState.RUNNING:
        fail_and_retry(study, trial, reason, max_retries)
