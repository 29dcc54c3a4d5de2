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


def record_launch(study: str, launcher: str, **handles: Any) -> dict[str, Any]:
    ROOT.mkdir(parents=True, exist_ok=True)
    path = ROOT / f"{study}.json"
    record = {"launcher": launcher, "at": datetime.now(UTC).isoformat(timespec="seconds"), **handles}
    with FileLock(str(path) + ".lock"):
        records = json.loads(path.read_text()) if path.exists() else []
        records.append(record)
        path.write_text(json.dumps(records, indent=2))
    return record


def launches(study: str) -> list[dict[str, Any]]:
    path = ROOT / f"{study}.json"
    return json.loads(path.read_text()) if path.exists() else []
