"""What comes from the environment: the storage URL and the cache directory.

Secrets (a database password) belong here, never in a study file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_STORAGE", "cache_dir", "env_storage"]

DEFAULT_STORAGE = "sqlite:///hpo.db"


def cache_dir() -> Path:
    """`HPO_CACHE`, else `~/.cache/transfer-hpo`: corpora, tokenised datasets."""
    configured = os.environ.get("HPO_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "transfer-hpo"
    return base.expanduser()


def env_storage() -> str | None:
    return os.environ.get("HPO_STORAGE") or None
