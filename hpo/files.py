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

from hpo.errors import OutputError

__all__ = ["html_page", "output_dir", "write_output"]

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


# The look every page shares: the report, the transfer effect, the confusion matrix.
_BASE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1300px;
       padding: 0 16px; color: #222; }
h1 { margin-bottom: 4px; }
h2 { margin: 32px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { color: #444; margin: 4px 0 8px; }
"""


def html_page(title: str, body: str, *, style: str = "") -> str:
    """One self-contained HTML page: `title` is escaped here, `body` is HTML the caller escaped."""
    import html

    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_BASE_STYLE}{style}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
