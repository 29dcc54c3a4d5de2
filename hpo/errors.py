"""The errors a user can cause. The CLI prints them in one block and exits 1, without a traceback."""

from __future__ import annotations

__all__ = ["DataError", "HpoError", "OutputError", "SpecError", "StorageError", "StudyMismatchError"]


class HpoError(Exception):
    """Something the user can fix: a bad file, a bad option, an unreachable service."""


class SpecError(HpoError):
    """A study file that does not validate. Each problem names the file and the field path."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
        lines += [f"  [{path}] {message}" if path else f"  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class DataError(HpoError):
    """A dataset that cannot be used: missing file or column, no rows, a single class."""


class StorageError(HpoError):
    """A storage URL that is malformed or points nowhere. Messages never carry the password."""


class StudyMismatchError(HpoError):
    """A re-run whose search space, model or data differ from what the stored study was created with."""


class OutputError(HpoError):
    """An output path that cannot be written. Messages name the path and the reason."""
