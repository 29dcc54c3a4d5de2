"""The one interface every launcher fills in (flow.py runs the flow they share).

A launcher starts N workers that each run `hpo run STUDY` (the same worker, `hpo.search.worker.run_and_report`,
wherever it runs) and coordinate only through the storage. It has five parts:

- `check_storage(target)`: refuse a storage its workers could not share; notes worth a warning.
- `render(study, **options)`: pure; what would be submitted (worker commands, a job script, manifests), shown by
  `--dry-run`. Never holds a secret.
- `submit(study, target, storage=..., **options)`: start the workers, record the launch in
  `.hpo/launches/NAME.json` (its own typed record, records.py), and say what was done.
- `stop(record)` and `logs(record, worker)`: act on a recorded launch (`hpo stop`, `hpo logs`).

A launcher's options are the keyword-only parameters of its pure renderer (`OPTIONS_FROM`: `render_job_script`,
`render_job`, or `render` itself), with their defaults and types, less those the launch fills in from the study
(`NOT_OPTIONS`); the CLI builds its options from that signature and the launcher's `OPTION_HELP`, so each option is
defined once. Every option value is one line without control characters (flow.py checks them all where they
enter), so no renderer has to defend its script or manifest against a value that would end a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from hpo.launch.records import LaunchRecord
    from hpo.settings import StorageURL

__all__ = ["LAUNCHERS", "Launch", "Launcher", "StudyFile"]

LAUNCHERS = ("local", "slurm", "k8s")


@dataclass(frozen=True)
class StudyFile:
    """The study a launch is for: its name, its file (absolute: workers may run elsewhere), the file's text, and
    the budget its workers set (`hpo run --n-trials`), if any."""

    name: str
    path: Path
    text: str
    n_trials: int | None = None

    def worker_args(self) -> list[str]:
        """What every launcher's worker runs after `hpo`: `run STUDY [--n-trials N]`."""
        return ["run", str(self.path), *(["--n-trials", str(self.n_trials)] if self.n_trials else [])]


@dataclass(frozen=True)
class Launch:
    """What a launch did (or, with `submitted` False, what a dry run would do)."""

    study: str
    rendered: str  # the worker commands, job script or manifests
    message: str = ""
    notes: tuple[str, ...] = ()
    exit_code: int = 0
    submitted: bool = True
    record: LaunchRecord | None = None  # what was recorded for `hpo stop` and `hpo logs`


class Launcher(Protocol):
    name: ClassVar[str]
    OPTIONS_FROM: ClassVar[Callable[..., Any]]  # the pure renderer whose keyword-only parameters are the options
    NOT_OPTIONS: ClassVar[tuple[str, ...]]  # its parameters the launch fills in from the study
    OPTION_HELP: ClassVar[dict[str, str]]  # each option's help on the command line

    def check_storage(self, target: StorageURL) -> tuple[str, ...]: ...

    def render(self, study: StudyFile, **options: Any) -> str: ...

    def submit(self, study: StudyFile, target: StorageURL, *, storage: str | None, **options: Any) -> Launch: ...

    def stop(self, record: Any) -> str: ...  # the launcher's own record type (records.py)

    def logs(self, record: Any, worker: int) -> str: ...
