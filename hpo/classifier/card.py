"""The model card, `README.md` in a directory written by `hpo train`: what the model is, what it was trained on,
where it came from, how well it does, and how to load it. A pure function of what `hpo train` knows, so the card
says exactly what `metrics.json`, `hpo_classifier.json` and `study.yaml` beside it say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from hpo.spec import StudySpec

if TYPE_CHECKING:
    from hpo.classifier.retrained import Retrained
    from hpo.classifier.saved import SavedFormat

__all__ = ["model_card"]

_FRONT_MATTER = "---\nlibrary_name: transformers\npipeline_tag: text-classification\ntags:\n- transfer-hpo\n---\n"


def model_card(spec: StudySpec, result: Retrained, *, directory: Path, source_labels: tuple[str, ...],
               train_size: int, saved: SavedFormat) -> str:
    """The card's Markdown (with the Hugging Face front matter), every figure as `metrics.json` holds it; how to
    load it as `saved` (what `save_classifier` wrote) says."""
    target, config = spec.target, result.config
    labels = result.test["classes"]
    trained_on = "its training split" if result.trained_on == "train" else "its training and validation splits"
    parts = [
        _FRONT_MATTER,
        f"# {spec.name}: a text classifier for {target.label}\n",
        f"Fine-tuned by transfer-hpo from the encoder **{spec.model.id}** ({spec.model.pooling} pooling into a linear "
        f"head) on the target **{target.label}** ({trained_on}, {train_size} documents, {len(labels)} classes), "
        f"{_transfer(spec, len(source_labels), config.target_weight)}; {_frozen(config.freeze_depth)}.\n",
        _origin(result),
        _metrics(result, target.test_label),
        "## Labels\n\n" + ", ".join(f"`{name}`" for name in labels) + "\n",
        "## Training config\n\n```yaml\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False) + "```\n",
        _stock_usage(directory, saved.architecture) if saved.stock else _usage(directory),
        _adapter_usage(directory, saved) if saved.adapter_base is not None else "",
    ]
    return "\n".join(parts)


def _transfer(spec: StudySpec, n_source_labels: int, weight: float) -> str:
    (dataset,) = spec.source_candidates().values()  # an exported trial's one source, or none
    if dataset is None:
        return "on the target alone (no source task)"
    source = f"the source task **{dataset.label}** ({n_source_labels} classes)"
    if weight == 1:
        return f"on the target alone (λ = 1: {source} weighed 0)"
    return f"with {source} in the loss: λ = {weight:g} weighs the target, 1 − λ the source"


def _frozen(depth: int) -> str:
    return "no layer frozen" if depth == 0 else f"the embeddings and the bottom {depth} encoder layers frozen"


def _origin(result: Retrained) -> str:
    origin = result.exported_from
    if origin is None:
        return "## Where it came from\n\nA study file with every field fixed, not an export of a search.\n"
    rows = [("study", origin.study), ("trial", str(origin.trial)),
            (f"trial's {origin.metric} in the search", _number(origin.value)),
            ("study file sha256", origin.spec_sha256), ("git commit", origin.git_commit or "unknown"),
            ("exported at", origin.exported_at)]
    return "## Where it came from\n\n| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def _metrics(result: Retrained, test_label: str) -> str:
    test = result.test
    rows = []
    if result.validation is not None:
        v = result.validation
        rows.append((f"validation (evaluation {v.evaluation}, epoch {v.epoch:g}; its weights are kept)",
                     f"{result.config.f1_average} F1", v.f1))
        rows.append(("validation", "accuracy", v.accuracy))
    where = f"test: {test_label}, {test['n']} documents"
    rows.append((where, "accuracy", test["accuracy"]))
    rows += [(where, f"{average} F1", test["f1"][average]) for average in ("macro", "micro", "weighted")]
    return ("## Metrics\n\n| split | metric | value |\n|---|---|---|\n"
            + "".join(f"| {split} | {metric} | {value:.4f} |\n" for split, metric, value in rows))


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


def _usage(directory: Path) -> str:
    where = json.dumps(str(directory))  # a Python string literal, in double quotes
    return f"""## How to use

With transfer-hpo installed:

```python
import hpo.classifier  # registers this model type with transformers' Auto classes
from transformers import pipeline

classify = pipeline("text-classification", model={where})
classify(["a text to label"], truncation=True)  # truncation: to the max length it trained with
```

Without it, the modeling file saved here (torch and transformers only) registers the same classes:

```python
import sys
sys.path.insert(0, {where})
import modeling_transfer_hpo  # noqa: F401
```

then `pipeline(...)` as above.
"""


def _stock_usage(directory: Path, architecture: str) -> str:
    where = json.dumps(str(directory))
    return f"""## How to use

A stock `{architecture}`: plain transformers loads it, with nothing to import and no remote
code (it scores the last token that is not padding with a bias-free linear head, as it trained):

```python
from transformers import pipeline

classify = pipeline("text-classification", model={where})
classify(["a text to label"], truncation=True)  # truncation: to the max length it trained with
```
"""


def _adapter_usage(directory: Path, saved: SavedFormat) -> str:
    """How peft loads `adapter/`: onto the same class with the pretrained backbone, which the merged model above
    already is with the adapter folded in."""
    where, base = json.dumps(str(directory)), json.dumps(saved.adapter_base)
    adapter = json.dumps(str(directory / "adapter"))
    if saved.stock:
        build = f"""from transformers import AutoConfig, AutoModelForSequenceClassification

# the pretrained model, with this model's labels and pad token (its head comes from the adapter)
base = AutoModelForSequenceClassification.from_pretrained({base}, config=AutoConfig.from_pretrained({where}))"""
    else:
        build = f"""import hpo.classifier  # or the modeling file saved here, as above
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

base = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained({where}))
base.encoder = AutoModel.from_pretrained({base})  # the pretrained backbone (its head comes from the adapter)"""
    return f"""## The LoRA adapter

The model above has its LoRA adapter merged into its weights. `adapter/` holds the adapter itself (peft), with the
trained head saved beside it as a module to save, for the pretrained model `{saved.adapter_base}`:

```python
from peft import PeftModel
{build}

model = PeftModel.from_pretrained(base, {adapter}).eval()
```
"""
