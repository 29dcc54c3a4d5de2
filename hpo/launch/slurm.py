"""`hpo launch slurm`: a Slurm job array whose every task is one `hpo run` worker on the same study, submitted
through submitit.

What runs where:

- The job script comes from submitit's own sbatch renderer (`render_job_script` in slurm_script.py, a pure function
  whose keyword-only signature is the list of legal options). Each array task runs `python -m submitit.core._submit
  LOG_DIR`, which loads the task's pickle: a `SlurmWorker` holding the study file's absolute path and the worker's
  options. It runs `run_and_report` in that process, what `hpo run STUDY` runs, and ends with the exit code
  `hpo run` would (hpo/preemption.py's `exit_code`).
- The storage URL reaches the tasks only through the environment: sbatch exports the submitting environment, and
  `--storage` is put into that environment (`HPO_STORAGE`) for the `sbatch` call only. It is never written into
  the job script, the pickles or the logs (the worker prints it masked). Only PostgreSQL is accepted: every task,
  on any node, must reach the same database.

Preemption and time limits. The script asks Slurm for SIGUSR2 90 s before the time limit (`--signal=USR2@90`,
submitit's signal for time-outs and preemption; `scancel --signal=USR2 JOB_TASK` sends it by hand). Inside the
task submitit installs its handlers first (SIGUSR2: checkpoint and requeue; SIGTERM: ignored); `SlurmWorker` makes
SIGTERM stop the task while the model loads, and the worker's trial loop installs its own handler for both over
them (the running trial ends as FAIL `preempted` and its retry is queued), restoring them when the loop ends. Then:

- SIGUSR2: `SlurmWorker` hands the signal back to submitit's handler, which requeues the task (`scontrol requeue
  JOB_TASK`; the worker is checkpointable and `checkpoint()` resubmits it as it is). Slurm starts a requeued task
  about two minutes later; it continues the study, or ends at once if the budget is spent. submitit counts the
  signal as a time-out once the task ran min(80% of --time, --time - 10 min) and requeues at most 3 time-outs per
  task; earlier signals are preemptions, always requeued.
- SIGTERM (`scancel`, `hpo stop`, Slurm's own preemption, which requeues or cancels the job itself): the task
  exits with code 75 (as `hpo run` does) and is not requeued.

Either way the preempted trial's retry is run by whichever worker asks for a trial next: another task of the array
or the requeued one.

Launches are recorded in `.hpo/launches/<study>.json` (job id, log dir, launcher), so `hpo stop` and `hpo logs`
find them.
"""

from __future__ import annotations

import inspect
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, ClassVar, Literal

import submitit

from hpo.errors import HpoError, StorageUnavailable
from hpo.launch.interface import Launch, StudyFile
from hpo.launch.records import SlurmLaunchRecord, record_launch
from hpo.launch.slurm_script import (
    NOT_OPTIONS,
    OPTION_HELP,
    OPTIONS_FROM,
    exports_storage,
    log_folder,
    render_job_script,
    require_shared_storage,
    sbatch_parameters,
)
from hpo.preemption import Preempted, exit_code
from hpo.settings import StorageURL

__all__ = ["SlurmLauncher", "SlurmWorker", "launch_log_paths", "slurm_log_path"]


class SlurmLauncher:
    name: ClassVar[str] = "slurm"
    OPTIONS_FROM = staticmethod(OPTIONS_FROM)
    NOT_OPTIONS: ClassVar[tuple[str, ...]] = NOT_OPTIONS
    OPTION_HELP: ClassVar[dict[str, str]] = OPTION_HELP

    def check_storage(self, target: StorageURL) -> tuple[str, ...]:
        require_shared_storage(target)
        if target.local_only:
            return ("the storage's host is this machine (localhost): tasks on other nodes cannot reach it",)
        return ()

    def render(self, study: StudyFile, **options: Any) -> str:
        return render_job_script(name=study.name, **options)

    def submit(self, study: StudyFile, target: StorageURL, *, storage: str | None, **options: Any) -> Launch:
        """Submit the job array through submitit; `--storage` reaches the tasks as HPO_STORAGE in the submission's
        environment, never as an argument."""
        script = self.render(study, **options)
        export = os.environ.get("SBATCH_EXPORT")
        if export and not exports_storage(export):
            raise HpoError(f"SBATCH_EXPORT={export} keeps HPO_STORAGE from the tasks; unset it or add HPO_STORAGE")
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            raise HpoError("sbatch and srun are not on PATH: run hpo launch slurm on a Slurm login node")
        # the same options, defaults and checks as the script just rendered: render_job_script's signature
        chosen = inspect.signature(render_job_script).bind(name=study.name, **options)
        chosen.apply_defaults()
        folder = log_folder(study.name, chosen.arguments["log_dir"])
        executor = submitit.SlurmExecutor(folder=folder, python=chosen.arguments["python"])
        executor.update_parameters(**sbatch_parameters(
            **{key: value for key, value in chosen.arguments.items() if key not in ("log_dir", "array", "python")}))
        tasks = int(chosen.arguments["array"])
        worker = SlurmWorker(str(study.path), n_trials=study.n_trials)
        with submitit.helpers.environment_variables(**({"HPO_STORAGE": storage} if storage else {})):
            try:
                with redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint; the error says it once
                    jobs = executor.submit_array([worker] * tasks)
            except submitit.core.utils.FailedJobError as exc:  # sbatch refused the script
                raise HpoError(f"sbatch refused the job: {_sbatch_error(exc)}") from None
        job_id = jobs[0].job_id.split("_")[0]
        record = record_launch(SlurmLaunchRecord(study=study.name, job_id=job_id, log_dir=str(folder), tasks=tasks,
                                                 study_file=str(study.path), host=socket.gethostname()))
        message = (f"submitted Slurm job {job_id}: {tasks} worker(s) on study {study.name}, logs in {folder}\n"
                   f"  hpo status {study.name}  ·  hpo logs {study.name} --worker K  ·  hpo stop {study.name}")
        return Launch(study.name, script, message, record=record)

    def stop(self, record: SlurmLaunchRecord) -> str:
        return f"slurm: {_stop(record.job_id)}"

    def logs(self, record: SlurmLaunchRecord, worker: int) -> str:
        found = [p for p in launch_log_paths(record, worker) if p.exists()]  # stdout, then stderr
        if not found:
            raise HpoError(f"no log of Slurm task {worker} yet (is it still pending? squeue -j {record.job_id})")
        return "".join(p.read_text(errors="replace") for p in found)


def _sbatch_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    line = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1])
    return line.removeprefix("sbatch: error: ")


class SlurmWorker(submitit.helpers.Checkpointable):
    """What one array task runs: what `hpo run STUDY` runs, in the task's process. Holds the study file's path
    and the worker's options, nothing else (it is pickled into the log dir); the storage comes from HPO_STORAGE.

    Checkpointable: on SIGUSR2 submitit requeues the task with `checkpoint()`, i.e. this same worker.
    """

    def __init__(self, study_file: str, *, n_trials: int | None = None) -> None:
        self.study_file = study_file
        self.n_trials = n_trials

    def __call__(self) -> dict[str, Any]:
        from rich.console import Console

        from hpo.search.worker import quiet_libraries, run_file
        from hpo.settings import resolve_storage
        from hpo.spec import load_spec

        quiet_libraries(log_to_stderr=True)
        console = Console(width=None if "COLUMNS" in os.environ else 160)
        try:
            with _sigterm_preempts():
                require_shared_storage(resolve_storage(None, load_spec(self.study_file).storage))
                result = run_file(Path(self.study_file), console=console, n_trials=self.n_trials)
        except (Preempted, HpoError, StorageUnavailable) as exc:  # a storage outage exits 75: requeue it
            code = exit_code(exc)
            Console(stderr=True, width=console.width).print(_ended(exc), markup=False, highlight=False, soft_wrap=True)
            if isinstance(exc, Preempted) and str(exc) == "SIGUSR2" and callable(signal.getsignal(signal.SIGUSR2)):
                # submitit's handler is back in place: it checkpoints this worker and requeues the task (or says
                # why not: timed out too often), and exits.
                signal.raise_signal(signal.SIGUSR2)
            sys.exit(code)
        return {"study": result.study.study_name, "budget": result.budget, "wall_seconds": result.wall_seconds}


def _ended(exc: BaseException) -> str:
    if isinstance(exc, Preempted):
        return f"preempted ({exc}): a trial this worker was running is FAIL `preempted` and queued for a retry"
    return f"error: {exc}"


@contextmanager
def _sigterm_preempts() -> Iterator[None]:
    """SIGTERM outside the trial loop too (while the model loads): submitit ignores it, but a task that got it is
    about to be killed, so stop now. Inside the loop the worker's own handler takes over."""

    def preempt(signum: int, _frame: object) -> None:
        raise Preempted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, preempt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- logs and stop ---------------------------------------------------------------------------------------------


def slurm_log_path(log_dir: str | Path, job_id: str, task: int | None, *,
                   stream: Literal["out", "err"] = "out") -> Path:
    """A task's stdout (or stderr) file: `LOG_DIR/<job>_<task>_0_log.out` for array task `task`, or
    `LOG_DIR/<job>_0_log.out` for a one-task launch (task None), as submitit names them."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(Path(log_dir), job_id=str(job_id) if task is None else f"{job_id}_{task}", task_id=0)
    return paths.stdout if stream == "out" else paths.stderr


def launch_log_paths(launch: SlurmLaunchRecord, worker: int) -> tuple[Path, Path]:
    """(stdout, stderr) of worker `worker` (its array index) of a recorded Slurm launch."""
    if not 0 <= worker < launch.tasks:
        raise HpoError(f"Slurm job {launch.job_id} has workers 0 .. {launch.tasks - 1}, not {worker}")
    task = worker if launch.tasks > 1 else None
    out, err = (slurm_log_path(launch.log_dir, launch.job_id, task, stream=s) for s in ("out", "err"))
    return out, err


def _stop(job_id: str) -> str:
    """Cancel a launch: `scancel JOB` ends every task of the array, running or pending. Slurm sends SIGTERM first,
    so running trials are failed as `preempted` and queued for a retry (whichever worker runs next takes them).
    A job with nothing left in the queue is reported, not an error (scancel itself says nothing then)."""
    if shutil.which("scancel") is None or shutil.which("squeue") is None:
        raise HpoError("scancel is not on PATH: run hpo stop on a Slurm login node")
    queued = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%i"], capture_output=True, text=True,
                            timeout=60)
    tasks = queued.stdout.split() if queued.returncode == 0 else []
    if not tasks:
        return f"Slurm job {job_id} has no task queued or running; nothing to cancel"
    done = subprocess.run(["scancel", str(job_id)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise HpoError(f"scancel {job_id} failed: {reason[-1] if reason else f'exit code {done.returncode}'}")
    return (f"cancelled Slurm job {job_id} ({len(tasks)} task{'s' if len(tasks) != 1 else ''} queued or running); "
            "running trials are FAIL `preempted` and queued for a retry")
