"""A fixed train/test split for a source that ships none: whitespace normalised, duplicates removed, then each
text placed by its SHA-256 alone.

Hashing rather than a seeded shuffle makes the split a function of the text: the same on every machine, under
every numpy version, whatever order the source lists the texts in. Placing each text on its own (not by its rank
within a class) puts a text on the same side in every dataset that holds it: rotten-tomatoes and movie-snippets
share thousands of snippets, and neither's test texts may sit in the other's training split. Each class gets its
share of test texts within sampling noise rather than exactly. Duplicates are removed first, so one text can never
be on both sides.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

__all__ = ["TEST_PERCENT", "Rows", "deduplicate", "hash_split", "is_test_text", "normalise"]

TEST_PERCENT = 20

Rows = list[tuple[str, str]]


def normalise(text: str) -> str:
    """Runs of whitespace (newlines, tabs) as one space: a `.tab` row is one line, and tokenisers ignore them."""
    return " ".join(text.split())


def deduplicate(rows: Iterable[tuple[str, str]]) -> Rows:
    """Each normalised text once, at its first place, with its label. A text given two different labels is
    dropped altogether: either label would be noise. Rows with an empty text or label are dropped."""
    labels: dict[str, set[str]] = defaultdict(set)
    for text, label in rows:
        text, label = normalise(text), normalise(label)
        if text and label:
            labels[text].add(label)
    return [(text, next(iter(found))) for text, found in labels.items() if len(found) == 1]


def hash_split(rows: Rows) -> tuple[Rows, Rows]:
    """Train and test rows of deduplicated `rows`, each in source order. A text is a test text when the first 64
    bits of its UTF-8 SHA-256, as a fraction of 2**64, fall below TEST_PERCENT %."""
    train: Rows = []
    test: Rows = []
    for row in rows:
        (test if is_test_text(row[0]) else train).append(row)
    return train, test


def is_test_text(text: str) -> bool:
    """Whether `text` (normalised) belongs to the test split of any built-in dataset that holds it."""
    bits = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return bits * 100 < TEST_PERCENT * 2**64  # integers: no float rounding to differ across machines
