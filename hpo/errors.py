"""The errors a user can cause. The CLI prints them in one block and exits 1, without a traceback."""

from __future__ import annotations

__all__ = ["DataError", "HpoError", "OutputError", "SpecError", "StorageError", "StorageUnavailable",
           "StudyMismatchError", "TrialTakenOver"]


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


class StorageUnavailable(BaseException):
    """The storage stayed unreachable for longer than HPO_STORAGE_RETRY_S: the worker stops, exit 75 (try again).

    A BaseException, as KeyboardInterrupt is: Optuna's trial runner catches every Exception from a trial and records
    the failure in the storage, which is the thing that is down (it would wait out the retry window again, then
    fail inside its own clean-up). So this passes Optuna by, the worker ends with one line, and its trial stays
    RUNNING without heartbeats: a live worker fails it and runs its retry once the database is back."""


class TrialTakenOver(BaseException):
    """This worker's trial was failed (and its retry queued) by another worker while this one was paused (SIGSTOP,
    a frozen VM): its heartbeat had stopped. A BaseException for the reason above: Optuna must not record the
    outcome of a trial that is no longer this worker's. The worker drops it with a warning and goes on."""
