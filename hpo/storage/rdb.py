"""The storage every worker and command opens: Optuna's RDBStorage plus what it lacks for many workers.

`HpoRDBStorage` adds, each in its own module: the budget's admission (budget.py), retries of trials whose worker
died (retries.py), one-round-trip reports (reports.py), and calls that survive a transient database outage
(outage.py, the methods listed in RETRIED).

Connection budget per worker process (PostgreSQL): one pooled connection kept open (`pool_size=1`) and one
overflow connection opened only while two storage calls overlap (`max_overflow=1`: the heartbeat thread during a
trial-loop call, and Optuna's schema check, which nests two), recycled after 5 minutes. There is no
`pool_pre_ping`: it would cost a round trip on every storage call, and a connection that died while pooled
fails its first statement, which the outage retry repeats on a fresh one. Each storage call holds a connection
for milliseconds, so 64 workers stay near 64 connections, under PostgreSQL's default `max_connections = 100`
(benchmarks/storage_workers.py measures the peak); the dashboard adds its own few.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from hpo.errors import StorageError
from hpo.settings import StorageURL, resolve_storage, settings
from hpo.storage.budget import BudgetedRDBStorage
from hpo.storage.locks import DatabaseLock
from hpo.storage.outage import through_outages
from hpo.storage.reports import OneTripReports
from hpo.storage.retries import StaleTrialRetries

__all__ = ["RETRIED", "HpoRDBStorage", "load_study", "open_storage", "storage_exists"]

# Every RDBStorage method that reads or writes the database, public ones and the private ones Optuna's trial cache
# calls on its backend (`_create_new_trial`, `_set_trial_param`, `_get_trials`, `_get_best_trial_id`), and the
# heartbeat's two. tests/storage checks that no database method of the installed Optuna is missing.
RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_user_attrs", "get_trial_system_attrs",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials", "get_best_trial",
    "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids", "upgrade", "get_current_version",
    "get_head_version", "get_all_versions",
)


@through_outages(*RETRIED)
class HpoRDBStorage(StaleTrialRetries, OneTripReports, BudgetedRDBStorage):
    """Optuna's RDBStorage with the budget's admission, retries of lost trials, one-trip reports, and every
    database call retried through outages."""


def storage_exists(target: StorageURL) -> bool:
    """False only for a SQLite file that does not exist: read-only commands must not create it."""
    return target.sqlite_file is None or target.sqlite_file.exists()


def engine_kwargs(target: StorageURL) -> dict[str, Any]:
    if target.backend == "sqlite":
        return {"connect_args": {"timeout": 60}}  # wait for a writer instead of failing at once
    kwargs: dict[str, Any] = {"pool_size": 1, "max_overflow": 1, "pool_timeout": 120, "pool_recycle": 300}
    if target.backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10, "application_name": "transfer-hpo"}
    return kwargs


def open_storage(target: StorageURL | str, *, max_retries: int | None = None) -> HpoRDBStorage:
    """The storage at `target`, with heartbeats, pooled as documented above; a clear one-line error if the URL
    is malformed, the server unreachable or the credentials wrong. No secret of the URL ever appears.

    Heartbeats let a later run (or another worker) fail a trial whose process died instead of leaving it
    RUNNING forever; Optuna runs them inside study.optimize, which is why every trial goes through it."""
    target = StorageURL.parse(target) if isinstance(target, str) else target

    def construct() -> HpoRDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return HpoRDBStorage(target.url, engine_kwargs=engine_kwargs(target),
                                 heartbeat_interval=settings().heartbeat_s, grace_period=settings().grace_s)

    storage = None
    try:
        if _schema_ready(target):  # the common case: no need to queue behind the other starting workers
            try:
                storage = construct()
            except Exception:
                storage = None  # e.g. a full server: the locked path below waits it out, or says why it can't
        if storage is None:
            # Optuna creates its tables on first use; one worker creates them, and every other one holds the
            # lock only to see that they exist.
            with DatabaseLock(target, "schema", outage_s=0):
                if not _schema_ready(target):
                    storage = construct()
            storage = storage or construct()
    except Exception as exc:
        raise StorageError(f"cannot open storage {target.display}: {target.scrub(_reason(exc))}") from None
    if max_retries is not None:
        storage.max_retries = max_retries
    return storage


def load_study(name: str, storage: str | None) -> tuple[optuna.Study, StorageURL]:
    """The study NAME in the resolved storage (--storage, HPO_STORAGE, sqlite:///hpo.db) and that storage; an
    error listing the studies there when there is no such study. Never creates a database file."""
    target = resolve_storage(storage, None)
    if not storage_exists(target):
        raise StorageError(f"no study named {name!r}: {target.display} does not exist (nothing has run here)")
    backend = open_storage(target)
    try:
        return optuna.load_study(study_name=name, storage=backend), target
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(backend)) or "none"
        raise StorageError(f"no study named {name!r} in {target.display}; studies: {names}") from None


def _schema_ready(target: StorageURL) -> bool:
    """Optuna's tables exist and are stamped, so opening the storage creates nothing and needs no lock.
    (Optuna stamps the schema's version last, after creating the tables.) False on any error."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    if target.sqlite_file is not None and not target.sqlite_file.exists():
        return False
    try:
        connect_args = engine_kwargs(target).get("connect_args", {})
        engine = create_engine(target.url, poolclass=NullPool, connect_args=connect_args)
        try:
            with engine.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() > 0
        finally:
            engine.dispose()
    except Exception:
        return False


def _reason(exc: BaseException) -> str:
    """The line of a driver's error that says why, without SQLAlchemy's wrapping."""
    root: BaseException = exc
    while root.__cause__ is not None or getattr(root, "orig", None) is not None:
        root = getattr(root, "orig", None) or root.__cause__
    lines = [line.strip() for line in str(root).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if "FATAL" in line or "error" in line.lower()), lines[0] if lines else
                  type(root).__name__)
    if isinstance(root, ModuleNotFoundError):
        return f"the database driver is not installed ({root.name})"
    return reason.removeprefix("FATAL:").strip()
