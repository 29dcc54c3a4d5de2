"""Writing outputs: whole files or nothing, and an OS error on an output path as one line naming the path.

Every file a command writes for the user (exports, reports, metrics, predictions, launch records) goes through
`write_output` (or `output_dir` for a directory), so a full disk or a read-only directory is an error that names
the path and the reason, never a traceback, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from hpo.errors import HpoError

__all__ = ["OutputError", "output_dir", "write_output"]


class OutputError(HpoError):
    """An output path that cannot be written."""


def _failure(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        reason = "it is a directory; give a file name"
    existing = next((parent for parent in path.parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        reason = f"{existing} is a file, not a directory"
    return OutputError(f"{path}: cannot write: {reason}")


def output_dir(path: Path) -> Path:
    """`path` as a directory that exists and can be written to (created if missing)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the directory: {exc.strerror}") from None
    if not path.is_dir():
        raise OutputError(f"{path}: not a directory")
    if not os.access(path, os.W_OK):
        raise OutputError(f"{path}: cannot write: permission denied")
    return path


def write_output(path: Path, content: str | bytes | Callable[[Path], None]) -> Path:
    """Write `content` (text, bytes, or a function that writes a given path) to `path` atomically: into a
    sibling `.partial` file first, renamed over `path` once complete."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: cannot write: it is a directory; give a file name")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            partial.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            partial.write_bytes(content)
        else:
            content(partial)
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise _failure(path, exc) from None
    return path
