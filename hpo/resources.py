"""What a process loads once and every fine-tune in it shares: model files, datasets, tokenised arrays.

Searching, retraining and measuring the transfer effect all fit models through `Workbench.fit`, so a retrain with
the same config and seed repeats a trial's run exactly. No Optuna here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hpo.train.config import TrainConfig
from hpo.train.data import Corpus, TaskData
from hpo.train.loop import Evaluation, TrainResult, train
from hpo.train.model import EncoderBundle, TransferModel
from hpo.train.tokens import Encoded, encode, tokenizer_fingerprint

__all__ = ["Workbench"]


@dataclass
class Workbench:
    bundle: EncoderBundle
    data: TaskData
    _tokenizer_key: str = ""

    def encoded(self, corpus: Corpus | str, max_length: int) -> Encoded:
        """Token ids of a corpus (or of "source", "train", "val"), tokenised once per max length (`encode`
        keeps them in the process and on disk)."""
        if isinstance(corpus, str):
            corpus = {"source": self.data.source, "train": self.data.target_train, "val": self.data.target_val}[corpus]
        if not self._tokenizer_key:
            self._tokenizer_key = tokenizer_fingerprint(self.bundle.tokenizer)
        return encode(self.bundle.tokenizer, self._tokenizer_key, corpus, max_length)

    @property
    def pad_id(self) -> int:
        return self.bundle.tokenizer.pad_token_id or 0

    def new_model(self, config: TrainConfig) -> TransferModel:
        import torch

        torch.manual_seed(config.seed)  # the same heads for the same seed, whatever ran before
        model = TransferModel(
            self.bundle.fresh_encoder(), len(self.data.target_train.label_names), len(self.data.source.label_names),
            self.bundle.spec.pooling,
        )
        model.freeze(config.freeze_depth)
        return model

    def fit(
        self,
        config: TrainConfig,
        on_eval: Callable[[Evaluation], None],
        *,
        model: TransferModel | None = None,
        train_corpus: Corpus | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> tuple[TransferModel, TrainResult]:
        """Fine-tune a fresh model (or `model`) on the target train split (or `train_corpus`), validating on the
        target validation split."""
        model = model if model is not None else self.new_model(config)
        source = self.encoded("source", config.max_length) if config.source_weight < 1 else None
        target = self.encoded(train_corpus if train_corpus is not None else "train", config.max_length)
        result = train(config, model, target, self.encoded("val", config.max_length), source,
                       pad_id=self.pad_id, on_eval=on_eval, on_step=on_step)
        return model, result
