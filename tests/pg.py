"""The machine's real PostgreSQL for tests: a fresh database per test, dropped afterwards.

Under CI=true an unreachable server fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("HPO_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _admin_engine():
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def require_postgres() -> None:
    from sqlalchemy import text

    try:
        with _admin_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL at {ADMIN_URL} is unreachable: {str(exc).splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def wait_for_postgres(timeout: float = 60) -> None:
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while True:
        try:
            with _admin_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create_database() -> tuple[str, str]:
    """A new, empty database on the local server: (its URL, its name)."""
    from sqlalchemy import text

    require_postgres()
    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str) -> None:
    from sqlalchemy import text

    wait_for_postgres()
    with _admin_engine().connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def restart_postgres() -> None:
    version = sorted(Path("/etc/postgresql").iterdir())[-1].name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   capture_output=True, timeout=120)
