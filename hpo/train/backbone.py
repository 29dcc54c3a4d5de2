"""Where a backbone's parts are: its layer list, the frozen bottom below it, the final norm above it; and running
only a range of its layers.

Found by the names transformers gives them, one table for every family, rather than one class per family:

| family | bottom (frozen with any layer) | layers | final norm |
|---|---|---|---|
| BERT, MiniLM, RoBERTa, XLM-R, MPNet | `embeddings` | `encoder.layer` | none |
| ELECTRA | `embeddings`, `embeddings_project` | `encoder.layer` | none |
| DistilBERT | `embeddings` | `transformer.layer` | none |
| GPT-2 | `wte`, `wpe`, `drop` | `h` | `ln_f` |
| Llama, Qwen2, Mistral, Phi-3 | `embed_tokens` | `layers` | `norm` |

A decoder-only model is one whose token table is `embed_tokens` or `wte` (what its layers see comes from there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from hpo.errors import HpoError

__all__ = ["bottom_modules", "encoder_layers", "final_norm", "is_decoder", "layer_range"]

# Attribute of the base model -> what stands in for it when the layers are fed given states (see `layer_range`).
_TOKEN_TABLES = ("embeddings", "embed_tokens", "wte")  # their output is what the first layer reads
_ADDED_BELOW = ("wpe",)  # GPT-2 adds learned positions to the token table's output
_PASSED_BELOW = ("embeddings_project", "drop", "embed_dropout")  # maps the first layer's input to itself or a width
_FINAL_NORMS = ("norm", "ln_f", "final_layernorm")
_LAYER_LISTS = ("layer", "layers", "h")


def is_decoder(encoder: nn.Module) -> bool:
    """A decoder-only model (GPT-2, Llama, Qwen2, Mistral, Phi-3): causal attention, a final norm, no [CLS]."""
    return any(isinstance(getattr(encoder, name, None), nn.Module) for name in ("embed_tokens", "wte"))


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The list of layers freeze_depth counts: the `nn.ModuleList` as long as the config's layer count, preferably
    one named like a layer list (`layer`, `layers`, GPT-2's `h`)."""
    depth = encoder.config.num_hidden_layers
    lists = [(name, m) for name, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and len(m) == depth]
    named_layer = [m for name, m in lists if name.rsplit(".", 1)[-1] in _LAYER_LISTS]
    found = named_layer or [m for _, m in lists]
    if not found:
        raise HpoError(f"cannot find the {depth} encoder layers of {type(encoder).__name__}")
    return found[0]


def _children(encoder: nn.Module, names: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name in names if isinstance(module := getattr(encoder, name, None), nn.Module)]


def bottom_modules(encoder: nn.Module) -> list[nn.Module]:
    """The modules below the first layer, frozen with any layer: the embeddings (GPT-2: its token and position
    tables and the embedding dropout, which must be in eval mode for the frozen part to be a pure function)."""
    found = [module for _, module in _children(encoder, _TOKEN_TABLES + _ADDED_BELOW + _PASSED_BELOW)]
    return found or [encoder.get_input_embeddings()]


def final_norm(encoder: nn.Module) -> nn.Module | None:
    """The norm a decoder applies after its last layer (Llama `norm`, GPT-2 `ln_f`); None for the encoders."""
    found = _children(encoder, _FINAL_NORMS)
    return found[0][1] if found else None


class _Given(nn.Module):
    """Stands in for the token table: returns the hidden states it was handed, whatever the model passes it, in
    the dtype the table itself returns (stored states may be kept wider, e.g. float32 for bf16 weights)."""

    def __init__(self, states: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        self.states = states.to(dtype)

    def forward(self, *_: Any, **__: Any) -> torch.Tensor:
        return self.states


class _Zero(nn.Module):
    """Stands in for GPT-2's position table: the given states already hold the positions, so add nothing."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=self.dtype, device=positions.device)


class _Skip(nn.Module):
    """Stands in for a decoder layer outside the range: passes the hidden states through. The layer list keeps its
    length, so a model that looks a layer's attention type up by its index (Qwen2's `layer_types[i]`) still finds
    the right one."""

    def forward(self, hidden_states: torch.Tensor, *_: Any, **__: Any) -> torch.Tensor:
        return hidden_states


def _layer_swap(encoder: nn.Module, start: int, stop: int) -> tuple[nn.Module, str, nn.Module]:
    layers = encoder_layers(encoder)
    parent, name = next((m, n.rsplit(".", 1)[-1]) for _, m in encoder.named_modules()
                        for n, child in m.named_children() if child is layers)
    if is_decoder(encoder):  # their layers return the hidden states alone, so a pass-through can stand in
        kept = [layer if start <= i < stop else _Skip() for i, layer in enumerate(layers)]
    else:  # MPNet's layers return tuples: run a shorter list instead
        kept = list(layers)[start:stop]
    return parent, name, nn.ModuleList(kept)


def _swaps(encoder: nn.Module, start: int, stop: int, states: torch.Tensor | None) -> list[tuple[nn.Module, str,
                                                                                             nn.Module]]:
    swaps = [_layer_swap(encoder, start, stop)]
    if start > 0:
        assert states is not None, "layers above the bottom need the states below them"
        dtype = next(encoder.get_input_embeddings().parameters()).dtype
        swaps += [(encoder, name, _Given(states, dtype)) for name, _ in _children(encoder, _TOKEN_TABLES)]
        swaps += [(encoder, name, _Zero(dtype)) for name, _ in _children(encoder, _ADDED_BELOW)]
        swaps += [(encoder, name, nn.Identity()) for name, _ in _children(encoder, _PASSED_BELOW)]
    if stop < len(encoder_layers(encoder)):  # intermediate states: the final norm belongs to the last layer's output
        swaps += [(encoder, name, nn.Identity()) for name, _ in _children(encoder, _FINAL_NORMS)]
    return swaps


@contextmanager
def layer_range(encoder: nn.Module, start: int, stop: int, states: torch.Tensor | None = None) -> Iterator[None]:
    """Inside, the encoder's forward runs only layers [start, stop): fed `states` (the hidden states after layer
    `start`) in place of its embeddings when start > 0 (GPT-2's position table and embedding dropout are not applied
    again), and returning the states after layer `stop` without the final norm when stop is below the top. Its own
    forward still builds the attention mask (causal for decoders), the rotary positions and the rest, so every
    covered family computes exactly what the whole model computes (hpo/train/activations.py reuses the states)."""
    swaps = _swaps(encoder, start, stop, states)
    kept = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in swaps]
    try:
        for owner, attr, replacement in swaps:
            setattr(owner, attr, replacement)
        yield
    finally:
        for owner, attr, original in kept:
            setattr(owner, attr, original)
