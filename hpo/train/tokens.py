"""Tokenisation done once per (tokenizer, dataset, max length), cached on disk and in the process; and the pad
token batches are padded with.

Trials never tokenise: they index into these arrays. Texts are stored unpadded (flat ids + offsets);
padding happens per batch, to the longest text in it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from hpo.errors import HpoError
from hpo.settings import cache_dir
from hpo.train.data import Corpus

__all__ = ["Encoded", "choose_pad", "encode", "tokenizer_fingerprint"]

_memo: dict[str, Encoded] = {}


@dataclass(frozen=True)
class Encoded:
    ids: np.ndarray  # all token ids, concatenated
    offsets: np.ndarray  # text i is ids[offsets[i]:offsets[i + 1]]
    labels: np.ndarray
    key: str = ""  # what the data was tokenised from and how (tokenizer, texts, max length): a cache key

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What the tokenizer maps text to: its vocabulary and rules. Not its truncation and padding settings, which
    the fast tokenizer's backend keeps from its last call (so a key taken before and after tokenising differed)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        text = f"{type(tokenizer).__name__}:{tokenizer.name_or_path}"
    else:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        text = json.dumps(state, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def choose_pad(tokenizer: Any, model: str) -> tuple[str, int]:
    """The token (and id) to pad batches with: one that never occurs inside a text, since `last` pooling, like
    transformers' *ForSequenceClassification, takes the rightmost token that is not padding. In order: the
    tokenizer's own pad token unless it is its eos or bos; `<pad>` where the vocabulary has one; the unknown token
    where the tokenizer never emits it (byte-level BPE, or byte fallback); eos where the tokenizer never appends
    it. Else HpoError naming the model and why. Never a new token: that would add an untrained embedding."""
    added = _added_ids(tokenizer)
    if tokenizer.pad_token is not None and tokenizer.pad_token_id not in (tokenizer.eos_token_id,
                                                                          tokenizer.bos_token_id):
        return tokenizer.pad_token, tokenizer.pad_token_id
    vocabulary = tokenizer.get_vocab()
    if "<pad>" in vocabulary and vocabulary["<pad>"] not in added:
        return "<pad>", vocabulary["<pad>"]
    if tokenizer.unk_token is not None and tokenizer.unk_token_id not in added and _never_unknown(tokenizer):
        return tokenizer.unk_token, tokenizer.unk_token_id
    if tokenizer.eos_token is not None and tokenizer.eos_token_id not in added:
        return tokenizer.eos_token, tokenizer.eos_token_id
    why = "its eos token ends every text" if tokenizer.eos_token is not None else "it has no eos token"
    raise HpoError(f"model {model}: its tokenizer has no token to pad with that never occurs inside a text (no pad "
                   f"token other than eos/bos, no <pad>, no unknown token it never emits, and {why}); use a "
                   "model whose tokenizer has a pad token")


def _added_ids(tokenizer: Any) -> set[int]:
    """The ids the tokenizer adds around every text (bos, eos, [CLS], [SEP]…): found by tokenising one."""
    probe = "a probe text"
    with_special = tokenizer(probe)["input_ids"]
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    return set(with_special) - set(plain)


def _never_unknown(tokenizer: Any) -> bool:
    """Whether the tokenizer can spell any text without its unknown token: a byte-level BPE (GPT-2, Llama 3, Qwen2,
    SmolLM2), or a BPE that falls back to bytes (Llama 2, Mistral). WordPiece and unigram models emit it."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    state = json.loads(backend.to_str())
    model = state.get("model") or {}
    return model.get("type") == "BPE" and (bool(model.get("byte_fallback")) or '"ByteLevel"' in json.dumps(
        state.get("pre_tokenizer")))


def encode(tokenizer: Any, tokenizer_key: str, corpus: Corpus, max_length: int) -> Encoded:
    key = hashlib.sha256(f"{tokenizer_key}:{corpus.content_hash}:{max_length}".encode()).hexdigest()[:24]
    if key in _memo:
        return _memo[key]
    path = cache_dir() / "tokens" / f"{key}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                _write(path, tokenizer, corpus, max_length)
    with np.load(path) as stored:
        encoded = Encoded(stored["ids"], stored["offsets"], stored["labels"], key)
    _memo[key] = encoded
    return encoded


def _write(path: Path, tokenizer: Any, corpus: Corpus, max_length: int) -> None:
    rows = tokenizer(list(corpus.texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter((token for row in rows for token in row), dtype=np.int32, count=int(offsets[-1]))
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, ids=ids, offsets=offsets, labels=corpus.labels)
    partial.replace(path)
