"""Datasets: local files and built-in corpora load, get cleaned, sampled (stratified, seeded) and split."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.errors import DataError
from hpo.spec import DatasetSpec
from hpo.train.data import Corpus, TaskData, load_task_data, stratified_split

SHARES = {"earn": 20, "acq": 12, "grain": 8}  # 40 rows, three classes of unequal size


def rows(shares: dict[str, int], prefix: str = "doc") -> pd.DataFrame:
    """A frame with unique texts in `body` and labels in `topic`."""
    labels = [label for label, count in shares.items() for _ in range(count)]
    return pd.DataFrame({
        "id": range(len(labels)),
        "body": [f"{prefix} {i}: a short note about {label}" for i, label in enumerate(labels)],
        "topic": labels,
    })


def save(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(path)
    return path


def dataset(path: Path, max_samples: int | None = None) -> DatasetSpec:
    return DatasetSpec(path=path, text_column="body", label_column="topic", max_samples=max_samples)


def load(
    source: DatasetSpec,
    target: DatasetSpec | None = None,
    *,
    validation_size: float | int = 0.25,
    seed: int = 0,
) -> TaskData:
    return load_task_data(source, target or source, validation_size=validation_size, seed=seed)


def decoded(corpus: Corpus) -> list[tuple[str, str]]:
    pairs = zip(corpus.texts, corpus.labels.tolist(), strict=True)
    return [(text, corpus.label_names[label]) for text, label in pairs]


def assert_stratified(counts: Counter, shares: dict[str, int], n: int) -> None:
    """Each class has its exact share of n documents, give or take less than one."""
    total = sum(shares.values())
    assert sum(counts.values()) == n
    for label, count in shares.items():
        assert abs(counts[label] - n * count / total) < 1, (label, counts, n)


# -- local files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_local_files_load_with_named_columns(tmp_path: Path, suffix: str) -> None:
    frame = rows(SHARES)
    path = save(frame, tmp_path / f"notes{suffix}")
    data = load(dataset(path))
    assert data.source.label_names == ("acq", "earn", "grain")
    expected = set(zip(frame["body"], frame["topic"], strict=True))
    assert set(decoded(data.source)) == expected
    assert len(data.source) == 40
    assert data.source.labels.dtype == np.int64


def test_a_missing_column_names_the_file_and_the_columns(tmp_path: Path) -> None:
    path = save(rows(SHARES), tmp_path / "notes.csv")
    spec = DatasetSpec(path=path, text_column="text", label_column="topic")
    with pytest.raises(DataError) as caught:
        load(spec)
    message = str(caught.value)
    assert str(path) in message
    assert "missing column 'text'" in message
    assert "columns: id, body, topic" in message

    both = DatasetSpec(path=path, text_column="text", label_column="label")
    with pytest.raises(DataError, match=r"missing columns 'text', 'label'; columns: id, body, topic"):
        load(both)


def test_a_header_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("body,topic\n")
    with pytest.raises(DataError, match="no usable rows") as caught:
        load(dataset(path))
    assert str(path) in str(caught.value)


def test_a_file_whose_rows_are_all_empty_is_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"body": ["", "   ", "text without a label"], "topic": ["a", "b", ""]})
    path = save(frame, tmp_path / "blank.csv")
    with pytest.raises(DataError, match="no usable rows"):
        load(dataset(path))


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    path = save(rows({"earn": 40}), tmp_path / "one.parquet")
    with pytest.raises(DataError, match=r"one class \('earn'\); need two") as caught:
        load(dataset(path))
    assert str(path) in str(caught.value)


def test_rows_with_an_empty_text_or_label_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = rows(SHARES)
    bad = pd.DataFrame({"id": [90, 91, 92], "body": ["", "   ", "a note without a topic"],
                        "topic": ["earn", "acq", ""]})
    path = save(pd.concat([good, bad], ignore_index=True), tmp_path / "dirty.csv")
    with caplog.at_level(logging.WARNING, logger="hpo"):
        data = load(dataset(path))
    assert len(data.source) == 40
    assert "a note without a topic" not in data.source.texts
    assert all(text.strip() for text in data.source.texts)
    warnings = [r.getMessage() for r in caplog.records if r.name == "hpo" and r.levelno == logging.WARNING]
    assert any("dropped 3 of 43 rows" in message and str(path) in message for message in warnings), warnings


# -- max_samples ---------------------------------------------------------------------------------------------


def test_max_samples_is_stratified_and_seeded(tmp_path: Path) -> None:
    spec = dataset(save(rows(SHARES), tmp_path / "notes.csv"), max_samples=15)
    first = load(spec, seed=3).source
    again = load(spec, seed=3).source
    other = load(spec, seed=4).source
    assert len(first) == len(other) == 15
    assert first.texts == again.texts
    assert set(first.texts) != set(other.texts)
    for corpus in (first, other):
        assert_stratified(Counter(label for _, label in decoded(corpus)), SHARES, 15)
        assert set(decoded(corpus)) <= set(zip(rows(SHARES)["body"], rows(SHARES)["topic"], strict=True))


def test_sampling_keeps_the_full_label_set(tmp_path: Path) -> None:
    # 10 of 40 documents: a class of one gets 0.25 of a seat; the spare seat goes to 'earn' (0.5).
    spec = dataset(save(rows({"earn": 30, "acq": 9, "ship": 1}), tmp_path / "rare.csv"), max_samples=10)
    corpus = load(spec).source
    assert len(corpus) == 10
    assert corpus.label_names == ("acq", "earn", "ship")
    assert "ship" not in {label for _, label in decoded(corpus)}  # dropped by sampling ...
    assert int(corpus.labels.max()) < len(corpus.label_names)  # ... yet the indices still mean the same


def test_max_samples_equal_to_the_size_keeps_everything_and_above_it_is_refused(tmp_path: Path) -> None:
    path = save(rows(SHARES), tmp_path / "notes.csv")
    assert len(load(dataset(path, max_samples=40)).source) == 40
    refused = r"\[source -> max_samples\] 400 is more than the 40 usable rows of .*notes.csv"
    with pytest.raises(DataError, match=refused):
        load(dataset(path, max_samples=400))


@pytest.mark.parametrize("n_first", [1, 3, 5, 9, 16])
def test_stratified_split_handles_single_member_classes(n_first: int) -> None:
    labels = np.array([0] * 10 + [1] + [2] + [3] * 4)
    first, rest = stratified_split(labels, n_first, np.random.default_rng(7))
    assert len(first) == n_first
    assert len(rest) == len(labels) - n_first
    assert sorted(np.concatenate([first, rest]).tolist()) == list(range(len(labels)))
    counts = Counter(labels[first].tolist())
    shares = {0: 10, 1: 1, 2: 1, 3: 4}
    for cls, count in shares.items():
        assert abs(counts[cls] - n_first * count / len(labels)) < 1, (cls, counts)


def test_stratified_split_is_seeded() -> None:
    labels = np.array([0] * 12 + [1] * 8)
    a = stratified_split(labels, 6, np.random.default_rng(1))
    b = stratified_split(labels, 6, np.random.default_rng(1))
    c = stratified_split(labels, 6, np.random.default_rng(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert set(a[0].tolist()) != set(c[0].tolist())


# -- the validation split ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("validation_size", "n_val"), [(0.25, 10), (0.2, 8), (7, 7)])
def test_validation_is_carved_from_the_target_train_split(
    tmp_path: Path, validation_size: float | int, n_val: int
) -> None:
    source = dataset(save(rows({"a": 15, "b": 15}, prefix="source"), tmp_path / "source.csv"))
    target_frame = rows(SHARES, prefix="target")
    missing_test = tmp_path / "never-read.csv"
    target = DatasetSpec(path=save(target_frame, tmp_path / "target.jsonl"), test_path=missing_test,
                         text_column="body", label_column="topic")
    data = load(source, target, validation_size=validation_size, seed=5)

    assert len(data.source) == 30  # the source keeps all its documents
    assert len(data.target_val) == n_val
    assert len(data.target_train) == 40 - n_val
    train, val = set(data.target_train.texts), set(data.target_val.texts)
    assert not train & val
    assert train | val == set(target_frame["body"])  # nothing lost, nothing from the source
    assert data.target_val.label_names == data.target_train.label_names == ("acq", "earn", "grain")
    assert_stratified(Counter(label for _, label in decoded(data.target_val)), SHARES, n_val)


def test_validation_comes_out_of_the_sampled_target(tmp_path: Path) -> None:
    target = dataset(save(rows(SHARES), tmp_path / "target.parquet"), max_samples=20)
    data = load(target, validation_size=0.25)
    assert (len(data.target_train), len(data.target_val)) == (15, 5)
    assert not set(data.target_train.texts) & set(data.target_val.texts)


@pytest.mark.parametrize(("size", "left"), [(40, 0), (39, 1), (38, 2)])
def test_a_validation_size_that_leaves_a_class_without_training_data_is_refused(
    tmp_path: Path, size: int, left: int
) -> None:
    spec = dataset(save(rows(SHARES), tmp_path / "notes.csv"))
    with pytest.raises(DataError, match=rf"\[validation_size\] {size} leaves {left} training and {size} validation "
                                        r"documents of the 40 .* each of its 3 classes needs a training document, "
                                        r"so at most 37 can validate"):
        load(spec, validation_size=size)


def test_the_largest_validation_size_keeps_one_training_document_per_class(tmp_path: Path) -> None:
    data = load(dataset(save(rows(SHARES), tmp_path / "notes.csv")), validation_size=37)
    assert len(data.target_val) == 37
    assert sorted(data.target_train.labels.tolist()) == [0, 1, 2]


# -- fingerprints and the built-in corpora ---------------------------------------------------------------


def test_the_fingerprint_is_stable_and_follows_max_samples(tmp_path: Path) -> None:
    path = save(rows(SHARES), tmp_path / "notes.csv")
    source = dataset(path)
    target, smaller = dataset(path, max_samples=36), dataset(path, max_samples=30)
    first = load(source, target).fingerprint({"notes": source}, target)
    assert load(source, target).fingerprint({"notes": source}, target) == first
    changed = load(source, smaller).fingerprint({"notes": source}, smaller)
    assert changed != first
    assert changed["target"]["hash"] != first["target"]["hash"]
    assert changed["source"] == first["source"]
    assert (first["target"]["train"], first["target"]["validation"]) == (27, 9)
    assert (changed["target"]["train"], changed["target"]["validation"]) == (22, 8)

    sampled_source = dataset(path, max_samples=30)
    assert load(sampled_source, target).fingerprint({"notes": sampled_source}, target)["source"]["hash"] != (
        first["source"]["hash"]
    )


def test_builtin_reuters_r8_loads_all_eight_classes() -> None:
    spec = DatasetSpec(builtin="reuters-r8", max_samples=200)
    data = load(spec, validation_size=0.2)
    eight = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")
    assert data.source.label_names == eight
    assert data.target_train.label_names == eight
    assert len(data.source) == 200
    assert (len(data.target_train), len(data.target_val)) == (160, 40)
    assert all(text.strip() for text in data.source.texts)
    assert len(set(data.source.texts)) > 190  # real, distinct documents
