"""A barrier inside any worker process, installed at interpreter start-up (Python imports `sitecustomize` from
sys.path) when HPO_TEST_BARRIER names a directory: put this directory on PYTHONPATH of a real `hpo run`, a local
launch or a Slurm task, and nothing in the product is changed or patched from outside the process.

The first `trial.report` of the first process to claim the barrier stores its value as usual, then writes
`DIR/reached` (JSON: pid, trial number) and waits until `DIR/release` exists. A test waits for `reached`, so that
a kill, a signal or a database restart lands while the trial is RUNNING with at least one stored evaluation, every
time, instead of polling the storage and hoping the trial is still running when the signal arrives. Other
processes sharing the directory (a requeued task, the other workers) find it claimed and run on; with
HPO_TEST_BARRIER_HOLDERS=N the first N processes each stand there (the k-th writes `reached` for k = 0, else
`reached-k`), so a signal can land in N workers' trials at once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _install(folder: Path) -> None:
    import optuna

    report = optuna.trial.Trial.report
    state = {"done": False}

    def report_then_wait(self: optuna.trial.Trial, value: float, step: int) -> None:
        report(self, value, step)
        if state["done"]:
            return
        state["done"] = True
        for k in range(int(os.environ.get("HPO_TEST_BARRIER_HOLDERS", "1"))):
            try:
                os.close(os.open(folder / f"claimed-{k}", os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                continue
        else:
            return  # as many processes as asked stand at the barrier already
        reached = folder / ("reached" if k == 0 else f"reached-{k}")
        reached.with_suffix(".partial").write_text(json.dumps({"pid": os.getpid(), "trial": self.number}))
        reached.with_suffix(".partial").replace(reached)
        while not (folder / "release").exists():
            time.sleep(0.02)

    optuna.trial.Trial.report = report_then_wait


if os.environ.get("HPO_TEST_BARRIER"):
    _install(Path(os.environ["HPO_TEST_BARRIER"]))
