"""`hpo stop` and `hpo logs`: act on what `.hpo/launches/<study>.json` says was launched."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hpo.errors import HpoError
from hpo.launch.registry import launches

__all__ = ["stop_launches", "worker_log"]


def stop_launches(study: str) -> list[str]:
    records = launches(study)
    if not records:
        raise HpoError(f"no launch of study {study!r} recorded in {Path('.hpo/launches').resolve()}")
    done = []
    for record in records:
        stop = _STOPPERS.get(record["launcher"])
        if stop is None:
            raise HpoError(f"cannot stop a {record['launcher']} launch")
        done.append(stop(study, record))
    return done


def worker_log(study: str, worker: int) -> str:
    records = [r for r in launches(study) if r["launcher"] in ("local", "slurm")]
    if not records:
        raise HpoError(f"no local or Slurm launch of study {study!r} recorded here (.hpo/launches); "
                       "for Kubernetes use kubectl logs")
    record = records[-1]
    if record["launcher"] == "slurm":
        from hpo.launch.slurm import launch_log_paths

        found = [p for p in launch_log_paths(record, worker) if p.exists()]  # stdout, then stderr
        if not found:
            raise HpoError(f"no log of Slurm task {worker} yet (is it still pending? squeue -j {record['job_id']})")
        return "".join(p.read_text(errors="replace") for p in found)
    paths = dict(enumerate(map(Path, record.get("logs") or [])))
    path = paths.get(worker)
    if path is None or not path.exists():
        raise HpoError(f"no log for worker {worker} of study {study!r} (workers: {', '.join(map(str, paths))})")
    return path.read_text(errors="replace")


def _stop_local(study: str, record: dict) -> str:
    stopped = []
    for pid in record.get("pids", []):
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except ProcessLookupError:
            pass
    return f"local: sent SIGTERM to {len(stopped)} running worker(s) of {study!r}" if stopped else \
        f"local: no worker of {study!r} is running"


def _stop_slurm(study: str, record: dict) -> str:
    from hpo.launch.slurm import stop_slurm

    return f"slurm: {stop_slurm(record['job_id'])}"


def _stop_k8s(study: str, record: dict) -> str:
    from hpo.launch.k8s import stop_job

    stop_job(study, record.get("namespace", "default"))
    return f"k8s: deleted the Job(s) of {study!r} in namespace {record.get('namespace', 'default')}"


_STOPPERS = {"local": _stop_local, "slurm": _stop_slurm, "k8s": _stop_k8s}
