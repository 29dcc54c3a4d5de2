"""Calls to a tracker that can never fail a trial: each is retried through errors for a few seconds, and once one
has failed that long the tracker is off for the rest of the run, after one warning (not one per call)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TypeVar

from hpo.preemption import Preempted, preemption_deferred

__all__ = ["TRACKER_RETRY_S", "TrackerCalls", "set_environment"]

TRACKER_RETRY_S = 5.0
_FIRST_DELAY_S = 0.25
_LONGEST_DELAY_S = 1.0
_SHOWN_CHARS = 300

T = TypeVar("T")


class TrackerCalls:
    """Every call to one tracker (`name` in the warning). `scrub` takes secrets out of an error's text (a tracking
    URI's password appears in MLflow's connection errors); `warn` shows the one warning."""

    def __init__(self, name: str, warn: Callable[[str], None], scrub: Callable[[str], str] = str,
                 retry_s: float = TRACKER_RETRY_S) -> None:
        self.name = name
        self.off = False
        self._warn = warn
        self._scrub = scrub
        self._retry_s = retry_s

    def __call__(self, call: Callable[[], T]) -> T | None:
        """`call()`, or None once the tracker is off."""
        if self.off:
            return None
        deadline = time.monotonic() + self._retry_s
        delay = _FIRST_DELAY_S
        while True:
            try:
                # A preemption signal landing inside a tracker's client (a connection pool, a socket) is raised
                # when the call returns, as around storage calls; the trial is then failed as `preempted`.
                with preemption_deferred(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the trackers' own deprecation notes, repeated on every call
                    return call()
            except Preempted:
                raise
            except Exception as exc:  # whatever a tracker raises, the trial goes on
                if time.monotonic() + delay >= deadline:
                    self._give_up(exc)
                    return None
                time.sleep(delay)
                delay = min(delay * 2, _LONGEST_DELAY_S)

    def _give_up(self, exc: Exception) -> None:
        self.off = True
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shown = self._scrub(first_line)
        shown = shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "…"
        self._warn(f"{self.name} failed for {self._retry_s:g} s ({type(exc).__name__}: {shown}); not recording to "
                   f"{self.name} for the rest of this run, the trials go on")


def set_environment(values: Mapping[str, str]) -> Callable[[], None]:
    """`values` set in os.environ (where a tracker's client reads its options); returns what puts them back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore
