"""One fine-tune, top to bottom: batches, optimiser, steps, evaluations. It knows nothing of Optuna.

Pruning enters through `on_eval`: it is called after every evaluation and may raise to stop the run (the
objective raises `optuna.TrialPruned` there); a search's per-trial time limit enters through `on_step` the same
way. The value of a run is the best validation F1 it saw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hpo.train.config import TrainConfig
from hpo.train.loss import penalty, transfer_loss
from hpo.train.metrics import accuracy, f1
from hpo.train.model import TransferModel
from hpo.train.tokens import Encoded

__all__ = [
    "Evaluation",
    "NonFiniteLoss",
    "Placement",
    "TrainResult",
    "placement",
    "resolve_device",
    "resolve_precision",
    "train",
]


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Placement:
    """Where and how a fine-tune computes: resolved once per run from the config's `device` and `precision`."""

    device: torch.device
    autocast: torch.dtype | None  # None: fp32

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast]


def placement(config: TrainConfig) -> Placement:
    device = resolve_device(config.device)
    return Placement(device, resolve_precision(config.precision, device))


@dataclass(frozen=True)
class Evaluation:
    step: int  # 1-based evaluation number: the pruner's step
    epoch: float  # epochs of target data seen so far
    f1: float
    accuracy: float
    train_seconds: float  # optimisation time so far, evaluations excluded
    samples_seen: int  # target training examples so far


@dataclass
class TrainResult:
    curve: list[Evaluation] = field(default_factory=list)
    trainable_params: int = 0

    @property
    def best(self) -> Evaluation:
        return max(self.curve, key=lambda e: e.f1)  # first of equals: the earliest step reaching the best F1

    @property
    def samples_per_second(self) -> float:
        last = self.curve[-1]
        return last.samples_seen / last.train_seconds if last.train_seconds else 0.0


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32.

    auto picks bf16 wherever the hardware computes it natively: CUDA GPUs that support it, and CPUs with
    AVX512-BF16 or AMX, where bf16 autocast measured 1.4x the samples/s of fp32 for this workload at the
    same F1 (benchmarks/trainer_vs_loop.py prints both). Elsewhere bf16 is emulated and slower: fp32.
    """
    if choice != "auto":
        return torch.bfloat16 if choice == "bf16" else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if _cpu_has_native_bf16() else None


def _cpu_has_native_bf16() -> bool:
    # torch exposes these probes only as private helpers; a missing one means "unknown", so fp32.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


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


def _source_stream(source: Encoded, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:
        yield from bucketed_batches(source.lengths, batch_size, rng)


def evaluate(
    model: TransferModel, data: Encoded, pad_id: int, device: torch.device, autocast: torch.dtype | None,
    batch_size: int, task: str = "target",
) -> np.ndarray:
    """Predicted class of every row, in row order. Sorted by length and batched wide: no graph, little padding."""
    was_training = model.training
    model.eval()
    order = np.argsort(data.lengths, kind="stable")
    predictions = np.empty(len(data), dtype=np.int64)
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                 enabled=autocast is not None):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = collate(data, rows, pad_id, device)
            predictions[rows] = model(ids, mask, task).argmax(-1).cpu().numpy()
    model.train(was_training)
    return predictions


def train(
    config: TrainConfig,
    model: TransferModel,
    target_train: Encoded,
    target_val: Encoded,
    source: Encoded | None,
    *,
    pad_id: int,
    on_eval: Callable[[Evaluation], None],
    on_step: Callable[[int, int], None] | None = None,
    where: Placement | None = None,
) -> TrainResult:
    """Fine-tune `model` (frozen as `config.freeze_depth` says, by `TransferModel.freeze`) on the target (and the
    source while λ < 1); evaluate `evaluations_per_epoch` times an epoch. Raises NonFiniteLoss, or whatever
    `on_eval` or `on_step` raises."""
    where = where or placement(config)
    device, autocast = where.device, where.autocast
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    model.to(device).train()
    encoder_params, head_params = model.encoder_parameters(), model.head_parameters()
    params = encoder_params + head_params
    references: list[torch.Tensor | None] = [None] * len(params)
    if config.penalty_reference == "pretrained":  # L2-SP: distance from where the encoder started
        references = [p.detach().clone() for p in encoder_params] + [None] * len(head_params)
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": config.learning_rate},
         {"params": head_params, "lr": config.learning_rate * config.head_lr_multiplier}],
        weight_decay=config.weight_decay,
        fused=device.type == "cuda",
    )
    steps_per_epoch = math.ceil(len(target_train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total_steps))
    evals_per_epoch = min(config.evaluations_per_epoch, steps_per_epoch)
    eval_points = {round(j * steps_per_epoch / evals_per_epoch) for j in range(1, evals_per_epoch + 1)}
    use_source = source is not None and config.source_weight < 1.0  # λ = 1: no source batch at all
    sources = _source_stream(source, config.batch_size, rng) if use_source else None
    eval_batch = config.batch_size * 4

    result = TrainResult(trainable_params=sum(p.numel() for p in params))
    step = samples = 0
    train_seconds = 0.0
    for epoch in range(config.epochs):
        tick = time.monotonic()
        for index, rows in enumerate(bucketed_batches(target_train.lengths, config.batch_size, rng), start=1):
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                ids, mask, labels = collate(target_train, rows, pad_id, device)
                target_ce = F.cross_entropy(model(ids, mask, "target").float(), labels)
                source_ce = None
                if sources is not None:
                    s_ids, s_mask, s_labels = collate(source, next(sources), pad_id, device)
                    source_ce = F.cross_entropy(model(s_ids, s_mask, "source").float(), s_labels)
            loss = transfer_loss(target_ce, source_ce, config.source_weight,
                                 penalty(params, references, config.l1, config.l2))
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss.item()} at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            samples += len(rows)
            if on_step is not None:
                on_step(step, total_steps)
            if index in eval_points:
                train_seconds += time.monotonic() - tick
                predictions = evaluate(model, target_val, pad_id, device, autocast, eval_batch)
                evaluation = Evaluation(
                    step=len(result.curve) + 1,
                    epoch=round(epoch + index / steps_per_epoch, 4),
                    f1=f1(target_val.labels, predictions, config.f1_average),
                    accuracy=accuracy(target_val.labels, predictions),
                    train_seconds=train_seconds,
                    samples_seen=samples,
                )
                result.curve.append(evaluation)
                on_eval(evaluation)
                tick = time.monotonic()
    return result
