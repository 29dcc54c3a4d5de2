"""What a cluster does to a cache of reused activations. Each file of an entry, zeroed in place, truncated or
deleted: the next trial rebuilds the entry (one warning naming it and what was wrong) and its F1 curve is a fresh
cache's; in a read-only cache it stops in one line naming the entry. A read-only cache is read without a write,
and an entry missing there is computed into the trial's memory. A states file's blocks are reserved before it is
written, so a full disk is an error, not a SIGBUS. (A full disk and a prepared cache mounted read-only, through
`hpo`: test_cache_faults.py.)"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.train.activations import ActivationCacheError, Reuse
from hpo.train.loop import TrainResult
from tests.builders import REPO
from tests.train.fits import R8, encoded, fit, frozen_model, r8_corpus, tiny_encoder
from tests.train.mounts import read_only, tmpfs

DEPTH = 2  # of 3 layers: an entry of token rows
FILES = ("states.npy", "offsets.npy", "meta.json")
DAMAGES = ("zeroed", "truncated", "deleted")


@dataclass(frozen=True)
class Pristine:
    """A cache after one trial at DEPTH on a fresh cache, and that trial's F1 curve."""

    cache: Path
    data: R8
    encoder: torch.nn.Module
    curve: list[float]


def _use(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from hpo.settings import settings

    monkeypatch.setenv("HPO_CACHE", str(cache))
    settings.cache_clear()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, minilm_tokenizer) -> Pristine:
    cache = tmp_path_factory.mktemp("pristine") / "cache"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use(monkeypatch, cache)
        data = r8_corpus(minilm_tokenizer)
        encoder = tiny_encoder("bert", minilm_tokenizer)
        _, result = fit(encoder, data, DEPTH)
    assert result.reuse_record()["misses"] > 0  # it built the entries
    return Pristine(cache, data, encoder, _curve(result))


def _curve(result: TrainResult) -> list[float]:
    return [e.f1 for e in result.curve]


def _train_entry(pristine: Pristine) -> Path:
    """The entry of the training split's states at DEPTH, in the cache HPO_CACHE names now."""
    reuse = Reuse(frozen_model(pristine.encoder, DEPTH), DEPTH, pad_id=0, device=torch.device("cpu"), autocast=None)
    return reuse.entry(encoded(pristine.data)[0])


def _damage(file: Path, how: str) -> None:
    size = file.stat().st_size
    if how == "zeroed":  # what a failing disk loses: the data; a .npy keeps its header, so it still loads
        start = 10 + int.from_bytes(file.read_bytes()[8:10], "little") if file.suffix == ".npy" else 0
        with file.open("r+b") as handle:
            handle.seek(start)
            handle.write(bytes(size - start))
    elif how == "truncated":
        os.truncate(file, size // 2)
    else:
        file.unlink()


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_entry_is_rebuilt_and_the_trial_matches_a_fresh_cache(name, damage, pristine, tmp_path,
                                                                        monkeypatch, caplog):
    cache = shutil.copytree(pristine.cache, tmp_path / "cache")
    _use(monkeypatch, cache)
    entry = _train_entry(pristine)
    _damage(entry / name, damage)
    with caplog.at_level(logging.WARNING):
        _, result = fit(pristine.encoder, pristine.data, DEPTH)
    assert _curve(result) == pristine.curve
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"activation entry {entry} was damaged (") and name in warnings[0]
    assert result.reuse_record()["built_from"] == [0]  # the damaged entry alone was rebuilt, the other read
    reuse = Reuse(frozen_model(pristine.encoder, DEPTH), DEPTH, pad_id=0, device=torch.device("cpu"), autocast=None)
    reuse.states(encoded(pristine.data)[0], np.arange(4))
    assert reuse.stats.misses == 0  # the rebuilt entry serves the next trial
    assert sorted(p.name for p in entry.parent.iterdir() if p.name.endswith(".partial")) == []


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_entry_in_a_read_only_cache_stops_the_trial_in_one_line(name, damage, pristine, tmp_path,
                                                                          monkeypatch):
    cache = shutil.copytree(pristine.cache, tmp_path / "cache")
    _use(monkeypatch, cache)
    _damage(_train_entry(pristine) / name, damage)
    with read_only(cache, tmp_path / "mounted") as mounted:
        _use(monkeypatch, mounted)
        entry = _train_entry(pristine)
        with pytest.raises(ActivationCacheError) as caught:
            fit(pristine.encoder, pristine.data, DEPTH)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{entry}: damaged (") and name in message, message


def test_a_read_only_cache_is_read_without_writing_and_a_missing_entry_is_computed_in_memory(pristine, tmp_path,
                                                                                             monkeypatch):
    _, full_forward = fit(pristine.encoder, pristine.data, 1, reuse=False)
    with read_only(pristine.cache, tmp_path / "mounted") as mounted:
        _use(monkeypatch, mounted)
        _, cached = fit(pristine.encoder, pristine.data, DEPTH)
        _, computed = fit(pristine.encoder, pristine.data, 1)  # the cache holds no depth-1 entry
    assert _curve(cached) == pristine.curve
    assert cached.reuse_record()["misses"] == 0 and cached.reuse_record()["stored"] == "cache"
    assert computed.reuse_record()["stored"] == f"memory (the cache {mounted / 'activations'} is read-only)"
    assert computed.reuse_record()["misses"] > 0 and computed.reuse_record()["hits"] > 0
    assert _curve(computed) == _curve(full_forward)


WRITE_STATES = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from hpo.train.activation_store import reserve
    file = Path(sys.argv[1]) / "states.npy"
    states = np.lib.format.open_memmap(file, mode="w+", dtype=np.float32, shape=(1 << 20,))  # 4 MB
    if sys.argv[2] == "reserved":
        with file.open("r+b") as handle:
            try:
                reserve(handle.fileno())
            except OSError as exc:
                sys.exit(f"reserve: errno {exc.errno}")
    states[:] = 1.0
    states.flush()
""")


def test_reserving_the_states_file_turns_a_full_disks_sigbus_into_an_error(tmp_path):
    # Why a build reserves its blocks first: on a 1 MB disk, writing a 4 MB states file through its memory map kills
    # the process with SIGBUS (a worker's trial left RUNNING); reserving them is an ENOSPC the build turns into
    # one line (test_cache_faults.py shows that line, through `hpo run`).
    outcomes = {}
    for how in ("written at once", "reserved"):
        with tmpfs(tmp_path / "disk", 1 << 20) as disk:
            done = subprocess.run([sys.executable, "-c", WRITE_STATES, str(disk), how], capture_output=True,
                                  text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        outcomes[how] = (done.returncode, done.stderr.strip()[-300:])
    assert outcomes["written at once"][0] == -signal.SIGBUS, outcomes
    assert outcomes["reserved"] == (1, "reserve: errno 28"), outcomes  # ENOSPC
