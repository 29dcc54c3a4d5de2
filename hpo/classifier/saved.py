"""A trained classifier on disk, as a standard Hugging Face sequence classifier, and back.

A model directory written by `hpo train` holds:
- `config.json`, `model.safetensors`: the trained model with `id2label`/`label2id` from the dataset's label names,
  as one of two classes:
  - a decoder (GPT-2, Llama, Qwen2, Mistral, Phi-3) with `last` pooling and its bias-free head is exactly
    transformers' own `*ForSequenceClassification` (the rightmost token that is not padding, through a bias-free
    `score`), so it is saved as that stock class: plain `pipeline("text-classification", model=DIR)` loads it, with
    no import and no remote code;
  - anything else is a `TransferForSequenceClassification` (modeling_transfer_hpo.py, copied beside them): the
    encoder, the pooling it trained with and its target head. After `import hpo.classifier` (or importing the copied
    file), `pipeline(...)` and `AutoModelForSequenceClassification.from_pretrained(DIR)` load it with its head;
- the tokenizer, its `model_max_length` the trained max length (pass `truncation=True`: pipelines don't truncate),
  its pad token, padding on the right (as trained), and `tokenizer_class` named, so `AutoTokenizer.from_pretrained(DIR)`
  loads it anywhere without asking anything;
- `adapter/` after a LoRA fine-tune: the adapter (peft `save_pretrained`), the target head included as a module to
  save, for the pretrained backbone; the model above has it merged into its weights;
- `source_head.safetensors`: the source task's head, and `hpo_classifier.json`: both tasks' label names, the
  training config and the model's class;
- `study.yaml`: the (exported) study file it was trained from, paths absolute, so `hpo evaluate` finds the test
  split from any directory;
- `metrics.json`: what `hpo train` measured, and `README.md`, the model card.

Loading here never runs code from the directory: the classes are this package's own, and transformers is told
`trust_remote_code=False`, so an `auto_map` planted in `config.json` or `tokenizer_config.json` is never followed
and never asks "run custom code?".
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hpo.classifier.modeling_transfer_hpo import (
    TransferClassifierConfig,
    TransferForSequenceClassification,
)
from hpo.errors import HpoError
from hpo.train.config import TrainConfig
from hpo.train.model import TransferModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ADAPTER_DIR", "STOCK_CLASSES", "SavedClassifier", "SavedFormat", "load_classifier", "predict_proba",
           "save_classifier", "to_hf"]

_META = "hpo_classifier.json"
_SOURCE_HEAD = "source_head.safetensors"
_MODELING = Path(__file__).with_name("modeling_transfer_hpo.py")
_TRANSFER = TransferForSequenceClassification.__name__
ADAPTER_DIR = "adapter"

# A decoder family's own classifier, where it is exactly `last` pooling into a bias-free linear head: the base
# model, then `score` (bias-free) applied at the rightmost token that is not `config.pad_token_id`.
STOCK_CLASSES = {
    "gpt2": "GPT2ForSequenceClassification",
    "llama": "LlamaForSequenceClassification",
    "mistral": "MistralForSequenceClassification",
    "phi3": "Phi3ForSequenceClassification",
    "qwen2": "Qwen2ForSequenceClassification",
}


@dataclass(frozen=True)
class SavedClassifier:
    model: PreTrainedModel  # a TransferForSequenceClassification, or a STOCK_CLASSES class
    tokenizer: Any
    label_names: tuple[str, ...]
    config: TrainConfig
    study_text: str
    directory: Path


@dataclass(frozen=True)
class SavedFormat:
    """What `save_classifier` wrote, for the model card: the model's class, and the pretrained model an adapter
    (in `adapter/`) adapts, None when there is no adapter."""

    architecture: str
    adapter_base: str | None = None

    @property
    def stock(self) -> bool:
        return self.architecture != _TRANSFER


@dataclass(frozen=True)
class _Adapter:
    """A LoRA fine-tune's adapter, taken before merging folds it into the weights: its peft config and each adapted
    module's factors (A, B), by the module's path in the encoder."""

    config: Any
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]


def _stock_class(model: TransferModel) -> str | None:
    """The transformers class that computes exactly what `model` computes: a decoder of a STOCK_CLASSES family with
    `last` pooling and a bias-free target head. None for anything else (mean or first-token pooling, encoders)."""
    family = getattr(model.encoder.config, "model_type", None)
    if model.pooling != "last" or model.target_head.bias is not None:
        return None
    return STOCK_CLASSES.get(family)


def to_hf(model: TransferModel, label_names: tuple[str, ...], max_length: int) -> PreTrainedModel:
    """The trained model as a Hugging Face classifier (a stock class where one computes the same function, see
    `_stock_class`): the same backbone weights and target head, in eval mode. LoRA adapters are merged into
    `model`'s weights first (it keeps computing the same function)."""
    from hpo.train.adapters import merge_adapters

    merge_adapters(model)  # a plain transformers backbone again, with its own parameter names
    stock = _stock_class(model)
    classifier = _as_stock(model, label_names, stock) if stock else _as_transfer(model, label_names, max_length)
    return classifier.eval()


def _labels(label_names: tuple[str, ...]) -> dict[str, dict]:
    return {"id2label": dict(enumerate(label_names)), "label2id": {name: i for i, name in enumerate(label_names)}}


def _as_stock(model: TransferModel, label_names: tuple[str, ...], name: str) -> PreTrainedModel:
    import transformers

    config = copy.deepcopy(model.encoder.config)
    config.update({**_labels(label_names), "pad_token_id": model.pad_id, "architectures": [name]})
    config._name_or_path = ""  # where it trained from, not what it is
    if hasattr(config, "auto_map"):  # a backbone once loaded with remote code: the stock class needs none
        del config.auto_map
    classifier = getattr(transformers, name)(config)
    classifier.base_model.load_state_dict(model.encoder.state_dict())
    classifier.score.load_state_dict(model.target_head.state_dict())  # strict: a bias would be refused here
    return classifier


def _as_transfer(model: TransferModel, label_names: tuple[str, ...],
                 max_length: int) -> TransferForSequenceClassification:
    encoder = {k: v for k, v in model.encoder.config.to_dict().items()
               if k not in ("_name_or_path", "id2label", "label2id")}  # where it trained, and the encoder's dummies
    config = TransferClassifierConfig(
        encoder_config=encoder, pooling=model.pooling, trained_max_length=max_length, **_labels(label_names),
        architectures=[_TRANSFER], pad_token_id=model.pad_id,
    )
    classifier = TransferForSequenceClassification(config)
    classifier.encoder.load_state_dict(model.encoder.state_dict())
    classifier.classifier.load_state_dict(model.target_head.state_dict())
    return classifier


def save_classifier(
    model: TransferModel, tokenizer: Any, directory: Path, *, label_names: tuple[str, ...],
    source_label_names: tuple[str, ...], config: TrainConfig, study_text: str,
) -> SavedFormat:
    from safetensors.torch import save_file

    from hpo.files import output_dir, write_output

    output_dir(directory)
    adapter = _trained_adapter(model)  # before to_hf merges it into the weights
    base = model.encoder.name_or_path  # where the pretrained weights came from: what the adapter adapts
    classifier = to_hf(model.cpu(), label_names, config.max_length)
    classifier.save_pretrained(directory)
    tokenizer.model_max_length = config.max_length  # what the model trained on; the pipeline's truncation length
    # Padded on the right, as in training: GPT-2 and BERT number positions from the left edge, padding included.
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(directory)
    _name_tokenizer_class(directory / "tokenizer_config.json", type(tokenizer).__name__)
    architecture = type(classifier).__name__
    if architecture == _TRANSFER:
        shutil.copyfile(_MODELING, directory / _MODELING.name)  # importing it registers the classes without hpo
    save_file({k: v.detach().cpu().contiguous() for k, v in model.source_head.state_dict().items()},
              str(directory / _SOURCE_HEAD))
    meta = {"label_names": list(label_names), "source_label_names": list(source_label_names),
            "config": config.model_dump(mode="json"), "architecture": architecture}
    write_output(directory / _META, json.dumps(meta, indent=2))
    write_output(directory / "study.yaml", study_text)
    if adapter is None:
        return SavedFormat(architecture)
    _save_adapter(classifier, adapter, base, directory / ADAPTER_DIR)  # last: it puts the adapter into `classifier`
    return SavedFormat(architecture, base)


def _trained_adapter(model: TransferModel) -> _Adapter | None:
    """The LoRA adapter in `model`'s encoder; None after a full fine-tune (or LoRA with every layer frozen)."""
    peft_config = getattr(model.encoder, "peft_config", None)
    if peft_config is None:
        return None
    from peft.tuners.lora import LoraLayer

    from hpo.train.adapters import ADAPTER

    factors = {name: (module.lora_A[ADAPTER].weight.detach().cpu().clone(),
                      module.lora_B[ADAPTER].weight.detach().cpu().clone())
               for name, module in model.encoder.named_modules()
               if isinstance(module, LoraLayer) and ADAPTER in module.lora_A}
    return _Adapter(copy.deepcopy(peft_config[ADAPTER]), factors)


def _save_adapter(classifier: PreTrainedModel, adapter: _Adapter, base: str, where: Path) -> None:
    """The adapter as peft saves one for `classifier`'s class: the trained factors on the same modules (now under
    the backbone's attribute, e.g. `model.` or `encoder.`), and the target head as a module to save, so that
    `PeftModel.from_pretrained(<that class with the pretrained backbone>, where)` gives the trained logits."""
    from peft import get_peft_model

    from hpo.train.adapters import ADAPTER

    config = copy.deepcopy(adapter.config)
    # A sequence classifier's adapter: peft saves the head as a module to save, by its name (`classifier` in the
    # project's class, `score` in the stock ones), and AutoPeftModelForSequenceClassification knows the task.
    config.modules_to_save, config.task_type, config.base_model_name_or_path = None, "SEQ_CLS", base
    config.inference_mode = True
    classifier.name_or_path = base  # what peft names as the base (it overrides the config's with this)
    # Injected into the merged classifier only to be saved: peft writes the adapter and the head, never the base.
    peft_model = get_peft_model(classifier, config, adapter_name=ADAPTER)
    with torch.no_grad():
        for name, (a, b) in adapter.factors.items():
            module = classifier.get_submodule(f"{classifier.base_model_prefix}.{name}")
            module.lora_A[ADAPTER].weight.copy_(a)
            module.lora_B[ADAPTER].weight.copy_(b)
    peft_model.save_pretrained(where)


def load_classifier(directory: Path) -> SavedClassifier:
    """The classifier saved in `directory`, with this package's classes and no code from the directory."""
    directory = Path(directory)
    if not (directory / _META).exists():
        raise HpoError(f"{directory}: not a model saved by `hpo train` (no {_META})")
    meta = json.loads((directory / _META).read_text())
    # The class hpo_classifier.json names (older directories: the project's own), never config.json's model type
    model = _classifier_class(meta.get("architecture", _TRANSFER)).from_pretrained(
        directory, trust_remote_code=False).eval()
    return SavedClassifier(model, _tokenizer(directory, model.config), tuple(meta["label_names"]),
                           TrainConfig.model_validate(meta["config"]), (directory / "study.yaml").read_text(),
                           directory)


def _classifier_class(name: str) -> type[PreTrainedModel]:
    if name == _TRANSFER:
        return TransferForSequenceClassification
    if name not in STOCK_CLASSES.values():
        raise HpoError(f"{_META}: architecture {name!r} is not a class hpo saves; it saves {_TRANSFER} or "
                       f"{', '.join(sorted(STOCK_CLASSES.values()))}")
    import transformers

    return getattr(transformers, name)


def _tokenizer(directory: Path, config: Any) -> Any:
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
