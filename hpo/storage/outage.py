"""Storage calls that survive a transient database outage (a restart, a dropped connection).

Written by hand because Optuna retries nothing: its heartbeat thread dies silently at the first database error
(after which other workers fail the live trial), and any call during a server restart raises. A retried call is
repeated with backoff for up to `HPO_STORAGE_RETRY_S` seconds (default 300); a preemption signal that arrives
meanwhile is raised once the call is complete (hpo/preemption.py). This module is the storage package's leaf:
it imports nothing of the package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from hpo.preemption import preemption_deferred
from hpo.settings import settings

__all__ = ["is_transient", "retrying", "through_outages"]

log = logging.getLogger("hpo")
F = TypeVar("F", bound=Callable[..., Any])


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
    """`call`, repeated through transient outages for up to HPO_STORAGE_RETRY_S seconds."""

    @wraps(call)
    def retried(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + settings().storage_retry_s
        delay = 0.5
        while True:
            try:
                with preemption_deferred():
                    return call(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("storage unavailable (%s); retrying in %.1f s", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    return retried  # type: ignore[return-value]


def through_outages(*names: str) -> Callable[[type], type]:
    """Class decorator: the named methods (as the class resolves them, mixins included) become `retrying`."""

    def decorate(cls: type) -> type:
        for name in names:
            setattr(cls, name, retrying(getattr(cls, name)))
        return cls

    return decorate
