"""`hpo stop` and `hpo logs`: act, through the launcher that made it, on what `.hpo/launches/<study>.json` says was
launched."""

from __future__ import annotations

from pathlib import Path

from hpo.errors import HpoError
from hpo.launch.flow import launcher
from hpo.launch.records import launches

__all__ = ["stop_launches", "worker_log"]


def stop_launches(study: str) -> list[str]:
    """Stop every recorded launch of `study`; one line per launch saying what was done."""
    records = launches(study)
    if not records:
        raise HpoError(f"no launch of study {study!r} recorded in {Path('.hpo/launches').resolve()}")
    return [launcher(record.launcher).stop(record) for record in records]


def worker_log(study: str, worker: int) -> str:
    """The log of worker `worker` of the study's latest launch."""
    records = launches(study)
    if not records:
        raise HpoError(f"no launch of study {study!r} recorded here (.hpo/launches)")
    return launcher(records[-1].launcher).logs(records[-1], worker)
