"""The machine's real PostgreSQL for tests: a fresh database per test, dropped afterwards; and clusters a test
owns, for tests that restart or break the server.

Under CI=true an unreachable server fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.builders import free_port
from tests.ci import unavailable

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
        unavailable(f"PostgreSQL at {ADMIN_URL} is unreachable: {str(exc).splitlines()[0]}")


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


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster a test owns (it may restart or break it), with a database `hpo`."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/hpo"

    def psql(self, sql: str) -> None:
        done = _run("psql", "-h", "/var/run/postgresql", "-p", str(self.port), "-U", "postgres", "-c", sql)
        assert done.returncode == 0, done.stderr

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")

    def _ctl(self, action: str) -> None:
        done = _run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action)
        assert done.returncode == 0, done.stderr


@contextmanager
def own_cluster(auth_host: str = "trust") -> Iterator[Cluster]:
    """A new cluster on a free port (`pg_createcluster`: `initdb` refuses to run as root), dropped afterwards;
    never the machine's shared one. Under CI=true missing tools fail the test, elsewhere they skip it."""
    if shutil.which("pg_createcluster") is None:
        unavailable("pg_createcluster (Debian's postgresql-common) is needed for a PostgreSQL cluster of the "
                    "test's own")
    version = sorted(Path("/etc/postgresql").iterdir())[-1].name
    cluster = Cluster(version, f"hpotest-{os.getpid()}-{uuid.uuid4().hex[:6]}", free_port())
    made = _run("pg_createcluster", version, cluster.name, "-p", str(cluster.port), "--start", "--",
                f"--auth-host={auth_host}", "--auth-local=trust")
    assert made.returncode == 0, made.stderr
    try:
        cluster.psql("CREATE DATABASE hpo")
        yield cluster
    finally:
        _run("pg_dropcluster", "--stop", version, cluster.name)
