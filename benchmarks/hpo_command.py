"""The `hpo` command as benchmarks run it: a subprocess, as a user runs it, timed; a failure ends the benchmark
with the command's last output."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def run_hpo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`hpo ARGS` in `cwd`; what it printed and its wall time in seconds. SystemExit if it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hpo", *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"hpo {' '.join(args)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done, wall
