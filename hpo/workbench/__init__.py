"""What a process loads once for a study and every fine-tune in it shares: the model check, the datasets, the
tokenised arrays and the encoder; and the fits built on them.

Searching, retraining and measuring the transfer effect all fit models through `Workbench.fit`, so a retrain with
the same config and seed repeats a trial's run exactly. No Optuna here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hpo.errors import SpecError
from hpo.spec import Range, StudySpec
from hpo.train.config import TrainConfig
from hpo.train.sources import ModelSpec
from hpo.workbench.checks import StudyCheck, check_study_file, data_problems, model_problems, study_warnings

if TYPE_CHECKING:
    from hpo.train.data import Corpus, TaskData
    from hpo.train.loop import Evaluation, Placement, TrainResult
    from hpo.train.model import EncoderBundle, TransferModel
    from hpo.train.tokens import Encoded

__all__ = ["BestFit", "StudyCheck", "Workbench", "check_study_file", "open_workbench", "study_warnings"]


def open_workbench(spec: StudySpec, source: str) -> Workbench:
    """Check the model against the study and load its data, every problem of both reported at once (SpecError
    naming `source`, the study file); the encoder loads on first use."""
    task, problems = data_problems(spec.source, spec.target, validation_size=spec.validation_size,
                                   seed=spec.training.seed)
    problems = model_problems(spec.model, _Highest(spec)) + problems
    if problems or task is None:
        raise SpecError(source, problems)
    return Workbench(spec.model, task)


class _Highest:
    """The highest value a training field can take in a valid spec, and the field path that sets it."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    def __call__(self, name: str) -> tuple[int, str]:
        entry = self.spec.search_space.get(name, getattr(self.spec.training, name))
        highest = entry.high if isinstance(entry, Range) else max(getattr(entry, "choices", [entry]))
        return int(highest), (f"search_space -> {name}" if name in self.spec.search_space else f"training -> {name}")


@dataclass(frozen=True)
class BestFit:
    """A fit whose model holds the weights of its best validation step."""

    model: TransferModel
    result: TrainResult
    best: Evaluation | None  # None when nothing was evaluated


@dataclass
class Workbench:
    model_spec: ModelSpec
    data: TaskData
    _tokenizer_key: str = field(default="", repr=False)

    @cached_property
    def bundle(self) -> EncoderBundle:
        """The encoder and tokenizer, loaded once; each fine-tune gets a fresh copy of the encoder."""
        from hpo.train.model import load_encoder

        return load_encoder(self.model_spec)

    def encoded(self, corpus: Corpus | str, max_length: int) -> Encoded:
        """Token ids of a corpus (or of "source", "train", "val"), tokenised once per max length (`encode` keeps
        them in the process and on disk)."""
        from hpo.train.tokens import encode, tokenizer_fingerprint

        if isinstance(corpus, str):
            corpus = {"source": self.data.source, "train": self.data.target_train, "val": self.data.target_val}[corpus]
        if not self._tokenizer_key:
            self._tokenizer_key = tokenizer_fingerprint(self.bundle.tokenizer)
        return encode(self.bundle.tokenizer, self._tokenizer_key, corpus, max_length)

    @property
    def pad_id(self) -> int:
        """What batches are padded with: the pad token `load_encoder` chose (never a token inside a text)."""
        return self.bundle.pad_id

    def new_model(self, config: TrainConfig) -> TransferModel:
        """A fresh model for `config`: the encoder copied, new heads seeded by `config.seed`, pooled as it says (or
        as the model section does), frozen as it says, with LoRA adapters above the frozen layers and gradient
        checkpointing when it asks for them."""
        import torch

        from hpo.train.adapters import add_lora
        from hpo.train.model import TransferModel

        torch.manual_seed(config.seed)  # the same heads for the same seed, whatever ran before
        model = TransferModel(self.bundle.fresh_encoder(), len(self.data.target_train.label_names),
                              len(self.data.source.label_names), config.pooling or self.model_spec.pooling)
        model.freeze(config.freeze_depth)
        if config.adapter == "lora":  # after the heads: the same seed gives full and LoRA trials the same heads
            add_lora(model, config)
        if config.gradient_checkpointing:
            model.checkpoint_gradients()
        return model

    def fit(
        self, config: TrainConfig, on_eval: Callable[[Evaluation], None], *, model: TransferModel | None = None,
        train_corpus: Corpus | None = None, on_step: Callable[[int, int], None] | None = None,
        where: Placement | None = None, result: TrainResult | None = None,
    ) -> tuple[TransferModel, TrainResult]:
        """Fine-tune a fresh model (or `model`) on the target train split (or `train_corpus`), validating on the
        target validation split."""
        from hpo.train.loop import train

        model = model if model is not None else self.new_model(config)
        source = self.encoded("source", config.max_length) if config.target_weight < 1 else None
        target = self.encoded(train_corpus if train_corpus is not None else "train", config.max_length)
        result = train(config, model, target, self.encoded("val", config.max_length), source, pad_id=self.pad_id,
                       on_eval=on_eval, on_step=on_step, where=where, result=result)
        return model, result

    def predicted(self, model: TransferModel, config: TrainConfig, corpus: Corpus) -> Any:
        """The class a fitted `model` predicts for each text of `corpus`, in order. Where the fit reused its frozen
        layers' outputs, so does this: the held-out split's are computed once per freeze depth and serve every seed
        and row of `hpo transfer-effect`, as the training splits' serve every trial."""
        from hpo.train.activations import Reuse, reuse_off_reason
        from hpo.train.loop import evaluate, placement

        where = placement(config)
        off = reuse_off_reason(model, config.freeze_depth, config.reuse_activations)
        reuse = None if off else Reuse(model, config.freeze_depth, pad_id=self.pad_id, device=where.device,
                                       autocast=where.autocast)
        return evaluate(model, self.encoded(corpus, config.max_length), self.pad_id, where.device, where.autocast,
                        config.batch_size * 4, reuse=reuse)

    def fit_keeping_best(
        self, config: TrainConfig, *, train_corpus: Corpus | None = None, keep_best: bool = True,
        on_eval: Callable[[Evaluation], Any] | None = None, on_step: Callable[[int, int], None] | None = None,
    ) -> BestFit:
        """`fit`, then the model takes back the weights of its best validation step (unless `keep_best` is off:
        then it keeps its last weights, as for a fit on train + validation, which has nothing to pick a step by)."""
        model = self.new_model(config)
        kept: dict[str, Any] = {}

        def keep(evaluation: Evaluation) -> None:
            if on_eval is not None:
                on_eval(evaluation)
            if keep_best and ("best" not in kept or evaluation.f1 > kept["best"].f1):
                kept.update(best=evaluation, state={k: v.detach().clone() for k, v in model.state_dict().items()})

        model, result = self.fit(config, keep, model=model, train_corpus=train_corpus, on_step=on_step)
        if "state" in kept:
            model.load_state_dict(kept["state"])
        return BestFit(model, result, kept.get("best"))
