"""Frozen layers computed once: the hidden states after the bottom k layers, reused across epochs, trials and
workers.

With freeze depth k, the embeddings and the bottom k layers are frozen and in eval mode (no dropout): a pure
function of the input. So their output for every target-train, validation and source example is computed once per
(weights of those layers, tokenizer, tokenised data, max length, k, precision), stored, and each step runs only the
layers above k. At k = every layer the stored value is the pooled vector, and a step runs only the heads.

Stored unpadded (one row per token, as the tokenised data is) in a memory-mapped `.npy` under the shared cache
(`HPO_CACHE/activations/KEY/`), written once under a file lock (another worker building the same entry waits and
then reads it), touched on every use, and the least recently used entries evicted beyond
`HPO_ACTIVATION_CACHE_GB`. A cached shallower depth j < k builds depth k by running only layers j..k-1; a deeper
entry never serves a shallower trial (its layers above j train).

Each entry is verified once per process before its first use (activation_store.py): a damaged one is rebuilt
under its lock, with a warning. A cache this process cannot write (a read-only mount of a prepared cache) is read
without writing a byte; an entry missing there is computed into the trial's memory, and a damaged one fails the
trial with one line naming it.

Families covered (each tested on a tiny config): BERT (and MiniLM), RoBERTa, XLM-R, ELECTRA, MPNet, DistilBERT,
and the decoder-only GPT-2, Llama, Qwen2, Mistral and Phi-3 (backbone.layer_range: rotary positions and the causal mask
built as usual, GPT-2's position table and embedding dropout not applied twice, the final norm only after the last
layer, never on stored intermediate states). Anything else runs without reuse and says why (`reuse_off_reason`).
Hand-written: no library caches a frozen prefix of a transformer across training runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from hpo.settings import cache_dir
from hpo.train import activation_store as store
from hpo.train.activation_store import MISSING, ActivationCacheError, Layout
from hpo.train.backbone import bottom_modules, encoder_layers, final_norm, layer_range
from hpo.train.batches import collate
from hpo.train.model import TransferModel, pooled
from hpo.train.tokens import Encoded

__all__ = ["FAMILIES", "ActivationCacheError", "Reuse", "ReuseStats", "StoredStates", "reuse_off_reason"]

log = logging.getLogger(__name__)

FAMILIES = frozenset({"bert", "roberta", "xlm-roberta", "electra", "mpnet", "distilbert",
                      "gpt2", "llama", "qwen2", "mistral", "phi3"})
BUILD_BATCH = 64


def reuse_off_reason(model: TransferModel, depth: int, enabled: bool = True) -> str | None:
    """Why a trial runs without reuse, or None when it reuses."""
    family = getattr(model.encoder.config, "model_type", type(model.encoder).__name__)
    if not enabled:
        return "reuse_activations is off"
    if depth == 0:
        return "nothing frozen (freeze_depth 0)"
    if family not in FAMILIES:
        return f"family {family} not covered (covered: {', '.join(sorted(FAMILIES))})"
    return None


@dataclass
class ReuseStats:
    """What a trial records: batches served from stored states (hits), batches computed to store them (misses),
    the bytes of the entries it read, and the seconds spent building them."""

    depth: int
    hits: int = 0
    misses: int = 0
    bytes: int = 0
    build_seconds: float = 0.0
    built_from: list[int] = field(default_factory=list)  # the depth each built entry started from (0: the input)
    stored: str = "cache"  # where the states were kept: the cache, or this trial's memory and why

    def record(self) -> dict[str, object]:
        return {"depth": self.depth, "hits": self.hits, "misses": self.misses, "bytes": self.bytes,
                "build_seconds": round(self.build_seconds, 3), "built_from": self.built_from, "stored": self.stored}


@dataclass(frozen=True)
class StoredStates:
    """One split's hidden states at one depth: rows of tokens (offsets as the tokenised data's) or pooled vectors."""

    states: np.ndarray  # (tokens, hidden) or (examples, hidden), memory-mapped
    offsets: np.ndarray
    pooled: bool

    def batch(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        """The states of `rows`, padded with zeros to the longest (the attention mask hides the padding)."""
        if self.pooled:
            return torch.from_numpy(np.ascontiguousarray(self.states[rows])).to(device, non_blocking=True)
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        out = np.zeros((len(rows), int(lengths.max()), self.states.shape[1]), dtype=self.states.dtype)
        for r, i in enumerate(rows):
            out[r, : lengths[r]] = self.states[self.offsets[i] : self.offsets[i + 1]]
        return torch.from_numpy(out).to(device, non_blocking=True)


class Reuse:
    """A trial's reused activations at depth k: `states(data, rows)` for any split of it."""

    def __init__(self, model: TransferModel, depth: int, *, pad_id: int, device: torch.device,
                 autocast: torch.dtype | None) -> None:
        self.model, self.depth, self.pad_id, self.device, self.autocast = model, depth, pad_id, device, autocast
        self.stats = ReuseStats(depth)
        self._keys = _prefix_keys(model, autocast)
        self._open: dict[str, StoredStates] = {}

    def states(self, data: Encoded, rows: np.ndarray) -> torch.Tensor:
        stored = self._stored(data)
        self.stats.hits += 1
        return stored.batch(rows, self.device)

    def _stored(self, data: Encoded) -> StoredStates:
        if data.key not in self._open:
            self._open[data.key] = self._load_or_build(data)
        return self._open[data.key]

    def entry(self, data: Encoded, depth: int | None = None) -> Path:
        """The folder holding the states of `data` at `depth` (the trial's own by default)."""
        depth = self.depth if depth is None else depth
        pooling = f":{self.model.pooling}" if depth == self.model.depth else ""
        text = f"{self._keys[depth]}:{data.key}:{depth}{pooling}"
        return cache_dir() / "activations" / hashlib.sha256(text.encode()).hexdigest()[:32]

    def _layout(self, data: Encoded, depth: int) -> Layout:
        everything = depth == self.model.depth
        rows = len(data) if everything else int(data.offsets[-1])
        # float32 holds bf16 weights' states exactly; float16 would overflow on an LLM's large activations
        weights = next(self.model.encoder.parameters()).dtype
        dtype = np.dtype(np.float32 if self.autocast is None or weights == torch.bfloat16 else np.float16)
        return Layout((rows, self.model.encoder.config.hidden_size), dtype, data.offsets, everything)

    def _load_or_build(self, data: Encoded) -> StoredStates:
        path, layout = self.entry(data), self._layout(data, self.depth)
        if not store.writable(path.parent):
            return self._read_only(data, path, layout)
        if store.verify(path, layout) is not None:
            with store.room_for(path, layout):
                path.parent.mkdir(parents=True, exist_ok=True)
                with FileLock(str(path) + ".lock"):
                    problem = store.verify(path, layout)  # another worker may have built it while this one waited
                    if problem is not None:
                        self._rebuild(data, path, layout, problem)
        store.touch(path)
        return self._opened(path)

    def _opened(self, path: Path) -> StoredStates:
        stored = _open(path)
        self.stats.bytes += stored.states.nbytes
        return stored

    def _read_only(self, data: Encoded, path: Path, layout: Layout) -> StoredStates:
        """Read an intact entry without writing a byte (no lock file, no touch). A missing one is computed into
        memory for this trial: the trial still reuses it across its epochs and evaluations, which is most of the
        saving at high depths, and its numbers are those of a cached entry."""
        problem = store.verify(path, layout)
        if problem is None:
            return self._opened(path)
        if problem != MISSING:
            raise ActivationCacheError(f"{path}: damaged ({problem}) in a cache this process cannot write; rebuild it "
                                       "where the cache is writable (delete the folder and run a trial)")
        needed, available = layout.nbytes, store.memory_available()
        if needed > available // 2:  # leave the other half to the model, the batches and the other workers
            raise ActivationCacheError(f"{path}: missing from a cache this process cannot write, and computing it in "
                                       f"memory needs {needed:,} bytes, {available:,} available; fill the cache "
                                       "where it is writable, or set reuse_activations: false")
        self.stats.stored = f"memory (the cache {path.parent} is read-only)"
        started = time.monotonic()
        states = np.empty(layout.shape, dtype=layout.dtype)
        self._compute(data, states)
        self.stats.build_seconds += time.monotonic() - started
        return StoredStates(states, layout.offsets, layout.pooled)

    def _below(self, data: Encoded) -> tuple[int, StoredStates | None]:
        """The deepest intact shallower entry to start from, or the input (0)."""
        for depth in range(self.depth - 1, 0, -1):
            if store.verify(self.entry(data, depth), self._layout(data, depth)) is None:
                return depth, _open(self.entry(data, depth))
        return 0, None

    def _rebuild(self, data: Encoded, path: Path, layout: Layout, problem: str) -> None:
        if problem != MISSING:
            log.warning("activation entry %s was damaged (%s); rebuilding it", path, problem)
            try:
                shutil.rmtree(path)
            except OSError as exc:  # e.g. another user's entry on a shared cache
                raise ActivationCacheError(f"{path}: damaged ({problem}) and cannot be removed: {exc.strerror}") \
                    from None
        started = time.monotonic()
        with store.building(path) as partial:
            states = store.allocate(partial, layout)
            self._compute(data, states)
            store.finish(partial, path, states, layout, self.stats.built_from[-1])
            del states
        self.stats.build_seconds += time.monotonic() - started
        store.evict(path.parent, keep=path)

    def _compute(self, data: Encoded, out: np.ndarray) -> None:
        """Run layers [start, depth) over every example (in length-sorted batches) into `out`, from the deepest
        intact shallower entry (start j) or from the input (start 0)."""
        start, below = self._below(data)
        self.stats.built_from.append(start)
        model, everything = self.model, self.depth == self.model.depth
        order = np.argsort(data.lengths, kind="stable")
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                                                        enabled=self.autocast is not None):
                for first in range(0, len(order), BUILD_BATCH):
                    rows = order[first : first + BUILD_BATCH]
                    ids, mask, _ = collate(data, rows, self.pad_id, self.device)
                    given = below.batch(rows, self.device) if below is not None else None
                    with layer_range(model.encoder, start, self.depth, given):
                        states = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                    if everything:
                        vectors = pooled(states, mask, model.pooling, ids, model.pad_id)
                        out[rows] = vectors.float().cpu().numpy().astype(out.dtype)
                    else:
                        values = states.float().cpu().numpy().astype(out.dtype)
                        for r, i in enumerate(rows):
                            out[data.offsets[i] : data.offsets[i + 1]] = values[r, : data.lengths[i]]
                    self.stats.misses += 1
        finally:
            model.train(was_training)


def _open(path: Path) -> StoredStates:
    meta = json.loads((path / "meta.json").read_text())
    return StoredStates(np.load(path / "states.npy", mmap_mode="r"), np.load(path / "offsets.npy"), meta["pooled"])


def _prefix_keys(model: TransferModel, autocast: torch.dtype | None) -> list[str]:
    """Key of depth d: the weights of the modules below the layers (backbone.bottom_modules) and of layers [0, d),
    and the precision they run in; at every layer also a decoder's final norm, which the pooled vectors stored
    there went through. A change to any of those is a different entry."""
    encoder = model.encoder
    digest = hashlib.sha256(f"{type(encoder).__name__}:{autocast}".encode())
    for module in bottom_modules(encoder):
        _update(digest, module)
    keys = [digest.hexdigest()]
    for layer in encoder_layers(encoder):
        _update(digest, layer)
        keys.append(digest.hexdigest())
    top = final_norm(encoder)
    if top is not None:
        _update(digest, top)
        keys[-1] = digest.hexdigest()
    return keys


def _update(digest: Any, module: torch.nn.Module) -> None:
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
