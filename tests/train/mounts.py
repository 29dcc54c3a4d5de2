"""Real read-only and full file systems for the fault tests. Tests run as root (here and in CI), and a root
process writes through any file mode, so a mode bit proves nothing: these mount a read-only bind of a folder and
a tiny tmpfs. Where mounting is not allowed they skip, and under CI=true they fail (tests/ci.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.ci import unavailable


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        unavailable(f"mount {' '.join(args)} is not allowed here ({done.stderr.strip()}); the fault tests need "
                    "a real read-only or full file system (run as root with CAP_SYS_ADMIN)")


def _unmount(point: Path) -> None:
    # Lazily when busy: a memory map of a file under it may outlive the test by a garbage collection.
    if subprocess.run(["umount", str(point)], capture_output=True, timeout=60).returncode != 0:
        subprocess.run(["umount", "-l", str(point)], check=True, capture_output=True, timeout=60)


@contextmanager
def read_only(folder: Path, at: Path) -> Iterator[Path]:
    """`folder`, seen read-only at `at` (a bind mount remounted ro): as a cluster mounts a prepared cache."""
    at.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(at))
    try:
        _mount("-o", "remount,bind,ro", str(at))
        yield at
    finally:
        _unmount(at)


@contextmanager
def tmpfs(at: Path, size: int) -> Iterator[Path]:
    """A file system of `size` bytes at `at`: a disk that fills up."""
    at.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at))
    try:
        yield at
    finally:
        _unmount(at)
