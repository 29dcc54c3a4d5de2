"""What was launched for a study, so `hpo stop` and `hpo logs` can find it: `.hpo/launches/<study>.json` in the
working directory, one record per launch (launcher, when, and the launcher's handles: pids, job id, log paths)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["launches", "record_launch"]

ROOT = Path(".hpo") / "launches"


def record_launch(study: str, launcher: str, *, root: Path | None = None, **handles: Any) -> dict[str, Any]:
    """Append a launch to `<root>/launches/<study>.json` (root: `.hpo` in the working directory)."""
    from hpo.files import output_dir, write_output

    path = _file(study, root)
    output_dir(path.parent)
    record = {"study": study, "launcher": launcher, "at": datetime.now(UTC).isoformat(timespec="seconds"), **handles}
    with FileLock(str(path) + ".lock"):
        records = json.loads(path.read_text()) if path.exists() else []
        records.append(record)
        write_output(path, json.dumps(records, indent=2, default=str))
    return record


def launches(study: str, *, root: Path | None = None) -> list[dict[str, Any]]:
    """The study's recorded launches, oldest first; [] when there are none."""
    path = _file(study, root)
    return json.loads(path.read_text()) if path.exists() else []


def _file(study: str, root: Path | None) -> Path:
    from hpo.spec import check_study_name

    # A study name is not a path: `hpo logs ../../x` must not read, nor `hpo stop` signal, what a planted file names.
    return (Path(root) / "launches" if root is not None else ROOT) / f"{check_study_name(study)}.json"
