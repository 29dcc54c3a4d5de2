"""The transfer objective: L = λ·CE_target + (1-λ)·CE_source + l1·Σ|θ - θ₀| + l2·Σ(θ - θ₀)².

θ ranges over trainable parameters. θ₀ is zero (`penalty_reference: zero`, plain L1/L2) or the pretrained
weights (`pretrained`, L2-SP); the new heads have no pretrained weights and always use θ₀ = 0.
"""

from __future__ import annotations

import torch

__all__ = ["penalty", "transfer_loss"]


def penalty(
    params: list[torch.Tensor], references: list[torch.Tensor | None], l1: float, l2: float
) -> torch.Tensor | None:
    """l1·Σ|θ - θ₀| + l2·Σ(θ - θ₀)², or None when both weights are zero (nothing computed)."""
    if not (l1 or l2):
        return None
    total = params[0].new_zeros(())
    for param, reference in zip(params, references, strict=True):
        delta = param if reference is None else param - reference
        if l1:
            total = total + l1 * delta.abs().sum()
        if l2:
            total = total + l2 * delta.pow(2).sum()
    return total


def transfer_loss(
    target_ce: torch.Tensor, source_ce: torch.Tensor | None, target_weight: float, reg: torch.Tensor | None
) -> torch.Tensor:
    """λ·CE_target + (1-λ)·CE_source + penalty; `source_ce` is None exactly when λ = 1."""
    loss = target_weight * target_ce
    if source_ce is not None:
        loss = loss + (1.0 - target_weight) * source_ce
    return loss if reg is None else loss + reg
