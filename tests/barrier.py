"""`hpo` with a barrier: the worker stops mid-trial, right after its first reported evaluation, until released.

Run as `python tests/barrier.py run STUDY ...` (any `hpo` arguments) with `HPO_TEST_BARRIER=DIR`. The first
`trial.report` of this process stores its value as usual, then writes `DIR/reached` (JSON: pid, trial number)
and waits until `DIR/release` exists. A test waits for `reached`, so that a kill, a signal or a database
restart lands while the trial is RUNNING with at least one stored evaluation, every time, instead of polling
the storage and hoping the trial is still running when the signal arrives.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import optuna


def _install(folder: Path) -> None:
    report = optuna.trial.Trial.report
    state = {"done": False}

    def report_then_wait(self: optuna.trial.Trial, value: float, step: int) -> None:
        report(self, value, step)
        if state["done"]:
            return
        state["done"] = True
        (folder / "reached.partial").write_text(json.dumps({"pid": os.getpid(), "trial": self.number}))
        (folder / "reached.partial").replace(folder / "reached")
        while not (folder / "release").exists():
            time.sleep(0.02)

    optuna.trial.Trial.report = report_then_wait


if __name__ == "__main__":
    _install(Path(os.environ["HPO_TEST_BARRIER"]))
    from hpo.cli import main

    sys.argv = ["hpo", *sys.argv[1:]]
    main()
