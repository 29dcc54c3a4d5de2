"""What the activation tests fit: 160 R8 texts on a tiny encoder of any covered family, frozen to a depth, for 2
epochs on the CPU, with or without reused activations."""

from __future__ import annotations

import copy

import numpy as np
import torch

from hpo.train.config import TrainConfig
from hpo.train.loop import TrainResult, train
from hpo.train.model import TransferModel
from hpo.train.tokens import Encoded, encode, tokenizer_fingerprint

N_LABELS = 8
R8 = tuple[dict, object]  # the corpora ("train", "val") and the tokenizer


def r8_corpus(tokenizer) -> R8:
    """160 R8 training texts and 80 validation texts (most longer than 48 tokens: truncated)."""
    from hpo.train.corpora import builtin_file, read_tab
    from hpo.train.data import Corpus

    texts, labels = read_tab(builtin_file("reuters-r8", "train"))
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    corpus = {"train": Corpus(tuple(texts[:160]), y[:160], tuple(names)),
              "val": Corpus(tuple(texts[160:240]), y[160:240], tuple(names))}
    return corpus, tokenizer


def encoded(data: R8, max_length: int = 48) -> tuple[Encoded, Encoded]:
    corpus, tokenizer = data
    key = tokenizer_fingerprint(tokenizer)
    return encode(tokenizer, key, corpus["train"], max_length), encode(tokenizer, key, corpus["val"], max_length)


def tiny_encoder(family: str, tokenizer, layers: int = 3) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    shape = {"dim": 32, "hidden_dim": 64, "n_layers": layers, "n_heads": 2} if family == "distilbert" else \
        {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": layers, "num_attention_heads": 2}
    if family == "electra":
        shape["embedding_size"] = 16  # a projection between the embeddings and the layers
    config = AutoConfig.for_model(family, vocab_size=tokenizer.vocab_size, max_position_embeddings=130, **shape)
    encoder = AutoModel.from_config(config)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def frozen_model(encoder: torch.nn.Module, depth: int, pooling: str = "mean") -> TransferModel:
    torch.manual_seed(1)
    model = TransferModel(copy.deepcopy(encoder), N_LABELS, 3, pooling)
    model.freeze(depth)
    return model


def config(depth: int, reuse: bool = True, **changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 16, "max_length": 48, "freeze_depth": depth,
                          "evaluations_per_epoch": 2, "learning_rate": 1e-3, "target_weight": 1.0, "device": "cpu",
                          "precision": "fp32", "reuse_activations": reuse, **changes})


def fit(encoder: torch.nn.Module, data: R8, depth: int, reuse: bool = True,
        pooling: str = "mean") -> tuple[TransferModel, TrainResult]:
    train_data, val_data = encoded(data)
    model = frozen_model(encoder, depth, pooling)
    result = train(config(depth, reuse), model, train_data, val_data, None, pad_id=0, on_eval=lambda e: None)
    return model, result
