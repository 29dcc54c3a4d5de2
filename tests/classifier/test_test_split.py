"""The target's test split is never read during a search: an audit hook watches every file the process opens."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from hpo.search.worker import run_file
from hpo.train.corpora import builtin_file
from tests.builders import write_study

_opened: list[str] = []
_watching = False


def _audit(event: str, args: tuple) -> None:
    if _watching and event == "open" and isinstance(args[0], str | bytes | Path):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; `_watching` switches this one on and off


def test_search_never_opens_the_target_test_file(tmp_path, tiny_model_dir):
    global _watching
    test_file = builtin_file("reuters-r8", "test").resolve()  # the corpora are cached before watching starts
    train_file = builtin_file("reuters-r8", "train").resolve()
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=2)
    _opened.clear()
    _watching = True
    try:
        result = run_file(spec, storage=f"sqlite:///{tmp_path / 'hpo.db'}", console=Console(quiet=True))
    finally:
        _watching = False
    assert len(result.study.trials) == 2
    opened = {Path(p).resolve() for p in _opened if p}
    assert train_file in opened, "the hook sees the files the search reads"
    assert test_file not in opened
