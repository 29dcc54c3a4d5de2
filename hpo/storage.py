"""Which storage a run uses, and opening it. URLs are shown with the password masked, always.

The storage is Optuna's RDBStorage plus what it lacks for many workers: the budget admission
(hpo/budget.py), atomic retries of trials whose worker died (hpo/retry.py), one-round-trip reports
(hpo/intermediate_values.py), and calls that survive a transient database outage (below).

Connection budget per worker process (PostgreSQL): one pooled connection kept open (`pool_size=1`) and one
overflow connection opened only while two storage calls overlap (`max_overflow=1`: the heartbeat thread during a
trial-loop call, and Optuna's schema check, which nests two), recycled after 5 minutes. There is no
`pool_pre_ping`: it would cost a round trip on every storage call, and a connection that died while pooled
fails its first statement, which the retry below repeats on a fresh one. Each storage call holds a connection
for milliseconds, so 64 workers stay near 64 connections, under PostgreSQL's default `max_connections = 100`
(benchmarks/storage_workers.py measures the peak); the dashboard adds its own few.

A transient database outage (a restart, a dropped connection) does not kill a worker: every storage call is
retried with backoff for up to `HPO_STORAGE_RETRY_S` seconds (default 300).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from hpo.errors import StorageError
from hpo.settings import StorageURL, mask_url, resolve_storage, settings

if TYPE_CHECKING:
    import optuna

__all__ = ["count_states", "display_url", "is_transient", "load_study", "open_storage", "rdb_engine",
           "resolve_storage", "storage_exists", "study_storage", "target_only_tally"]

log = logging.getLogger("hpo")

display_url = mask_url  # every URL shown or written goes through the one masking function


def storage_exists(target: StorageURL) -> bool:
    """False only for a SQLite file that does not exist: read-only commands must not create it."""
    return target.sqlite_file is None or target.sqlite_file.exists()


def engine_kwargs(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}  # wait for a writer instead of failing at once
    kwargs: dict[str, Any] = {"pool_size": 1, "max_overflow": 1, "pool_timeout": 120, "pool_recycle": 300}
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10, "application_name": "transfer-hpo"}
    return kwargs


def open_storage(target: StorageURL | str, *, max_retries: int | None = None) -> optuna.storages.RDBStorage:
    """The study's RDB storage with heartbeats, pooled as documented above; a clear one-line error if the URL
    is malformed, the server unreachable or the credentials wrong. No secret of the URL ever appears.

    Heartbeats let a later run (or another worker) fail a trial whose process died instead of leaving it
    RUNNING forever; Optuna runs them inside study.optimize, which is why every trial goes through it."""
    target = StorageURL.parse(target) if isinstance(target, str) else target
    url = target.url
    import warnings

    import optuna

    from hpo.locks import DatabaseLock

    def construct() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return _storage_class()(
                url, engine_kwargs=engine_kwargs(url), heartbeat_interval=settings().heartbeat_s,
                grace_period=settings().grace_s,
            )

    storage = None
    try:
        if _schema_ready(url):  # the common case: no need to queue behind the other starting workers
            try:
                storage = construct()
            except Exception:
                storage = None  # e.g. a full server: the locked path below waits it out, or says why it can't
        if storage is None:
            # Optuna creates its tables on first use; one worker creates them, and every other one holds the
            # lock only to see that they exist.
            with DatabaseLock(url, "schema", outage_s=0):
                if not _schema_ready(url):
                    storage = construct()
            storage = storage or construct()
    except Exception as exc:
        raise StorageError(f"cannot open storage {target.display}: {target.scrub(_reason(exc))}") from None
    if max_retries is not None:
        storage.max_retries = max_retries
    return storage


def _schema_ready(url: str) -> bool:
    """Optuna's tables exist and are stamped, so opening the storage creates nothing and needs no lock.
    (Optuna stamps the schema's version last, after creating the tables.) False on any error."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not os.path.exists(parsed.database):
        return False
    try:
        engine = create_engine(url, poolclass=NullPool, **{k: v for k, v in engine_kwargs(url).items()
                                                            if k == "connect_args"})
        try:
            with engine.connect() as connection:
                return connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() > 0
        finally:
            engine.dispose()
    except Exception:
        return False


def _reason(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None or getattr(root, "orig", None) is not None:
        root = getattr(root, "orig", None) or root.__cause__
    text = str(root).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if "FATAL" in line or "error" in line.lower()), lines[0] if lines else
                  type(root).__name__)
    reason = reason.removeprefix("FATAL:").strip()
    if isinstance(root, ModuleNotFoundError):
        reason = f"the database driver is not installed ({root.name})"
    return reason


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection, which retrying may cure; not a constraint or a programming error."""
    from sqlalchemy import exc as sa

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sa.OperationalError | sa.InterfaceError | sa.DisconnectionError):
            return True
        if type(seen).__module__.startswith("psycopg2") and type(seen).__name__ in ("OperationalError",
                                                                                      "InterfaceError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    from hpo.retry import preemption_deferred

    @wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + settings().storage_retry_s
        delay = 0.5
        while True:
            try:
                with preemption_deferred():  # a preemption is raised once the call is complete
                    return method(self, *args, **kwargs)
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("storage unavailable (%s); retrying in %.1f s", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    return call


_storage: type | None = None


def _storage_class() -> type:
    """The budgeted, stale-retrying RDBStorage, whose calls survive a transient outage.

    The retries are written here because Optuna retries nothing: its heartbeat thread dies silently at the
    first database error (after which other workers fail the live trial), and any call during a server restart
    raises. Retried calls are the storage's public methods plus trial creation and the heartbeat and
    stale-trial queries; the budget's admission is retried with the call it guards.
    """
    global _storage
    if _storage is None:
        from optuna.storages import RDBStorage

        from hpo.budget import BudgetedRDBStorage
        from hpo.intermediate_values import OneTripReports
        from hpo.retry import StaleTrialRetries

        class HpoRDBStorage(StaleTrialRetries, OneTripReports, BudgetedRDBStorage):
            pass

        names = [n for n in vars(RDBStorage) if not n.startswith("__") and callable(getattr(RDBStorage, n))]
        names = [n for n in names if not n.startswith("_") or n in ("_get_stale_trial_ids", "_create_new_trial")]
        names = [n for n in names if n not in ("get_heartbeat_interval", "get_heartbeat_stale_trial_callback",
                                               "get_failed_trial_callback", "remove_session")]
        _storage = type("ResilientRDBStorage", (HpoRDBStorage,),
                        {n: _retrying(getattr(HpoRDBStorage, n)) for n in names})
    return _storage


def study_storage(backend: optuna.storages.RDBStorage) -> optuna.storages.BaseStorage:
    """What a worker's study works through: Optuna's trial cache over `backend` (the cache Optuna itself puts
    over an RDB storage), except for the look for WAITING trials that `study.ask()` makes before every trial.
    Optuna answers it by first reloading every unfinished trial of the study with all its values, so with
    64 workers each trial start reloaded the other 63 running trials (a third of a trial's storage time,
    measured with 63 running); here it is one query for the WAITING trials alone, usually none."""
    from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
    from optuna.trial import TrialState

    class WaitingQueryCache(_CachedStorage):
        def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list:
            if states is not None and set(states) == {TrialState.WAITING}:
                waiting = self._backend.get_all_trials(study_id, deepcopy=deepcopy, states=states)
                self._remember(study_id, waiting)
                return waiting
            return super().get_all_trials(study_id, deepcopy, states)

        def _remember(self, study_id: int, trials: list) -> None:
            # The cache must know every trial this process may start: `study.ask()` pops one of these into
            # RUNNING and then writes its parameters through the cache, which looks the trial up by id. A
            # queued trial older than the newest finished one is never read by the cache's own incremental
            # reload, so it is added here, as unfinished (re-read until it finishes).
            with self._lock:
                study = self._studies.setdefault(study_id, _StudyInfo())
                self._add_trials_to_cache(study_id, trials)
                study.unfinished_trial_ids.update(t._trial_id for t in trials)

    return WaitingQueryCache(backend)


def rdb_engine(storage: Any) -> Any:
    """The SQLAlchemy engine under an (Optuna-cached) RDB storage, or None for other storages."""
    return getattr(getattr(storage, "_backend", storage), "engine", None)


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials per state, counted by the database: the budget check runs before every trial of every worker,
    and loading every trial for it would grow with the study."""
    from collections import Counter

    engine = rdb_engine(study._storage)
    if engine is None:
        return Counter(t.state.name for t in study.get_trials(deepcopy=False))
    call = _retrying(lambda _self: _count(engine, study.study_name))
    return Counter(dict(call(None)))


def _count(engine: Any, study_name: str) -> list[tuple[str, int]]:
    from sqlalchemy import text

    query = text("SELECT t.state, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                 "WHERE s.study_name = :name GROUP BY t.state")
    with engine.connect() as connection:
        return [(str(state), int(n)) for state, n in connection.execute(query, {"name": study_name})]


def load_study(name: str, storage: str | None) -> tuple[optuna.Study, StorageURL]:
    """The study NAME in the resolved storage (--storage, HPO_STORAGE, sqlite:///hpo.db) and that storage's URL;
    an error listing the studies there when there is no such study."""
    import optuna

    target = resolve_storage(storage, None)
    if not storage_exists(target):
        raise StorageError(f"no study named {name!r}: {target.display} does not exist (nothing has run here)")
    backend = open_storage(target)
    try:
        return optuna.load_study(study_name=name, storage=backend), target
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(backend)) or "none"
        raise StorageError(f"no study named {name!r} in {target.display}; studies: {names}") from None


# A trial counts for the target-only share unless it FAILed; it is target only when its λ (source_weight) is 1
# or it carries the `target_only` attribute (a queued retry of a target-only trial, before its λ is set).
_TALLY = """
SELECT count(*), coalesce(sum(CASE WHEN
    EXISTS (SELECT 1 FROM trial_params p WHERE p.trial_id = t.trial_id AND p.param_name = 'source_weight'
            AND p.param_value = 1.0)
    OR EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'target_only'
               AND a.value_json = 'true')
    THEN 1 ELSE 0 END), 0)
FROM trials t JOIN studies s ON s.study_id = t.study_id
WHERE s.study_name = :name AND t.state <> 'FAIL' AND t.number <> :number
"""


def target_only_tally(study: optuna.Study, number: int) -> tuple[int, int]:
    """(trials that count, target-only trials among them) over the whole study, trial `number` left out.

    The sampler decides with it whether trial `number` is target only. It reads the storage, not the study it
    is handed: under Hyperband Optuna hands samplers a study filtered to the trial's bracket."""
    engine = rdb_engine(study._storage)
    if engine is None:  # an in-memory study: count its trials
        counted = [t for t in study.get_trials(deepcopy=False) if t.state.name != "FAIL" and t.number != number]
        return len(counted), sum(t.params.get("source_weight") == 1.0 or bool(t.user_attrs.get("target_only"))
                                 for t in counted)
    from sqlalchemy import text

    def tally(_self: Any) -> tuple[int, int]:
        with engine.connect() as connection:
            counted, target_only = connection.execute(text(_TALLY), {"name": study.study_name,
                                                                     "number": number}).one()
        return int(counted), int(target_only)

    return _retrying(tally)(None)
