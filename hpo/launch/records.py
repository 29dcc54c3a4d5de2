"""What was launched for a study, so `hpo stop` and `hpo logs` can find it: `.hpo/launches/<study>.json` in the
working directory, a list of typed launch records, oldest first.

Each launcher writes its own record (`LocalLaunchRecord`, `SlurmLaunchRecord`, `KubernetesLaunchRecord`); the file is
read and validated here, in one place, so a hand-edited or cut-short file is one error naming the file and what
is wrong in it, and every reader above gets frozen, typed records, never raw dicts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from hpo.errors import HpoError
from hpo.files import output_dir, write_output
from hpo.spec import check_study_name

__all__ = ["KubernetesLaunchRecord", "LaunchRecord", "LocalLaunchRecord", "SlurmLaunchRecord", "WorkerProcess",
           "launches", "record_launch"]

ROOT = Path(".hpo") / "launches"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    at: datetime = Field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))


class WorkerProcess(BaseModel):
    """One local worker as it was started: `start_time` and `command` tell it from whatever process holds `pid`
    later (a pid is reused once its process has ended)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int
    start_time: str  # the kernel's start time of the process (hpo.launch.local.process_identity)
    command: tuple[str, ...]
    log: str


class LocalLaunchRecord(_Record):
    launcher: Literal["local"] = "local"
    host: str
    storage: str  # the storage as shown (password masked), never the URL
    workers: tuple[WorkerProcess, ...]


class SlurmLaunchRecord(_Record):
    launcher: Literal["slurm"] = "slurm"
    host: str
    job_id: str
    log_dir: str
    tasks: Annotated[int, Field(ge=1)]
    study_file: str


class KubernetesLaunchRecord(_Record):
    launcher: Literal["k8s"] = "k8s"
    namespace: str
    job: str
    workers: Annotated[int, Field(ge=1)]
    image: str


LaunchRecord = Annotated[LocalLaunchRecord | SlurmLaunchRecord | KubernetesLaunchRecord,
                         Field(discriminator="launcher")]


class _File(BaseModel):
    """The records of one study's file: each names that study."""

    records: list[LaunchRecord]
    study: str

    @model_validator(mode="after")
    def _one_study(self) -> _File:
        for number, record in enumerate(self.records):
            if record.study != self.study:
                raise ValueError(f"record {number} is for study {record.study!r}, not {self.study!r}")
        return self


_RECORDS = TypeAdapter(list[LaunchRecord])


def record_launch(record: LaunchRecord, *, root: Path | None = None) -> LaunchRecord:
    """Append `record` to `<root>/launches/<study>.json` (root: `.hpo` in the working directory)."""
    path = _file(record.study, root)
    output_dir(path.parent)
    with FileLock(str(path) + ".lock"):
        records = [*_read(path, record.study), record]
        write_output(path, _RECORDS.dump_json(records, indent=2).decode())
    return record


def launches(study: str, *, root: Path | None = None) -> list[LaunchRecord]:
    """The study's recorded launches, oldest first; [] when there are none."""
    return _read(_file(study, root), study)


def _read(path: Path, study: str) -> list[LaunchRecord]:
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return _File.model_validate({"records": raw, "study": study}).records
    except (OSError, UnicodeDecodeError) as exc:
        raise HpoError(f"{path}: cannot read the launch records: {exc}") from None
    except json.JSONDecodeError as exc:
        raise HpoError(f"{path}: not a launch record file (JSON broken at line {exc.lineno}: {exc.msg}); was it "
                       "cut short or edited by hand? Fix it, or delete it to forget these launches") from None
    except ValidationError as exc:
        raise HpoError(f"{path}: not a launch record file ({_first_problem(exc)}); was it edited by hand? Fix it, "
                       "or delete it to forget these launches") from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = [str(part) for part in error["loc"] if part != "records"]
    if where and where[0].isdigit():
        where = [f"record {where[0]}", *where[2:]]  # drop the launcher's tag pydantic puts after the index
    problem = error["msg"].removeprefix("Value error, ")
    return f"{' -> '.join(where)}: {problem}" if where else problem


def _file(study: str, root: Path | None) -> Path:
    # A study name is not a path: `hpo logs ../../x` must not read, nor `hpo stop` signal, what a planted file names.
    return (Path(root) / "launches" if root is not None else ROOT) / f"{check_study_name(study)}.json"
