"""Preemption: SIGTERM (Kubernetes, `hpo stop`, local launchers) and SIGUSR2 (Slurm's warning before a time limit
or a preemption) stop the running trial at once; it ends FAIL `preempted`, its retry is queued, and the worker
exits with EXIT_PREEMPTED (75, EX_TEMPFAIL: "try again later"), which launchers treat as "requeue me".

A signal that lands inside a storage call is raised when the call returns, not in the middle of it: an exception
inside the database driver or the connection pool can leave a connection checked out (the worker then hangs on its
pool until the scheduler kills it) or a trial created but not yet known as this worker's. Main thread only: that is
where Python runs signal handlers.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hpo.errors import HpoError, StorageUnavailable

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_PREEMPTED", "Preempted", "exit_code", "preempt",
           "preemption_deferred", "preemption_signals"]

EXIT_ERROR = 1
EXIT_PREEMPTED = 75  # EX_TEMPFAIL
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

_calls_in_progress = 0
_pending: str | None = None


class Preempted(Exception):
    """The worker got SIGTERM (or Slurm's SIGUSR2): stop the trial now, fail it as `preempted`, retry it."""


def preempt(signal_name: str) -> None:
    """The signal handler's body: raise Preempted now, or when the current storage call returns."""
    global _pending
    if _calls_in_progress:
        _pending = signal_name
        return
    raise Preempted(signal_name)


@contextmanager
def preemption_deferred() -> Iterator[None]:
    """Around a storage call: a preemption signal that arrives meanwhile is raised once the call is complete."""
    global _calls_in_progress, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _calls_in_progress += 1
    try:
        yield
    finally:
        _calls_in_progress -= 1
        if not _calls_in_progress and _pending is not None:
            name, _pending = _pending, None
            raise Preempted(name)


@contextmanager
def preemption_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR2)) -> Iterator[None]:
    """While inside: `signals` raise Preempted (deferred past storage calls); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: object) -> None:
        preempt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code(exc: BaseException) -> int | None:
    """The exit code a worker ends with after `exc`, for every entry point (the CLI, a Slurm task): None for an
    exception that is a bug (shown with its traceback)."""
    if isinstance(exc, Preempted | StorageUnavailable):
        return EXIT_PREEMPTED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, HpoError):
        return EXIT_ERROR
    return None
