"""The chosen model: retrain an exported config (hpo train), its saved format, evaluate it, predict with it.

Importing this package registers the saved format with transformers' Auto classes (modeling_transfer_hpo.py does it
on import), so that after `import hpo.classifier`, `pipeline("text-classification", model=DIR)` and
`AutoModelForSequenceClassification.from_pretrained(DIR)` load a directory written by `hpo train` with its trained
head. (`import hpo` alone stays light and registers nothing.)
"""

from hpo.classifier.modeling_transfer_hpo import TransferClassifierConfig, TransferForSequenceClassification

__all__ = ["TransferClassifierConfig", "TransferForSequenceClassification"]
