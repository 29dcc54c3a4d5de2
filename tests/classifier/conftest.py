"""A tiny saved classifier, built as `hpo train` saves one (random heads on the tiny BERT), for the tests that
load, predict with and evaluate saved models without training one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.builders import write_study


def label_names(name: str) -> tuple[str, ...]:
    """A built-in dataset's label set, as training reads it."""
    from hpo.train.corpora import builtin_file, read_tab

    _, labels = read_tab(builtin_file(name, "train"))
    return tuple(sorted({label.strip() for label in labels if label.strip()}))


@pytest.fixture(scope="session")
def save_tiny(tiny_model_dir) -> Callable[..., dict[str, Any]]:
    """`save_tiny(root, **training)`: a TransferModel (R8 target head, 20 Newsgroups source head) saved into
    `root / "model"` with the tiny study's training config, `training` fields overriding it; returns the directory,
    the in-memory model, its tokenizer and label names."""
    import torch

    from hpo.classifier.saved import save_classifier
    from hpo.spec import ModelSpec, load_spec
    from hpo.train.model import TransferModel, load_encoder

    def save(root: Path, **training: Any) -> dict[str, Any]:
        study = write_study(root / "study.yaml", tiny_model_dir)
        bundle = load_encoder(ModelSpec(id=str(tiny_model_dir)))
        labels, source = label_names("reuters-r8"), label_names("20newsgroups")
        torch.manual_seed(0)
        model = TransferModel(bundle.encoder, len(labels), len(source), "mean").eval()
        config = load_spec(study).base_config().model_copy(update=training)
        save_classifier(model, bundle.tokenizer, root / "model", label_names=labels, source_label_names=source,
                        config=config, study_text=study.read_text())
        return {"dir": root / "model", "model": model, "tokenizer": bundle.tokenizer, "labels": labels, "root": root}

    return save
