"""A classifier trained by transfer-hpo, as a standard Hugging Face sequence classifier.

`hpo train` saves the chosen model as this: the encoder it fine-tuned, the pooling it trained with (mean over the
attention mask, or the first token), and its target head, with the dataset's label names as `id2label`. Stock
`XForSequenceClassification` classes put their own layers between the encoder and the head (BERT's pooler,
DistilBERT's pre-classifier, RoBERTa's dense layer), so none of them reproduces the probabilities as trained; this
one does.

This file is self-contained (torch and transformers only): `hpo train` copies it into every saved model directory,
and `config.json` names it in `auto_map`, so `trust_remote_code=True` loads the model where transfer-hpo is not
installed. Where it is, `import hpo.classifier` registers these classes with the Auto classes instead. Without
either, transformers refuses the unknown model type: a saved model never loads with a silently random head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "transfer-hpo-classifier"


class TransferClassifierConfig(PretrainedConfig):
    """The encoder's own config (as a dict), the pooling, and the usual label maps."""

    model_type = MODEL_TYPE

    def __init__(self, encoder_config: dict[str, Any] | None = None, pooling: str = "mean",
                 trained_max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder_config = encoder_config or {}
        self.pooling = pooling
        self.trained_max_length = trained_max_length  # not `max_length`: transformers reserves it for generation


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The first token's state ("cls"), or the mean of the states under the attention mask ("mean")."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TransferForSequenceClassification(PreTrainedModel):
    config_class = TransferClassifierConfig
    base_model_prefix = "encoder"

    def __init__(self, config: TransferClassifierConfig) -> None:
        super().__init__(config)
        encoder_config = AutoConfig.for_model(**config.encoder_config)
        self.encoder = AutoModel.from_config(encoder_config)
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # not part of the trained model (the pooling below replaces it)
        self.classifier = nn.Linear(encoder_config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:  # a fresh head only; saved weights replace it when loading
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.classifier(pool(hidden, attention_mask, self.config.pooling))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
