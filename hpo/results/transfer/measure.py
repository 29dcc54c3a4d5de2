"""The transfer effect's measurements on the held-out test split: zero-shot (no training: an encoder's nearest
label-name embedding, or a decoder's likeliest label name, likelihood.py), and fits of a config over seeds, each
keeping the weights of its best validation step, as a search trial's best step."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError
from hpo.results.transfer.choose import Picked
from hpo.results.transfer.likelihood import Prompt, causal_lm, predicted_labels
from hpo.results.transfer.stats import json_number, json_numbers, mean_ci
from hpo.train.config import TrainConfig

if TYPE_CHECKING:
    from hpo.train.data import Corpus
    from hpo.workbench import Workbench

__all__ = ["Row", "ZeroShot", "fit_and_test", "normalise_label", "zero_shot", "zero_shot_texts"]


@dataclass
class Row:
    name: str
    f1: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)  # the validation value (F1) of each fit's kept step
    choice: Picked | None = None
    config: dict[str, Any] | None = None
    note: str = ""

    def summary(self) -> dict[str, Any]:
        mean, low, high = mean_ci(self.f1)
        acc, acc_low, acc_high = mean_ci(self.accuracy)
        return {
            "f1": json_numbers(self.f1), "accuracy": json_numbers(self.accuracy),
            "f1_mean": json_number(mean), "f1_ci": [json_number(low), json_number(high)],
            "accuracy_mean": json_number(acc), "accuracy_ci": [json_number(acc_low), json_number(acc_high)],
            "value": json_numbers(self.value) or None,
            "trial": self.choice.record() if self.choice else None,
            "config": self.config, "note": self.note,
        }


def normalise_label(name: str) -> str:
    """A label name as words: "money-fx" -> "money fx", "comp.sys.mac.hardware" -> "comp sys mac hardware"."""
    return re.sub(r"[\s._\-/:]+", " ", name).strip() or name


def _embed(model: Any, data: Any, pad_id: int, where: Any, batch_size: int) -> Any:
    """Unit-length mean-pooled embeddings of every row of `data`, in row order."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from hpo.train.loop import collate

    order = np.argsort(data.lengths, kind="stable")
    out = torch.empty(len(data), model.encoder.config.hidden_size)
    with torch.inference_mode(), torch.autocast(where.device.type, dtype=where.autocast or torch.float32,
                                                 enabled=where.autocast is not None):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = collate(data, rows, pad_id, where.device)
            out[torch.from_numpy(rows)] = F.normalize(model.pool(ids, mask).float(), dim=-1).cpu()
    return out


@dataclass(frozen=True)
class ZeroShot:
    """The zero-shot row's result on the texts it scored, and how it was made."""

    f1: float
    accuracy: float
    method: str  # "embedding" (an encoder's nearest label name) or "log-likelihood" (a decoder's likeliest one)
    texts: int  # the test texts scored (--zero-shot-limit caps them)
    config: dict[str, Any]  # what the JSON records: the label texts, the prompt…
    note: str


def zero_shot_texts(test: Corpus, limit: int | None, seed: int) -> Corpus:
    """The test texts the zero-shot row scores: all of them, or `limit` drawn at random with `seed` (a seeded draw
    rather than the first N: a test file may be sorted by label), kept in file order."""
    import numpy as np

    if limit is None or limit >= len(test):
        return test
    return test.take(np.sort(np.random.default_rng(seed).choice(len(test), limit, replace=False)))


def zero_shot(bench: Workbench, test: Corpus, config: TrainConfig,
              on_text: Callable[[int, int], None] | None = None) -> ZeroShot:
    """Zero-shot on `test`: for a decoder-only model the log-likelihood of each label name after a fixed prompt
    (its LM head, likelihood.py), for an encoder, or a decoder checkpoint without an LM head, the nearest label-name
    embedding."""
    from hpo.train.backbone import is_decoder

    if not is_decoder(bench.bundle.encoder):
        return _embedding_zero_shot(bench, test, config, "")
    model = causal_lm(bench)
    if model is None:
        return _embedding_zero_shot(bench, test, config, "the checkpoint has no trained LM head, so ")
    return _likelihood_zero_shot(model, bench, test, config, on_text)


def _likelihood_zero_shot(model: Any, bench: Workbench, test: Corpus, config: TrainConfig,
                          on_text: Callable[[int, int], None] | None) -> ZeroShot:
    from hpo.train.loop import placement
    from hpo.train.metrics import accuracy, f1

    names = tuple(normalise_label(name) for name in test.label_names)
    prompt = Prompt(bench.bundle.tokenizer, names, config.max_length)
    predictions = predicted_labels(model, test, config, prompt, on_text)
    del model
    _release(placement(config).device)
    return ZeroShot(
        f1(test.labels, predictions, config.f1_average), accuracy(test.labels, predictions), "log-likelihood",
        len(test), {"method": "log-likelihood", "label_texts": list(names), "prompt_style": prompt.style,
                    "prompt": prompt.template(), "max_length": config.max_length},
        f"no training: the label name with the highest summed log-likelihood after a fixed prompt "
        f"({prompt.style}), scored by the model's LM head; deterministic, the same value for every seed")


def _embedding_zero_shot(bench: Workbench, test: Corpus, config: TrainConfig, why: str) -> ZeroShot:
    """Test F1 and accuracy of labelling each text by the nearest label-name embedding (cosine). No training, no
    randomness."""
    import numpy as np

    from hpo.train.data import Corpus
    from hpo.train.loop import placement
    from hpo.train.metrics import accuracy, f1
    from hpo.train.model import TransferModel

    where = placement(config)
    names = [normalise_label(name) for name in test.label_names]
    labels = Corpus(tuple(names), np.arange(len(names), dtype=np.int64), tuple(names))
    model = TransferModel(bench.bundle.fresh_encoder(), len(names), 1, "mean").to(where.device).eval()
    batch = config.batch_size * 4
    label_vectors = _embed(model, bench.encoded(labels, config.max_length), bench.pad_id, where, batch)
    text_vectors = _embed(model, bench.encoded(test, config.max_length), bench.pad_id, where, batch)
    predictions = (text_vectors @ label_vectors.T).argmax(-1).numpy()
    del model
    _release(where.device)
    return ZeroShot(
        f1(test.labels, predictions, config.f1_average), accuracy(test.labels, predictions), "embedding", len(test),
        {"method": "embedding", "label_texts": names, "max_length": config.max_length, "pooling": "mean"},
        f"no training: {why}nearest label-name embedding (cosine, mean-pooled pretrained encoder); deterministic, "
        "the same value for every seed")


def fit_and_test(
    bench: Workbench, config: TrainConfig, test: Corpus, *, on_step: Callable[[int, int], None] | None = None,
    source: str | None = None,
) -> tuple[float, float, float]:
    """Fit `config` as a search trial would, keep the best validation step's weights, and return its test F1
    (the config's f1_average), test accuracy and the validation objective's value at the step kept."""
    from hpo.train.loop import NonFiniteLoss, placement
    from hpo.train.metrics import accuracy, f1

    where = placement(config)
    try:
        fit = bench.fit_keeping_best(config, on_step=on_step, source=source)
    except NonFiniteLoss as exc:
        raise HpoError(f"seed {config.seed}: {exc}") from None
    predictions = bench.predicted(fit.model, config, test)
    value = fit.best.value
    del fit  # free the model before releasing memory
    _release(where.device)
    return f1(test.labels, predictions, config.f1_average), accuracy(test.labels, predictions), value


def _release(device: Any) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
