"""What trains in a fine-tune, and at which rate: LoRA adapters on the layers above the freeze depth, and the
optimiser's parameter groups under layer-wise learning-rate decay.

LoRA (`adapter: lora`, through peft). With freeze depth k the embeddings and layers 0..k-1 stay frozen and carry
no adapter, so the activations reused below k (activations.py) are exactly those of a full fine-tune at depth k:
their cache key hashes those layers' weights, which LoRA leaves alone. Layers k..L-1 get an adapter on each target
module (peft's `layers_to_transform`, with `layers_pattern` the path of the layer list that `encoder_layers`
finds); peft freezes every other encoder weight, the adapted layers' own included. The heads live outside the
encoder, in `TransferModel`, and train fully. `merge_adapters` folds the adapters back into their weights, for a
saved model that is a plain transformers encoder again.

Layer-wise decay ξ (`layer_lr_decay`). Layer i of L (1 = bottom) trains at learning_rate·ξ^(L−i), the embeddings
at learning_rate·ξ^L, the heads at learning_rate·head_lr_multiplier; an adapter trains at its layer's rate.
Frozen layers have no group. ξ = 1 gives the two groups the loop always had: the encoder and the heads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hpo.errors import HpoError
from hpo.train.config import ALL_LINEAR, TrainConfig, target_module_names
from hpo.train.model import TransferModel, encoder_layers

__all__ = ["add_lora", "lora_factors", "merge_adapters", "parameter_groups"]

ADAPTER = "default"  # the one adapter a model carries (peft names adapters; this project never has two)


def add_lora(model: TransferModel, config: TrainConfig) -> None:
    """Put LoRA adapters (rank `lora_r`, scale `lora_alpha`/r) on the target modules of layers freeze_depth..L-1
    of `model`'s encoder, frozen by `TransferModel.freeze` first; afterwards only the adapters and the heads train.
    HpoError for a target name that matches no module there."""
    from peft import LoraConfig, inject_adapter_in_model

    layers = encoder_layers(model.encoder)
    adapted = list(range(config.freeze_depth, len(layers)))
    if not adapted:  # every layer frozen: only the heads train, as in a full fine-tune at that depth
        return
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers, stored transposed

    targets = [layers[i] for i in adapted]
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, bias="none",
        target_modules=_targets(targets, config.lora_target_modules, config.freeze_depth),
        layers_to_transform=adapted, layers_pattern=re.escape(_path(model.encoder, layers)),
        fan_in_fan_out=any(isinstance(m, Conv1D) for layer in targets for m in layer.modules()),
    )
    inject_adapter_in_model(lora, model.encoder, adapter_name=ADAPTER)


def _targets(layers: list[nn.Module], given: str | list[str], first: int) -> list[str]:
    """Module paths inside a layer that get an adapter. peft refuses `layers_to_transform` with `all-linear`, so
    all-linear is spelled out here: every linear module of the adapted layers (attention and MLP)."""
    from transformers.pytorch_utils import Conv1D

    inside = {name for layer in layers for name, _ in layer.named_modules() if name}
    linear = sorted({name for layer in layers for name, module in layer.named_modules()
                     if isinstance(module, nn.Linear | Conv1D)})
    names = target_module_names(given)
    if names == [ALL_LINEAR]:
        return linear
    missing = [n for n in names if not any(path == n or path.endswith(f".{n}") for path in inside)]
    if missing:
        raise HpoError(f"lora_target_modules: {', '.join(missing)} names no module of layers {first} and up; their "
                       f"linear modules are {', '.join(linear)}")
    return names


def _path(root: nn.Module, target: nn.Module) -> str:
    return next(name for name, module in root.named_modules() if module is target)


def lora_factors(encoder: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(A, B, α/r) of every adapted matrix, whose change is ΔW = (α/r)·B·A (A: r × in, B: out × r); none when the
    encoder carries no adapter (a full fine-tune)."""
    if getattr(encoder, "peft_config", None) is None:  # peft's mark of an injected model: no import for full ones
        return []
    from peft.tuners.lora import LoraLayer

    return [(module.lora_A[ADAPTER].weight, module.lora_B[ADAPTER].weight, float(module.scaling[ADAPTER]))
            for module in encoder.modules() if isinstance(module, LoraLayer) and ADAPTER in module.lora_A]


def merge_adapters(model: TransferModel) -> None:
    """Fold each adapter into the weight it adapts (W + (α/r)·B·A) and take it out: the encoder is a plain
    transformers model again, with its original parameter names. Nothing to do after a full fine-tune.

    By hand: peft's `merge_and_unload` is a method of the LoraModel that `inject_adapter_in_model` does not keep;
    this makes the same two calls per adapted module (merge, then the base layer back in its place)."""
    encoder = model.encoder
    if getattr(encoder, "peft_config", None) is None:
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(encoder.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(encoder.get_submodule(parent), child, module.get_base_layer())
    del encoder.peft_config


def parameter_groups(model: TransferModel, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's parameter groups, each `{"params", "lr"}` at its base rate (the schedule scales them all alike):
    one group a trainable depth, bottom first, then the heads."""
    rate = config.learning_rate
    heads = {"params": model.head_parameters(), "lr": rate * config.head_lr_multiplier}
    if config.layer_lr_decay == 1.0:
        return [{"params": model.encoder_parameters(), "lr": rate}, heads]
    layers = encoder_layers(model.encoder)
    levels: dict[int, list[nn.Parameter]] = {}
    for level, param in _levels(model.encoder.parameters(), layers):
        if param.requires_grad:
            levels.setdefault(level, []).append(param)
    top = len(layers)
    return [{"params": params, "lr": rate * config.layer_lr_decay ** (top - level)}
            for level, params in sorted(levels.items())] + [heads]


def _levels(params: Iterable[nn.Parameter], layers: nn.ModuleList) -> Iterable[tuple[int, nn.Parameter]]:
    """Each encoder parameter with its depth: i for layer i (1 = bottom); outside the layers, by where the model
    registers it: before them (the embeddings, ELECTRA's projection) 0, after them (a final norm) the top, L."""
    depth_of = {id(p): i for i, layer in enumerate(layers, start=1) for p in layer.parameters()}
    past_layers = False
    for param in params:
        past_layers = past_layers or id(param) in depth_of
        yield depth_of.get(id(param), len(layers) if past_layers else 0), param
