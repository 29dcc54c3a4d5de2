"""Orange's `.tab` format, in which every built-in split sits in the cache: three header lines, then one
`Category<TAB>Text` row a line. The derived datasets are written in it too, so one reader serves them all."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hpo.files import write_output

__all__ = ["read_tab", "write_tab"]

_HEADER = "Category\tText\nd\tstring\nclass\t\n"


def read_tab(path: Path) -> tuple[list[str], list[str]]:
    """Texts and labels of a `.tab` file. Blank lines are not rows."""
    texts: list[str] = []
    labels: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number < 3 or not line.strip():
                continue
            label, _, text = line.rstrip("\n").partition("\t")
            labels.append(label)
            texts.append(text)
    return texts, labels


def write_tab(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Write `(text, label)` rows atomically. Texts and labels must hold no newline (`normalise` sees to it)."""
    body = "".join(f"{label}\t{text}\n" for text, label in rows)
    return write_output(path, _HEADER + body)
