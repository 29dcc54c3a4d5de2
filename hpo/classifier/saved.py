"""A trained classifier on disk, and back.

Layout of a model directory (written by `hpo train`):
- the encoder and tokenizer via `save_pretrained` at the top level, so `AutoModel.from_pretrained(dir)` and
  `AutoTokenizer.from_pretrained(dir)` load them as any Hugging Face model;
- `heads.safetensors`: the target and source heads;
- `hpo_classifier.json`: pooling, label names of both tasks, max length, the training config;
- `study.yaml`: the (exported) study file it was trained from, so `hpo evaluate` finds the test split;
- `metrics.json`: what `hpo train` measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hpo.errors import HpoError
from hpo.train.config import TrainConfig
from hpo.train.model import TransferModel

__all__ = ["SavedClassifier", "load_classifier", "save_classifier"]

_META = "hpo_classifier.json"
_HEADS = "heads.safetensors"


@dataclass
class SavedClassifier:
    model: TransferModel
    tokenizer: Any
    label_names: tuple[str, ...]
    config: TrainConfig
    study_text: str
    directory: Path


def save_classifier(
    model: TransferModel, tokenizer: Any, directory: Path, *, label_names: tuple[str, ...],
    source_label_names: tuple[str, ...], config: TrainConfig, study_text: str,
) -> None:
    from safetensors.torch import save_file

    from hpo.files import output_dir, write_output

    output_dir(directory)
    model.encoder.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    heads = {f"target_head.{k}": v for k, v in model.target_head.state_dict().items()}
    heads |= {f"source_head.{k}": v for k, v in model.source_head.state_dict().items()}
    save_file({k: v.detach().cpu().contiguous() for k, v in heads.items()}, str(directory / _HEADS))
    meta = {"pooling": model.pooling, "label_names": list(label_names),
            "source_label_names": list(source_label_names), "config": config.model_dump(mode="json")}
    write_output(directory / _META, json.dumps(meta, indent=2))
    write_output(directory / "study.yaml", study_text)


def load_classifier(directory: Path) -> SavedClassifier:
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    directory = Path(directory)
    if not (directory / _META).exists():
        raise HpoError(f"{directory}: not a model saved by `hpo train` (no {_META})")
    meta = json.loads((directory / _META).read_text())
    encoder = AutoModel.from_pretrained(directory)
    model = TransferModel(encoder, len(meta["label_names"]), len(meta["source_label_names"]), meta["pooling"])
    heads = load_file(str(directory / _HEADS))
    model.target_head.load_state_dict({k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("target_")})
    model.source_head.load_state_dict({k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith("source_")})
    model.eval()
    return SavedClassifier(model, AutoTokenizer.from_pretrained(directory), tuple(meta["label_names"]),
                           TrainConfig.model_validate(meta["config"]), (directory / "study.yaml").read_text(),
                           directory)


def predict_proba(saved: SavedClassifier, texts: list[str], *, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities of `texts` (rows in input order), computed in length-sorted batches."""
    import numpy as np

    from hpo.train.loop import collate, resolve_device
    from hpo.train.tokens import Encoded

    rows = saved.tokenizer(list(texts), truncation=True, max_length=saved.config.max_length)["input_ids"]
    lengths = np.array([len(r) for r in rows])
    encoded = Encoded(np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(lengths.sum())),
                      np.concatenate([[0], np.cumsum(lengths)]), np.zeros(len(rows), dtype=np.int64))
    device = resolve_device(saved.config.device)
    model = saved.model.to(device).eval()
    out = torch.empty(len(rows), len(saved.label_names))
    order = np.argsort(lengths, kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask, _ = collate(encoded, batch, saved.tokenizer.pad_token_id or 0, device)
            out[torch.from_numpy(batch)] = model(ids, mask).float().softmax(-1).cpu()
    return out
