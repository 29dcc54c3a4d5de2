"""Study names. A name becomes a file name (.hpo/launches/NAME.json), a database key and a label, so it is checked
wherever it enters: letters, digits, . _ -, starting with a letter or digit (so never a path), and short enough for
every database and file system (Optuna's name column holds 512)."""

from __future__ import annotations

import re

from hpo.errors import HpoError

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "NAME_RULE", "check_study_name", "is_study_name"]

MAX_NAME_LENGTH = 128
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_RULE = f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME_LENGTH} characters"
_NAME = re.compile(NAME_PATTERN)


def is_study_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and bool(_NAME.fullmatch(name))


def check_study_name(name: str) -> str:
    """`name` if it is a valid study name, else HpoError saying what a name may hold."""
    if not is_study_name(name):
        shown = name if len(str(name)) <= 60 else f"{str(name)[:57]}..."
        raise HpoError(f"{shown!r} is not a study name: {NAME_RULE}")
    return name
