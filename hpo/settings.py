"""What comes from the environment, read once: every `HPO_*` variable, and the storage URL parsed once.

Secrets (a database password) belong here, never in a study file. A storage URL is parsed into a `StorageURL`
whose `display` form masks every secret a database URL can carry (the userinfo password and any password-like
query parameter, e.g. `?password=`, `?sslpassword=`); whatever prints or writes a URL uses that form. A URL with a
raw '@' after its user:password@ part is refused without being shown: its password's tail would be taken for the
host, database or query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hpo.errors import HpoError, StorageError

__all__ = ["DEFAULT_STORAGE", "Settings", "StorageURL", "cache_dir", "configure", "is_secret_key", "mask_url",
           "resolve_storage", "settings"]

DEFAULT_STORAGE = "sqlite:///hpo.db"
MASK = "***"
# Query parameters whose value is a credential: password, passwd, pass, pwd, sslpassword, secret, token, api keys.
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|api_?key", re.IGNORECASE)
# SQLAlchemy's own rule for the user:password@ part: the user ends at the first ':' or '/', the password at the
# first '@'. Group 1 is the password as written.
_USERINFO = re.compile(r"[\w+]+://[^:/]*:([^@]*)@", re.DOTALL)


class Settings(BaseSettings):
    """The `HPO_*` environment variables (documented in the README)."""

    model_config = SettingsConfigDict(env_prefix="HPO_", frozen=True, extra="ignore")

    storage: str | None = Field(None, description="Storage URL; overrides a study file's storage.")
    cache: Path | None = Field(None, description="Shared cache: corpora, model files, tokenised data.")
    heartbeat_s: int = Field(30, ge=1, description="Seconds between a running trial's heartbeats.")
    grace_s: int = Field(120, ge=1, description="A trial without a heartbeat for this long is lost.")
    storage_retry_s: float = Field(300.0, ge=0, description="How long storage calls retry through outages.")
    activation_cache_gb: float = Field(20.0, gt=0, description="Size cap of the reused frozen-layer activations "
                                                               "under the cache; least recently used go first.")


_overrides: dict[str, Any] = {}


@cache
def settings() -> Settings:
    """This process's settings: the environment, read the first time they are needed."""
    try:
        return Settings(**_overrides)
    except ValidationError as exc:
        problems = "; ".join(f"HPO_{str(e['loc'][0]).upper()}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors())
        raise HpoError(f"environment: {problems}") from None


def configure(**overrides: Any) -> None:
    """Override settings for the rest of this process (e.g. `hpo prepare --cache DIR`)."""
    _overrides.update(overrides)
    settings.cache_clear()


def cache_dir() -> Path:
    """`HPO_CACHE`, else `~/.cache/transfer-hpo`: corpora, model files, tokenised datasets. A cache that names a
    file (or lies under one) is refused here, in one line, rather than as a traceback from the first mkdir."""
    configured = settings().cache
    path = (Path(configured) if configured else Path.home() / ".cache" / "transfer-hpo").expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        under = "" if existing == path else f" ({existing} is a file)"
        raise HpoError(f"cache {path}: not a directory{under}; point HPO_CACHE (or --cache) at a folder")
    return path


def is_secret_key(key: str) -> bool:
    """A URL query parameter that carries a credential."""
    return bool(_SECRET_KEY.search(key))


@dataclass(frozen=True)
class StorageURL:
    """A storage URL, parsed once. `url` (secrets included) is for connecting only; show `display`."""

    url: str
    backend: str
    host: str | None
    database: str | None
    display: str
    secrets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, url: str) -> StorageURL:
        from sqlalchemy.engine import make_url

        userinfo = _USERINFO.match(url)
        if userinfo and "@" in url[userinfo.end():]:
            raise _raw_at()
        try:
            parsed = make_url(url)
            backend = parsed.get_backend_name()
        except Exception:
            raise StorageError(
                "the storage URL is not a database URL; write it as sqlite:///hpo.db or "
                "postgresql+psycopg2://user:password@host:5432/dbname"
            ) from None
        if backend != "sqlite" and "@" in f"{parsed.host or ''}{parsed.database or ''}":
            raise _raw_at()  # a user:password@ part SQLAlchemy did not recognise (e.g. a '/' in the user name)
        secrets = [parsed.password, userinfo[1] if userinfo else None]  # decoded, and as written
        query = dict(parsed.query)
        for key, value in query.items():
            if is_secret_key(key):
                secrets += [value] if isinstance(value, str) else list(value)
                query[key] = MASK
        masked = parsed.set(password=MASK if parsed.password else None, query=query)
        display = masked.render_as_string(hide_password=False).replace("%2A%2A%2A", MASK)  # unquoted mask
        return cls(url, backend, parsed.host, parsed.database, display, tuple(s for s in secrets if s))

    @property
    def in_memory(self) -> bool:
        return self.backend == "sqlite" and self.database in (None, "", ":memory:")

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a SQLite URL, else None."""
        return Path(self.database) if self.backend == "sqlite" and not self.in_memory else None

    @property
    def local_only(self) -> bool:
        """A server on this machine (or a file): other machines cannot reach it."""
        return self.host in (None, "", "localhost", "127.0.0.1", "::1")

    def scrub(self, text: str) -> str:
        """`text` with every secret of this URL replaced by the mask (for driver error messages)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def _raw_at() -> StorageError:
    """A URL with a raw '@' after its user:password@ part. SQLAlchemy ends the password at the first '@', so the rest
    of it would become the host, port, database or query: shown in every display of the URL and in the driver's
    errors, and never a working connection. The refusal echoes nothing of the URL."""
    return StorageError(
        "the storage URL has an '@' after its user:password@ part (not shown: it may hold the password); write "
        "an '@' inside the password, user name, database or query as %40, e.g. "
        "postgresql+psycopg2://user:pass%40word@host:5432/dbname"
    )


def mask_url(url: str) -> str:
    """The display form of a storage URL: every secret masked; an unparseable URL is not shown at all."""
    try:
        return StorageURL.parse(url).display
    except StorageError:
        return "<unparseable storage URL>"


def resolve_storage(cli: str | None, study_file: str | None) -> StorageURL:
    """--storage, then HPO_STORAGE, then the study file's storage, then one SQLite file in the working dir."""
    return StorageURL.parse(cli or settings().storage or study_file or DEFAULT_STORAGE)
