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

from hpo.errors import DataError, HpoError, SpecError
from hpo.spec import Range, StudySpec
from hpo.train.config import TrainConfig
from hpo.train.sources import ModelSpec

if TYPE_CHECKING:
    from hpo.train.data import Corpus, TaskData
    from hpo.train.loop import Evaluation, Placement, TrainResult
    from hpo.train.model import EncoderBundle, TransferModel
    from hpo.train.tokens import Encoded

__all__ = ["BestFit", "Workbench", "check_model", "load_data", "open_workbench"]


def check_model(spec: StudySpec, source: str) -> None:
    """Problems that need the model's config: a model family this project cannot fine-tune, a freeze depth beyond
    its layers, a max length beyond its position embeddings. Raised before anything is stored or trained."""
    from hpo.train.model import model_shape

    try:
        shape = model_shape(spec.model)
    except HpoError as exc:
        raise SpecError(source, [("model -> id", str(exc))]) from None
    problems = []
    highest, where = _highest(spec, "freeze_depth")
    if highest > shape.depth:
        problems.append((where, f"{highest} exceeds the {shape.depth} layers of {spec.model.id} (0 .. {shape.depth})"))
    longest, where = _highest(spec, "max_length")
    if shape.max_length is not None and longest > shape.max_length:
        problems.append((where, f"{longest} exceeds the {shape.max_length} positions of {spec.model.id} "
                                f"({shape.family}); at most {shape.max_length}"))
    if problems:
        raise SpecError(source, problems)


def _highest(spec: StudySpec, name: str) -> tuple[int, str]:
    """The highest value a training field can take in the study, and the field path that sets it."""
    entry = spec.search_space.get(name, getattr(spec.training, name))
    highest = entry.high if isinstance(entry, Range) else max(getattr(entry, "choices", [entry]))
    return int(highest), (f"search_space -> {name}" if name in spec.search_space else f"training -> {name}")


def load_data(spec: StudySpec, source: str) -> TaskData:
    """The study's source, target-train and validation data; a DataError names the study file (`source`)."""
    from hpo.train.data import load_task_data

    try:
        return load_task_data(spec.source, spec.target, validation_size=spec.validation_size, seed=spec.training.seed)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None


def open_workbench(spec: StudySpec, source: str) -> Workbench:
    """Check the model against the study, load its data; the encoder loads on first use. `source` names the study
    (its file) in errors."""
    check_model(spec, source)
    return Workbench(spec.model, load_data(spec, source))


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
        return self.bundle.tokenizer.pad_token_id or 0

    def new_model(self, config: TrainConfig) -> TransferModel:
        """A fresh model for `config`: the encoder copied, new heads seeded by `config.seed`, frozen as it says."""
        import torch

        from hpo.train.model import TransferModel

        torch.manual_seed(config.seed)  # the same heads for the same seed, whatever ran before
        model = TransferModel(self.bundle.fresh_encoder(), len(self.data.target_train.label_names),
                              len(self.data.source.label_names), self.model_spec.pooling)
        model.freeze(config.freeze_depth)
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
        source = self.encoded("source", config.max_length) if config.source_weight < 1 else None
        target = self.encoded(train_corpus if train_corpus is not None else "train", config.max_length)
        result = train(config, model, target, self.encoded("val", config.max_length), source, pad_id=self.pad_id,
                       on_eval=on_eval, on_step=on_step, where=where, result=result)
        return model, result

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
