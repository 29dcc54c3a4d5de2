"""The chosen model: retrain an exported config (hpo train), its saved format, evaluate it, predict with it.

Importing this package registers the saved format with transformers' Auto classes, so that after
`import hpo.classifier`, `pipeline("text-classification", model=DIR)` and
`AutoModelForSequenceClassification.from_pretrained(DIR)` load a directory written by `hpo train` with its trained
head. (`import hpo` alone stays light and registers nothing.)
"""

from transformers import AutoConfig, AutoModelForSequenceClassification

from hpo.classifier.modeling_transfer_hpo import (
    MODEL_TYPE,
    TransferClassifierConfig,
    TransferForSequenceClassification,
)

AutoConfig.register(MODEL_TYPE, TransferClassifierConfig, exist_ok=True)
AutoModelForSequenceClassification.register(TransferClassifierConfig, TransferForSequenceClassification,
                                            exist_ok=True)

__all__ = ["TransferClassifierConfig", "TransferForSequenceClassification"]
