"""Batches: shuffled and bucketed by length, padded to the longest text in each; the learning-rate schedule."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from hpo.train.tokens import Encoded

__all__ = ["bucketed_batches", "collate", "lr_factor", "source_stream"]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then linear decay to 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length texts, so padding is small: sort within chunks of 50 batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(data: Encoded, rows: np.ndarray, pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    width = int(data.lengths[rows].max())
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        row = data.row(i)
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    tensors = (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(data.labels[rows]))
    return tuple(t.to(device, non_blocking=True) for t in tensors)


def source_stream(source: Encoded, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        yield from bucketed_batches(source.lengths, batch_size, rng)


