"""Named locks shared by every worker of a storage, held for moments.

- The schema lock: Optuna creates its tables on first use, and workers starting together on an empty database
  would race to create them.
- The stale-trial lock (retries.py): one worker retries and fails a lost trial, not two.
- On SQLite, the budget's admission (budget.py); PostgreSQL locks the study's row for that instead.

On PostgreSQL the lock is an advisory lock taken with `pg_try_advisory_lock` on a short-lived connection, so
waiting workers hold no connection; on SQLite, a file lock beside the database file.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from filelock import FileLock

from hpo.settings import StorageURL, settings
from hpo.storage.outage import is_transient

__all__ = ["DatabaseLock"]


class DatabaseLock:
    """A named lock for every process using the storage at `url`."""

    def __init__(self, target: StorageURL | str, name: str, *, outage_s: float | None = None) -> None:
        """`outage_s`: how long to keep trying through connection errors, counted from the first one (default
        HPO_STORAGE_RETRY_S); 0 raises the first, as opening a storage must, to say at once that the server is
        unreachable. A full server ("too many clients") is always waited out for a while: workers starting
        together can briefly fill it."""
        target = StorageURL.parse(target) if isinstance(target, str) else target
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._url = target.url
        self._backend = target.backend
        self._file_lock: FileLock | None = None
        if target.sqlite_file is not None:
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            self._file_lock = FileLock(f"{target.sqlite_file}.{digest}.lock")
        self._engine: Any = None
        self._connection: Any = None
        self._outage_s = settings().storage_retry_s if outage_s is None else outage_s

    def acquire(self) -> None:
        if self._file_lock is not None:
            self._file_lock.acquire()
        elif self._backend == "postgresql":
            self._acquire_advisory()

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._file_lock is not None and self._file_lock.is_locked:
            self._file_lock.release()
        if self._connection is not None:
            from sqlalchemy import text

            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._connection.commit()
            except Exception:
                self._connection.invalidate()  # a dropped session has released the lock already
            finally:
                self._connection.close()
                self._connection = None

    def _acquire_advisory(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            self._engine = create_engine(self._url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                         connect_args={"connect_timeout": 10})
        query = text("SELECT pg_try_advisory_lock(:k)")
        delay, first_failure = 0.02, None
        while True:
            connection = None
            try:
                connection = self._engine.connect()
                got = connection.execute(query, {"k": self._key}).all()[0][-1]
            except Exception as exc:
                if connection is not None:
                    connection.invalidate()
                    connection.close()
                first_failure = first_failure or time.monotonic()
                if not self._may_retry(exc, time.monotonic() - first_failure):
                    raise
                got, connection = False, None
            else:
                first_failure = None
            if got:
                self._connection = connection
                return
            if connection is not None:
                connection.close()
            time.sleep(delay * (0.5 + random.random()))  # jitter: waiting workers don't knock in step
            delay = min(delay * 1.5, 0.5)

    def _may_retry(self, exc: BaseException, outage: float) -> bool:
        if "too many clients" in str(exc) or "remaining connection slots" in str(exc):
            return outage < max(self._outage_s, 60.0)
        return is_transient(exc) and outage < self._outage_s
