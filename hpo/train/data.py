"""Datasets for a study: source train, target train and target validation, cleaned, sampled and fingerprinted.

The target's test split is read only by `load_test`, which the search never calls.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hpo.errors import DataError
from hpo.train.corpora import builtin_file, read_tab
from hpo.train.sources import DatasetSpec

__all__ = ["Corpus", "TaskData", "load_corpus", "load_task_data", "load_test", "read_table", "stratified_split",
           "target_splits"]

log = logging.getLogger("hpo")

_READERS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class Corpus:
    """Texts with integer labels indexing `label_names` (the label set of the full training data)."""

    texts: tuple[str, ...]
    labels: np.ndarray
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> Corpus:
        return Corpus(tuple(self.texts[i] for i in indices), self.labels[indices], self.label_names)

    @cached_property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.label_names).encode())
        for text, label in zip(self.texts, self.labels.tolist(), strict=True):
            digest.update(f"{label}\x1f{text}\x1e".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class TaskData:
    """The target's training and validation splits, and the study's source task when it has exactly one (None when
    it searches several, loaded as trials draw them, or has none)."""

    source: Corpus | None
    target_train: Corpus
    target_val: Corpus

    def fingerprint(self, sources: Mapping[str, DatasetSpec | None], target_spec: DatasetSpec) -> dict[str, Any]:
        """What the data a study was created with is: the loaded source's size and content hash (the candidates'
        keys when the source is searched: they load later, if a trial draws them), the target's."""
        if self.source is not None:
            (source_spec,) = [spec for spec in sources.values() if spec is not None]
            source = {"name": source_spec.label, "train": len(self.source), "hash": self.source.content_hash}
        else:
            source = {"candidates": list(sources)}
        return {
            "source": source,
            "target": {
                "name": target_spec.label,
                "train": len(self.target_train),
                "validation": len(self.target_val),
                "hash": hashlib.sha256(
                    (self.target_train.content_hash + self.target_val.content_hash).encode()
                ).hexdigest(),
            },
        }


def load_task_data(source: DatasetSpec | None, target: DatasetSpec, *, validation_size: float | int,
                   seed: int) -> TaskData:
    """Read both training splits (no source: None), subsample them, and take the target's validation split: its own
    (validation_path, validation_split), or carved from its training split (stratified, seeded)."""
    corpus = load_corpus(source, "source", seed) if source is not None else None
    return TaskData(corpus, *target_splits(target, validation_size=validation_size, seed=seed))


def target_splits(target: DatasetSpec, *, validation_size: float | int, seed: int) -> tuple[Corpus, Corpus]:
    """The target's training and validation splits."""
    corpus = load_corpus(target, "target", seed)
    if target.has_validation:
        what = f"validation split {target.validation_label}"
        return corpus, _labelled(target, "validation", corpus.label_names, what)
    n_val = validation_size if isinstance(validation_size, int) else round(validation_size * len(corpus))
    n_classes = len(np.unique(corpus.labels))
    if not 1 <= n_val <= len(corpus) - n_classes:
        raise DataError(
            f"[validation_size] {validation_size} leaves {len(corpus) - n_val} training and {n_val} "
            f"validation documents of the {len(corpus)} of target {target.label}; each of its {n_classes} "
            f"classes needs a training document, so at most {len(corpus) - n_classes} can validate"
        )
    val_idx, train_idx = stratified_split(corpus.labels, n_val, np.random.default_rng(seed + 1), keep_one_in_rest=True)
    return corpus.take(train_idx), corpus.take(val_idx)


def load_test(spec: DatasetSpec, label_names: tuple[str, ...]) -> Corpus:
    """The held-out test split, labelled in the training label set. For final evaluation only."""
    return _labelled(spec, "test", label_names, f"test split {spec.test_label}")


def _labelled(spec: DatasetSpec, split: str, label_names: tuple[str, ...], what: str) -> Corpus:
    """A held-out split (validation or test) labelled in the training label set."""
    texts, labels = _read(spec, split)
    texts, labels = _clean(texts, labels, what)
    if not texts:
        raise DataError(f"{what}: no usable rows (every text or label is empty)")
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise DataError(f"{what}: labels not in the training data: {', '.join(unknown[:10])}"
                        f"{' …' if len(unknown) > 10 else ''} (training labels: {', '.join(label_names[:10])}"
                        f"{' …' if len(label_names) > 10 else ''})")
    return Corpus(tuple(texts), np.array([index[label] for label in labels], dtype=np.int64), label_names)


def load_corpus(spec: DatasetSpec, role: str, seed: int) -> Corpus:
    """A dataset's training split (`role`: source or target, for messages), cleaned and subsampled."""
    texts, labels = _read(spec, "train")
    texts, labels = _clean(texts, labels, f"{role} {spec.label}")
    if not texts:
        raise DataError(f"{role} {spec.label}: no usable rows (every text or label is empty)")
    label_names = tuple(sorted(set(labels)))
    if len(label_names) < 2:
        raise DataError(f"{role} {spec.label}: the label column has one class ({label_names[0]!r}); need two")
    index = {name: i for i, name in enumerate(label_names)}
    corpus = Corpus(tuple(texts), np.array([index[label] for label in labels], dtype=np.int64), label_names)
    if spec.max_samples is not None and spec.max_samples > len(corpus):
        raise DataError(f"[{role} -> max_samples] {spec.max_samples} is more than the {len(corpus)} usable rows of "
                        f"{spec.label}; leave max_samples out to use every row")
    if spec.max_samples is None or spec.max_samples == len(corpus):
        return corpus
    taken, _ = stratified_split(corpus.labels, spec.max_samples, np.random.default_rng(seed))
    return corpus.take(np.sort(taken))


def stratified_split(
    labels: np.ndarray, n_first: int, rng: np.random.Generator, *, keep_one_in_rest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified sample of `n_first` items, and of the rest.

    Written by hand because scikit-learn's stratified splitters refuse classes with a single member, which
    small real corpora (R52) have. Quotas follow class shares; leftover seats go to the largest remainders.
    `keep_one_in_rest` leaves every class at least one item in the rest (a validation split must not take
    the only training example of a class); ValueError when `n_first` cannot be taken so.
    """
    classes, counts = np.unique(labels, return_counts=True)
    cap = counts - 1 if keep_one_in_rest else counts
    if n_first > cap.sum():
        raise ValueError(f"cannot take {n_first} of {len(labels)} items, {cap.sum()} at most")
    exact = np.minimum(counts * n_first / len(labels), cap)
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    while quota.sum() < n_first:  # leftover seats, a seat a class, largest remainders first, never past a cap
        for i in order:
            if quota[i] < cap[i] and quota.sum() < n_first:
                quota[i] += 1
    first, rest = [], []
    for cls, take in zip(classes, quota, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        first.append(members[:take])
        rest.append(members[take:])
    return rng.permutation(np.concatenate(first)), rng.permutation(np.concatenate(rest))


def _clean(texts: list[Any], labels: list[Any], what: str) -> tuple[list[str], list[str]]:
    keep_texts, keep_labels = [], []
    for text, label in zip(texts, labels, strict=True):
        text, label = _as_str(text), _as_str(label)
        if text and label:
            keep_texts.append(text)
            keep_labels.append(label)
    dropped = len(texts) - len(keep_texts)
    if dropped:
        log.warning("%s: dropped %d of %d rows with an empty text or label", what, dropped, len(texts))
    return keep_texts, keep_labels


def _as_str(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an int label column with a gap is read as floats: 1.0 means label "1"
    return str(value).strip()


def _read(spec: DatasetSpec, split: str) -> tuple[list[Any], list[Any]]:
    """`split` (train, validation or test) of a dataset, as raw texts and labels."""
    if spec.builtin is not None:
        return read_tab(builtin_file(spec.builtin, split))
    if spec.path is not None:
        path = {"train": spec.path, "validation": spec.validation_path, "test": spec.test_path}[split]
        if path is None:
            raise DataError(f"target {spec.label}: no test_path, so there is no test split to evaluate on; "
                            "add test_path: FILE to the target in the study file")
        return _read_file(Path(path), spec.text_column, spec.label_column)
    return _read_hub(spec, {"train": spec.train_split, "validation": spec.validation_split,
                            "test": spec.test_split}[split])


def read_table(path: Path) -> Any:
    """A CSV, TSV, JSON/JSONL or Parquet file as a pandas DataFrame of strings; DataError if it can't be."""
    import pandas as pd

    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(_READERS)}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
        if kind in ("json", "jsonl"):
            return pd.read_json(path, lines=kind == "jsonl" or _looks_like_jsonl(path), dtype=False)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except Exception as exc:  # pandas raises many types; all mean "this file does not parse"
        raise DataError(f"{path}: cannot read as {kind}: {exc}") from None


def _read_file(path: Path, text_column: str, label_column: str) -> tuple[list[Any], list[Any]]:
    frame = read_table(path)
    missing = [column for column in (text_column, label_column) if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"columns: {', '.join(map(str, frame.columns)) or 'none'} (set text_column / label_column)"
        )
    return frame[text_column].tolist(), frame[label_column].tolist()


def _looks_like_jsonl(path: Path) -> bool:
    with path.open() as handle:
        return handle.read(1) == "{"


def _read_hub(spec: DatasetSpec, split: str | None) -> tuple[list[Any], list[Any]]:
    import datasets

    if split is None:
        raise DataError(f"hub dataset {spec.hub}: no test_split given, so there is no test split to evaluate on")
    try:
        data = datasets.load_dataset(spec.hub, spec.hub_config, split=split)
    except Exception as exc:  # network, unknown id, unknown split: all are the user's to fix
        raise DataError(f"hub dataset {spec.hub} (split {split}): cannot load: {exc}") from None
    missing = [c for c in (spec.text_column, spec.label_column) if c not in data.column_names]
    if missing:
        raise DataError(
            f"hub dataset {spec.hub}: missing column(s) {', '.join(map(repr, missing))}; "
            f"columns: {', '.join(data.column_names)}"
        )
    labels = data[spec.label_column]
    feature = data.features[spec.label_column]
    if hasattr(feature, "int2str"):  # ClassLabel: keep the names, so train and test agree on them
        labels = [feature.int2str(label) if label is not None and label >= 0 else None for label in labels]
    return list(data[spec.text_column]), list(labels)
