"""A trained classifier on disk, as a standard Hugging Face sequence classifier, and back.

A model directory written by `hpo train` holds:
- `config.json`, `model.safetensors`: a `TransferForSequenceClassification` (modeling_transfer_hpo.py, copied
  beside them): the encoder, the pooling it trained with and its target head, `id2label`/`label2id` from the
  dataset's label names. After `import hpo.classifier` (or importing the copied file),
  `pipeline("text-classification", model=DIR)` and `AutoModelForSequenceClassification.from_pretrained(DIR)` load it
  with its trained head;
- the tokenizer, its `model_max_length` the trained max length (pass `truncation=True`: pipelines don't truncate),
  and `tokenizer_class` named, so `AutoTokenizer.from_pretrained(DIR)` loads it anywhere without asking anything;
- `source_head.safetensors`: the source task's head, and `hpo_classifier.json`: both tasks' label names and the
  training config;
- `study.yaml`: the (exported) study file it was trained from, paths absolute, so `hpo evaluate` finds the test
  split from any directory;
- `metrics.json`: what `hpo train` measured, and `README.md`, the model card.

Loading here never runs code from the directory: the classes are this package's own, and transformers is told
`trust_remote_code=False`, so an `auto_map` planted in `config.json` or `tokenizer_config.json` is never followed
and never asks "run custom code?".
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hpo.classifier.modeling_transfer_hpo import (
    TransferClassifierConfig,
    TransferForSequenceClassification,
)
from hpo.errors import HpoError
from hpo.train.config import TrainConfig
from hpo.train.model import TransferModel

__all__ = ["SavedClassifier", "load_classifier", "predict_proba", "save_classifier", "to_hf"]

_META = "hpo_classifier.json"
_SOURCE_HEAD = "source_head.safetensors"
_MODELING = Path(__file__).with_name("modeling_transfer_hpo.py")


@dataclass(frozen=True)
class SavedClassifier:
    model: TransferForSequenceClassification
    tokenizer: Any
    label_names: tuple[str, ...]
    config: TrainConfig
    study_text: str
    directory: Path


def to_hf(model: TransferModel, label_names: tuple[str, ...], max_length: int) -> TransferForSequenceClassification:
    """The trained model as a Hugging Face classifier: the same encoder weights and target head, in eval mode.
    LoRA adapters are merged into `model`'s weights first (it keeps computing the same function)."""
    from hpo.train.adapters import merge_adapters

    merge_adapters(model)  # a plain transformers encoder again, with its own parameter names
    encoder = {k: v for k, v in model.encoder.config.to_dict().items()
               if k not in ("_name_or_path", "id2label", "label2id")}  # where it trained, and the encoder's dummies
    config = TransferClassifierConfig(
        encoder_config=encoder, pooling=model.pooling, trained_max_length=max_length,
        id2label=dict(enumerate(label_names)), label2id={name: i for i, name in enumerate(label_names)},
        architectures=["TransferForSequenceClassification"], pad_token_id=model.pad_id,
    )
    classifier = TransferForSequenceClassification(config)
    classifier.encoder.load_state_dict(model.encoder.state_dict())
    classifier.classifier.load_state_dict(model.target_head.state_dict())
    return classifier.eval()


def save_classifier(
    model: TransferModel, tokenizer: Any, directory: Path, *, label_names: tuple[str, ...],
    source_label_names: tuple[str, ...], config: TrainConfig, study_text: str,
) -> None:
    from safetensors.torch import save_file

    from hpo.files import output_dir, write_output

    output_dir(directory)
    to_hf(model.cpu(), label_names, config.max_length).save_pretrained(directory)
    tokenizer.model_max_length = config.max_length  # what the model trained on; the pipeline's truncation length
    tokenizer.save_pretrained(directory)
    _name_tokenizer_class(directory / "tokenizer_config.json", type(tokenizer).__name__)
    shutil.copyfile(_MODELING, directory / _MODELING.name)  # importing it registers the classes without hpo
    save_file({k: v.detach().cpu().contiguous() for k, v in model.source_head.state_dict().items()},
              str(directory / _SOURCE_HEAD))
    meta = {"label_names": list(label_names), "source_label_names": list(source_label_names),
            "config": config.model_dump(mode="json")}
    write_output(directory / _META, json.dumps(meta, indent=2))
    write_output(directory / "study.yaml", study_text)


def load_classifier(directory: Path) -> SavedClassifier:
    """The classifier saved in `directory`, with this package's classes and no code from the directory."""
    directory = Path(directory)
    if not (directory / _META).exists():
        raise HpoError(f"{directory}: not a model saved by `hpo train` (no {_META})")
    meta = json.loads((directory / _META).read_text())
    model = TransferForSequenceClassification.from_pretrained(directory, trust_remote_code=False).eval()
    return SavedClassifier(model, _tokenizer(directory, model.config), tuple(meta["label_names"]),
                           TrainConfig.model_validate(meta["config"]), (directory / "study.yaml").read_text(),
                           directory)


def _tokenizer(directory: Path, config: TransferClassifierConfig) -> Any:
    from transformers import AutoTokenizer

    try:  # the model's config given, so transformers never reads config.json's auto_map to find one
        return AutoTokenizer.from_pretrained(directory, config=config, trust_remote_code=False)
    except ValueError as exc:
        if "custom code" not in str(exc):
            raise
        raise HpoError(f"{directory / 'tokenizer_config.json'}: asks for a tokenizer defined by code in the directory "
                       "(auto_map) and names no standard tokenizer_class; hpo never runs code from a model "
                       "directory") from None


def _name_tokenizer_class(path: Path, name: str) -> None:
    """Write the tokenizer's class into tokenizer_config.json (save_pretrained does for most tokenizers), so that
    AutoTokenizer finds a stock class without looking for code."""
    from hpo.files import write_output

    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("tokenizer_class") != name:
        write_output(path, json.dumps({**saved, "tokenizer_class": name}, indent=2, ensure_ascii=False) + "\n")


def predict_proba(saved: SavedClassifier, texts: list[str], *, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities of `texts` (rows in input order), computed in length-sorted batches."""
    import numpy as np

    from hpo.train.loop import collate, resolve_device
    from hpo.train.tokens import Encoded

    rows = saved.tokenizer(list(texts), truncation=True, max_length=saved.config.max_length)["input_ids"]
    lengths = np.array([len(r) for r in rows])
    encoded = Encoded(np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(lengths.sum())),
                      np.concatenate([[0], np.cumsum(lengths)]), np.zeros(len(rows), dtype=np.int64))
    device = resolve_device("auto")  # what this machine has: a model trained on a GPU still predicts on a CPU
    model = saved.model.to(device).eval()
    out = torch.empty(len(rows), len(saved.label_names))
    order = np.argsort(lengths, kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask, _ = collate(encoded, batch, saved.tokenizer.pad_token_id or 0, device)
            out[torch.from_numpy(batch)] = model(input_ids=ids, attention_mask=mask).logits.float().softmax(-1).cpu()
    return out
