"""Which storage a run uses, and opening it. URLs are shown with the password masked, always."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo.errors import StorageError
from hpo.settings import DEFAULT_STORAGE, env_storage

if TYPE_CHECKING:
    import optuna

__all__ = ["display_url", "open_storage", "resolve_storage"]

# Heartbeats let a later run (or another worker) fail a trial whose process died instead of leaving it
# RUNNING forever; Optuna runs them inside study.optimize, which is why every trial goes through it.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120


def resolve_storage(cli: str | None, study_file: str | None) -> str:
    """--storage, then HPO_STORAGE, then the study file's storage, then one SQLite file in the working dir."""
    return cli or env_storage() or study_file or DEFAULT_STORAGE


def display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    import optuna
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise StorageError(
            "the storage URL is not a database URL; write it as sqlite:///hpo.db or "
            "postgresql+psycopg2://user:password@host:5432/dbname"
        ) from None
    engine_kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a writer instead of failing at once
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
        )
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        raise StorageError(f"cannot open storage {display_url(url)}: {reason}") from None
