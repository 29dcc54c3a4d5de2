"""A classifier trained by transfer-hpo, as a standard Hugging Face sequence classifier.

`hpo train` saves the chosen model as this: the encoder it fine-tuned (LoRA adapters merged into its weights), the
pooling it trained with (mean over the attention mask, the first token, or the last real token), and its target
head, with the dataset's label names as `id2label`. Stock
`XForSequenceClassification` classes put their own layers between the encoder and the head (BERT's pooler,
DistilBERT's pre-classifier, RoBERTa's dense layer), so none of them reproduces the probabilities as trained; this
one does. (A decoder with `last` pooling is the exception: its stock class, e.g. `LlamaForSequenceClassification`,
computes exactly that, so `hpo train` saves it as the stock class and this one serves every other model.)

Importing this module registers these classes with transformers' Auto classes (`import hpo.classifier` imports it).
The file is self-contained (torch and transformers only) and `hpo train` copies it into every saved model directory,
so where transfer-hpo is not installed, importing that copy (`sys.path.insert(0, DIR); import
modeling_transfer_hpo`) registers the same classes. Without either import, transformers refuses the unknown model
type: a saved model never loads with a silently random head.

`config.json` carries no `auto_map`: with one, transformers 5 asks "run custom code? [y/N]" (and waits 15 s in a
terminal) whenever a plain `AutoTokenizer.from_pretrained(DIR)` or `AutoConfig` reads the directory, though the
tokenizer is a stock one. So nothing that reads a saved model ever asks to run code from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "transfer-hpo-classifier"


class TransferClassifierConfig(PretrainedConfig):
    """The encoder's own config (as a dict), the pooling, and the usual label maps; `pad_token_id` is the padding
    that `last` pooling looks past."""

    model_type = MODEL_TYPE

    def __init__(self, encoder_config: dict[str, Any] | None = None, pooling: str = "mean",
                 trained_max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder_config = encoder_config or {}
        self.pooling = pooling
        self.trained_max_length = trained_max_length  # not `max_length`: transformers reserves it for generation


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, input_ids: torch.Tensor,
         pad_id: int | None) -> torch.Tensor:
    """The first token's state ("cls"); the state of the rightmost token that is not `pad_id` ("last", the rule of
    transformers' own `*ForSequenceClassification`, either padding side); or the mean of the states under the
    attention mask ("mean")."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        not_pad = (input_ids != pad_id).to(hidden.device, torch.int32)
        positions = torch.arange(input_ids.shape[-1], device=hidden.device, dtype=torch.int32)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), (positions * not_pad).argmax(-1)]
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
        # bias-free under `last`, as trained (like the stock `score` head of a decoder)
        self.classifier = nn.Linear(encoder_config.hidden_size, config.num_labels, bias=config.pooling != "last")
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:  # a fresh head only; saved weights replace it when loading
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = pool(hidden, attention_mask, self.config.pooling, input_ids, self.config.pad_token_id)
        logits = self.classifier(pooled.to(self.classifier.weight.dtype))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def register() -> None:
    """Make `AutoConfig`, `AutoModelForSequenceClassification` and so `pipeline(...)` load this model type."""
    AutoConfig.register(MODEL_TYPE, TransferClassifierConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(TransferClassifierConfig, TransferForSequenceClassification,
                                                exist_ok=True)


register()
