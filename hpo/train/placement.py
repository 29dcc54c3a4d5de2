"""Where and how a fine-tune computes: the device and the autocast precision, resolved once per run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hpo.train.config import TrainConfig

__all__ = ["Placement", "placement", "resolve_device", "resolve_precision"]


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


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32.

    auto picks bf16 wherever the hardware computes it natively: CUDA GPUs that support it, and CPUs with
    AVX512-BF16 or AMX, where bf16 autocast measured 1.4x the samples/s of fp32 for this workload at the
    same F1 (benchmarks/trainer_vs_loop.py prints both). A CUDA GPU without bf16 (T4, V100) gets fp16, with
    gradient scaling (loop.py). Elsewhere fp32: bf16 emulated on a CPU is slower than fp32.
    """
    if choice != "auto":
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[choice]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_native_bf16() else None


def _cpu_has_native_bf16() -> bool:
    # torch exposes these probes only as private helpers; a missing one means "unknown", so fp32.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


