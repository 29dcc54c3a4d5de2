"""One fine-tune, top to bottom: batches, optimiser, steps, evaluations. It knows nothing of Optuna.

Pruning enters through `on_eval`: it is called after every evaluation and may raise to stop the run (the
objective raises `optuna.TrialPruned` there); a search's per-trial time limit enters through `on_step` the same
way. The value of a run is the best value of its validation objective (F1 unless the study chose another:
metrics.py) that it saw.

With a freeze depth k >= 1 the frozen layers' outputs are computed once and reused (activations.py): a step runs
only the layers above k. What trains at which rate (LoRA adapters or every unfrozen weight; one rate, or one a layer
under `layer_lr_decay`) is adapters.py's; the penalty weighs what trains (loss.py). fp16 runs with a gradient
scaler; `max_grad_norm` clips. On a GPU the loss is checked for NaN/inf every CHECK_EVERY steps and at each
evaluation, not every step: each check is a host sync.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hpo.train.activations import Reuse, ReuseStats, reuse_off_reason
from hpo.train.adapters import lora_factors, parameter_groups
from hpo.train.batches import bucketed_batches, collate, lr_factor, source_stream
from hpo.train.config import TrainConfig
from hpo.train.loss import penalty, transfer_loss
from hpo.train.metrics import OBJECTIVES, Scores, ValidationObjective, accuracy, f1
from hpo.train.model import TransferModel
from hpo.train.placement import Placement, placement, resolve_device, resolve_precision
from hpo.train.tokens import Encoded

__all__ = [
    "Evaluation",
    "NonFiniteLoss",
    "Placement",
    "TrainResult",
    "bucketed_batches",
    "collate",
    "evaluate",
    "placement",
    "resolve_device",
    "resolve_precision",
    "train",
]

CHECK_EVERY = 32  # steps between NaN checks on a GPU (a CPU checks every step: there it costs nothing)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Evaluation:
    number: int  # 1-based: the pruner's step (an evaluation, not an optimiser step)
    epoch: float  # epochs of target data seen so far
    value: float  # the validation objective's (F1 unless the study chose another): reported, pruned on
    f1: float  # validation F1 (the config's f1_average), shown beside any objective
    accuracy: float
    train_seconds: float  # optimisation time so far, evaluations excluded
    samples_seen: int  # target training examples so far
    fit_seconds: float = 0.0  # wall time since the fit started, evaluations and the first build of reused states


@dataclass
class TrainResult:
    curve: list[Evaluation] = field(default_factory=list)
    objective: ValidationObjective = OBJECTIVES["f1"]
    trainable_params: int = 0
    reuse: ReuseStats | None = None  # what reusing frozen activations did, when the fit reused them
    reuse_off: str | None = None  # why the fit did not reuse them, when it did not

    def reuse_record(self) -> dict[str, object] | str | None:
        """What a trial records as its `reuse` attribute: the figures, or "off (<reason>)"."""
        if self.reuse is not None:
            return self.reuse.record()
        return f"off ({self.reuse_off})" if self.reuse_off else None

    @property
    def best(self) -> Evaluation:
        """The evaluation with the objective's best value; of equals the earliest."""
        best = self.curve[0]
        for evaluation in self.curve[1:]:
            if self.objective.better(evaluation.value, best.value):
                best = evaluation
        return best

    @property
    def samples_per_second(self) -> float:
        last = self.curve[-1]
        return last.samples_seen / last.train_seconds if last.train_seconds else 0.0


class _Inputs:
    """A split's batches as the model takes them: token ids and mask, and the reused states when there are any."""

    def __init__(self, data: Encoded, pad_id: int, device: torch.device, reuse: Reuse | None) -> None:
        self.data, self.pad_id, self.device, self.reuse = data, pad_id, device, reuse

    def __call__(self, rows: np.ndarray) -> tuple[dict[str, object], torch.Tensor]:
        ids, mask, labels = collate(self.data, rows, self.pad_id, self.device)
        if self.reuse is None:
            return {"input_ids": ids, "attention_mask": mask}, labels
        states = self.reuse.states(self.data, rows)
        return {"input_ids": ids, "attention_mask": mask, "states": states, "start": self.reuse.depth}, labels


def evaluate(
    model: TransferModel, data: Encoded, pad_id: int, device: torch.device, autocast: torch.dtype | None,
    batch_size: int, task: str = "target", reuse: Reuse | None = None,
) -> np.ndarray:
    """The logits of every row, in row order (float32, rows × classes; argmax is the predicted class). Sorted by
    length and batched wide: no graph, little padding."""
    was_training = model.training
    model.eval()
    order = np.argsort(data.lengths, kind="stable")
    logits: np.ndarray | None = None
    inputs = _Inputs(data, pad_id, device, reuse)
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                 enabled=autocast is not None):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            kwargs, _ = inputs(rows)
            batch = model(**kwargs, task=task).float().cpu().numpy()
            if logits is None:
                logits = np.empty((len(data), batch.shape[1]), dtype=np.float32)
            logits[rows] = batch
    model.train(was_training)
    return logits if logits is not None else np.empty((0, 0), dtype=np.float32)


class _Stepper:
    """One optimiser step: backward (scaled for fp16), clipping, the update, the schedule; and the NaN check,
    deferred on a GPU (a device-side flag read every CHECK_EVERY steps)."""

    def __init__(self, config: TrainConfig, params: list[torch.nn.Parameter], device: torch.device,
                 autocast: torch.dtype | None, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.config, self.params, self.optimizer = config, params, optimizer
        warmup = int(config.warmup_ratio * total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total_steps))
        self.scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
        self.every = CHECK_EVERY if device.type == "cuda" else 1
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.step = self.checked = 0

    def __call__(self, loss: torch.Tensor) -> None:
        self.step += 1
        self.bad |= ~torch.isfinite(loss.detach())  # on the device: no sync
        if self.step % self.every == 0:
            self.check()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def check(self) -> None:
        """Raise NonFiniteLoss if a step since the last check had a NaN or infinite loss (one host sync)."""
        if bool(self.bad):
            where = f"step {self.step}" if self.step - self.checked <= 1 else f"steps {self.checked + 1}-{self.step}"
            raise NonFiniteLoss(f"the loss became NaN or infinite at {where}")
        self.checked = self.step


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
    result: TrainResult | None = None,
    objective: ValidationObjective = OBJECTIVES["f1"],
) -> TrainResult:
    """Fine-tune `model` (frozen as `config.freeze_depth` says, by `TransferModel.freeze`, and with LoRA adapters
    when `config.adapter` is lora, by `adapters.add_lora`: as `Workbench.new_model` makes it) on the target (and the
    source while λ < 1); evaluate `evaluations_per_epoch` times an epoch. Raises NonFiniteLoss, or whatever
    `on_eval` or `on_step` raises; `result`, when given, is filled as the run goes, so a caller whose `on_eval`
    stops the run still has what it recorded."""
    fit_started = time.monotonic()
    where = where or placement(config)
    device, autocast = where.device, where.autocast
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    model.to(device).train()
    off = reuse_off_reason(model, config.freeze_depth, config.reuse_activations)
    reuse = None if off else Reuse(model, config.freeze_depth, pad_id=pad_id, device=device, autocast=autocast)
    encoder_params, head_params = model.encoder_parameters(), model.head_parameters()
    params = encoder_params + head_params
    adapters = lora_factors(model.encoder)  # LoRA: the penalty weighs each adapter's ΔW (loss.py), not θ - θ₀
    if encoder_params and (config.adapter == "lora") != bool(adapters):  # a model made for another config
        raise ValueError(f"adapter is {config.adapter} but the model {'carries' if adapters else 'has no'} LoRA "
                         "adapters: make it with Workbench.new_model (or adapters.add_lora)")
    penalised = head_params if adapters else params
    references: list[torch.Tensor | None] = [None] * len(penalised)
    if config.penalty_reference == "pretrained" and not adapters:  # L2-SP: distance from where the encoder started
        references = [p.detach().clone() for p in encoder_params] + [None] * len(head_params)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config),
        weight_decay=config.weight_decay,
        fused=True,  # one kernel for all parameters: 29 ms a step for MiniLM on this CPU, against 142 ms looped
    )
    steps_per_epoch = math.ceil(len(target_train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    stepper = _Stepper(config, params, device, autocast, optimizer, total_steps)
    evals_per_epoch = min(config.evaluations_per_epoch, steps_per_epoch)
    eval_points = {round(j * steps_per_epoch / evals_per_epoch) for j in range(1, evals_per_epoch + 1)}
    use_source = source is not None and config.target_weight < 1.0  # λ = 1: no source batch at all
    sources = source_stream(source, config.batch_size, rng) if use_source else None
    target_inputs = _Inputs(target_train, pad_id, device, reuse)
    source_inputs = _Inputs(source, pad_id, device, reuse) if use_source else None

    result = result if result is not None else TrainResult()
    result.objective = objective
    result.trainable_params = sum(p.numel() for p in params)
    result.reuse, result.reuse_off = (reuse.stats if reuse is not None else None), off
    step = samples = 0
    train_seconds = 0.0
    for epoch in range(config.epochs):
        tick = time.monotonic()
        for index, rows in enumerate(bucketed_batches(target_train.lengths, config.batch_size, rng), start=1):
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                kwargs, labels = target_inputs(rows)
                target_ce = F.cross_entropy(model(**kwargs, task="target").float(), labels)
                source_ce = None
                if source_inputs is not None:  # the mean over k batches: the cross-entropy of k × batch_size examples
                    losses = []
                    for _ in range(config.source_batches_per_step):
                        kwargs, labels = source_inputs(next(sources))
                        losses.append(F.cross_entropy(model(**kwargs, task="source").float(), labels))
                    source_ce = torch.stack(losses).mean() if len(losses) > 1 else losses[0]
            stepper(transfer_loss(target_ce, source_ce, config.target_weight,
                                  penalty(penalised, references, config.l1, config.l2, adapters)))
            step += 1
            samples += len(rows)
            if on_step is not None:
                on_step(step, total_steps)
            if index in eval_points:
                stepper.check()
                train_seconds += time.monotonic() - tick
                scores = Scores(target_val.labels, evaluate(model, target_val, pad_id, device, autocast,
                                                            config.batch_size * 4, reuse=reuse))
                predictions = scores.predictions
                evaluation = Evaluation(
                    number=len(result.curve) + 1,
                    epoch=round(epoch + index / steps_per_epoch, 4),
                    value=objective.compute(scores, config.f1_average),
                    f1=f1(target_val.labels, predictions, config.f1_average),
                    accuracy=accuracy(target_val.labels, predictions),
                    train_seconds=train_seconds,
                    samples_seen=samples,
                    fit_seconds=time.monotonic() - fit_started,
                )
                result.curve.append(evaluation)
                on_eval(evaluation)
                tick = time.monotonic()
    stepper.check()
    return result
