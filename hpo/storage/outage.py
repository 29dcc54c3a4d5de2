"""Storage calls that survive a transient database outage (a restart, a dropped connection), and end the worker
cleanly when the outage lasts too long.

Written by hand because Optuna retries nothing: its heartbeat thread dies silently at the first database error
(after which other workers fail the live trial), and any call during a server restart raises. A retried call is
repeated with backoff for up to `HPO_STORAGE_RETRY_S` seconds (default 300); a preemption signal that arrives
meanwhile is raised once the call is complete (hpo/preemption.py).

Past that window the call raises `StorageUnavailable` (exit 75: try again later) naming the storage and how long
it waited, once per process: every other call still retrying in this process (the heartbeat thread's) gives up at
its next failed try, and the heartbeat thread ends quietly, so the worker says one line, not a traceback per
thread. This module is the storage package's leaf: it imports nothing of the package.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from hpo.errors import StorageUnavailable
from hpo.preemption import preemption_deferred
from hpo.settings import mask_url, settings

__all__ = ["is_transient", "retrying", "through_outages"]

log = logging.getLogger("hpo")
F = TypeVar("F", bound=Callable[..., Any])

_gave_up: list[str] = []  # the message of this process's StorageUnavailable, once raised


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


def retrying(call: F) -> F:
    """`call`, repeated through transient outages for up to HPO_STORAGE_RETRY_S seconds; then StorageUnavailable."""

    @wraps(call)
    def retried(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        deadline = started + settings().storage_retry_s
        delay = 0.5
        while True:
            try:
                with preemption_deferred():
                    result = call(*args, **kwargs)
                _gave_up.clear()  # the database is back
                return result
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if _gave_up or time.monotonic() + delay > deadline:  # once given up, other calls don't wait again
                    raise _give_up(args, time.monotonic() - started, exc) from None
                log.warning("storage unavailable (%s); retrying in %.1f s", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    return retried  # type: ignore[return-value]


def _give_up(args: tuple[Any, ...], waited: float, exc: BaseException) -> StorageUnavailable:
    """The one StorageUnavailable of this process: the storage (masked), how long it waited, what the driver said."""
    if not _gave_up:
        url = next((str(getattr(a, "url", "")) for a in args if getattr(a, "url", None) is not None), "")
        where = mask_url(url) if url else "the storage"
        reason = _driver_reason(exc)
        _gave_up.append(f"storage {where} unreachable for {waited:.0f} s (HPO_STORAGE_RETRY_S="
                        f"{settings().storage_retry_s:g}): {reason}. This worker stops; its running trial is failed "
                        "and retried by a live worker once the database is back. Start workers again then.")
    return StorageUnavailable(_gave_up[0])


def _driver_reason(exc: BaseException) -> str:
    """The database driver's own first line (connection refused, server closed the connection…), under
    SQLAlchemy's and Optuna's wrapping."""
    seen: BaseException | None = exc
    root = exc
    while seen is not None:
        root = getattr(seen, "orig", None) or seen
        seen = seen.__cause__ or seen.__context__
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    return lines[0] if lines else type(root).__name__


def heartbeat_through_outages(record: F) -> F:
    """`record_heartbeat` for Optuna's heartbeat thread: after the process gave up on the storage the thread ends
    its beat quietly (the main thread says why, once) instead of dying with a traceback."""

    @wraps(record)
    def beat(*args: Any, **kwargs: Any) -> Any:
        try:
            return record(*args, **kwargs)
        except StorageUnavailable:
            if threading.current_thread() is threading.main_thread():
                raise
            return None

    return beat  # type: ignore[return-value]


def through_outages(*names: str) -> Callable[[type], type]:
    """Class decorator: the named methods (as the class resolves them, mixins included) become `retrying`."""

    def decorate(cls: type) -> type:
        for name in names:
            method = retrying(getattr(cls, name))
            setattr(cls, name, heartbeat_through_outages(method) if name == "record_heartbeat" else method)
        return cls

    return decorate
