"""The transfer objective: L = λ·CE_target + (1-λ)·CE_source + l1·Σ|θ - θ₀| + l2·Σ(θ - θ₀)².

The penalties weigh what trains. θ ranges over trainable parameters. θ₀ is zero (`penalty_reference: zero`, plain
L1/L2) or the pretrained weights (`pretrained`, L2-SP); the new heads have no pretrained weights and always use
θ₀ = 0.

With LoRA the encoder's weights stay frozen at their pretrained values and each adapted matrix moves by
ΔW = (α/r)·B·A, so the L2 toward the start is l2·Σ‖ΔW‖², whatever `penalty_reference` says (toward zero would pull
the frozen pretrained weights through their adapters). It is computed exactly and cheaply from r × r products,
‖BA‖²_F = Σ (BᵀB) ⊙ (AAᵀ), never forming the out × in matrix BA. L1 weighs the adapter factors themselves,
l1·Σ(|A| + |B|): an L1 of ΔW has no such shortcut. The heads keep their plain penalties.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["adapter_delta_sq", "penalty", "transfer_loss"]

Adapter = tuple[torch.Tensor, torch.Tensor, float]  # (A: r × in, B: out × r, α/r): ΔW = (α/r)·B·A


def adapter_delta_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖B·A‖²_F = trace(AᵀBᵀBA) = Σ (BᵀB) ⊙ (AAᵀ) (both r × r, AAᵀ symmetric)."""
    return ((b.T @ b) * (a @ a.T)).sum()


def penalty(
    params: list[torch.Tensor], references: list[torch.Tensor | None], l1: float, l2: float,
    adapters: Sequence[Adapter] = (),
) -> torch.Tensor | None:
    """l1·Σ|θ - θ₀| + l2·Σ(θ - θ₀)² over `params`, plus, for each LoRA adapter, l1·Σ(|A| + |B|) + l2·‖(α/r)·B·A‖²;
    None when both weights are zero (nothing computed)."""
    if not (l1 or l2):
        return None
    total = (params[0] if params else adapters[0][0]).new_zeros(())
    for param, reference in zip(params, references, strict=True):
        delta = param if reference is None else param - reference
        if l1:
            total = total + l1 * delta.abs().sum()
        if l2:
            total = total + l2 * delta.pow(2).sum()
    for a, b, scaling in adapters:
        if l1:
            total = total + l1 * (a.abs().sum() + b.abs().sum())
        if l2:
            total = total + l2 * scaling**2 * adapter_delta_sq(a, b)
    return total


def transfer_loss(
    target_ce: torch.Tensor, source_ce: torch.Tensor | None, target_weight: float, reg: torch.Tensor | None
) -> torch.Tensor:
    """λ·CE_target + (1-λ)·CE_source + penalty; `source_ce` is None exactly when λ = 1."""
    loss = target_weight * target_ce
    if source_ce is not None:
        loss = loss + (1.0 - target_weight) * source_ce
    return loss if reg is None else loss + reg
