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

from hpo.errors import DataError, SpecError
from hpo.spec import Range, StudySpec
from hpo.spec.sources import NO_SOURCE
from hpo.train.config import TrainConfig
from hpo.train.metrics import OBJECTIVES, ValidationObjective
from hpo.train.sources import DatasetSpec, ModelSpec
from hpo.workbench.checks import StudyCheck, check_study_file, data_problems, model_problems, study_warnings

if TYPE_CHECKING:
    from hpo.train.data import Corpus, TaskData
    from hpo.train.loop import Evaluation, Placement, TrainResult
    from hpo.train.model import EncoderBundle, TransferModel
    from hpo.train.tokens import Encoded

__all__ = ["BestFit", "StudyCheck", "Workbench", "check_study_file", "open_workbench", "study_warnings"]


def open_workbench(spec: StudySpec, source: str) -> Workbench:
    """Check the model against the study and load its data, every problem of both reported at once (SpecError
    naming `source`, the study file); the encoder loads on first use, and so does each candidate source of a
    study that searches the source (a source no trial draws is never loaded)."""
    candidates = spec.source_candidates()
    eager = None if spec.searches_source else next(iter(candidates.values()))
    task, problems = data_problems(eager, spec.target, validation_size=spec.validation_size, seed=spec.training.seed)
    problems = model_problems(spec.model, _Highest(spec)) + problems
    if problems or task is None:
        raise SpecError(source, problems)
    return Workbench(spec.model, task, candidates, spec.training.seed, spec.validation_objective)


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
    data: TaskData  # the target's splits, and the study's one source when it searches none
    sources: dict[str, DatasetSpec | None] = field(default_factory=dict)  # candidate sources by key
    seed: int = 0
    objective: ValidationObjective = OBJECTIVES["f1"]  # what a fit reports and keeps its best step by
    _tokenizer_key: str = field(default="", repr=False)
    _loaded: dict[str, Corpus | None] = field(default_factory=dict, repr=False)

    def source(self, key: str | None = None) -> Corpus | None:
        """The training split of the source task `key` (None: the study's only one), loaded the first time a trial
        draws it and kept for the process; None for `none` (target only)."""
        if key == NO_SOURCE:
            return None
        if key is None or not self.sources or (len(self.sources) == 1 and key in self.sources):
            return self.data.source
        if key not in self._loaded:
            from hpo.train.data import load_corpus

            if key not in self.sources:
                raise DataError(f"no candidate source {key!r} in this study (candidates: {', '.join(self.sources)})")
            dataset = self.sources[key]
            self._loaded[key] = None if dataset is None else load_corpus(dataset, "source", self.seed)
        return self._loaded[key]

    @cached_property
    def bundle(self) -> EncoderBundle:
        """The encoder and tokenizer, loaded once; each fine-tune gets a fresh copy of the encoder."""
        from hpo.train.model import load_encoder

        return load_encoder(self.model_spec)

    def encoded(self, corpus: Corpus | str, max_length: int) -> Encoded:
        """Token ids of a corpus (or of the target's "train" or "val" split), tokenised once per max length
        (`encode` keeps them in the process and on disk: a cache per corpus, so per candidate source too)."""
        from hpo.train.tokens import encode, tokenizer_fingerprint

        if isinstance(corpus, str):
            corpus = {"train": self.data.target_train, "val": self.data.target_val}[corpus]
        if not self._tokenizer_key:
            self._tokenizer_key = tokenizer_fingerprint(self.bundle.tokenizer)
        return encode(self.bundle.tokenizer, self._tokenizer_key, corpus, max_length)

    @property
    def pad_id(self) -> int:
        """What batches are padded with: the pad token `load_encoder` chose (never a token inside a text)."""
        return self.bundle.pad_id

    def new_model(self, config: TrainConfig, source: str | None = None) -> TransferModel:
        """A fresh model for `config`: the encoder copied, new heads seeded by `config.seed`, pooled as it says (or
        as the model section does), frozen as it says, with LoRA adapters above the frozen layers and gradient
        checkpointing when it asks for them."""
        import torch

        from hpo.train.adapters import add_lora
        from hpo.train.model import TransferModel

        torch.manual_seed(config.seed)  # the same heads for the same seed, whatever ran before
        corpus = self.source(source)
        model = TransferModel(self.bundle.fresh_encoder(), len(self.data.target_train.label_names),
                              len(corpus.label_names) if corpus is not None else 1,
                              config.pooling or self.model_spec.pooling)
        model.freeze(config.freeze_depth)
        if config.adapter == "lora":  # after the heads: the same seed gives full and LoRA trials the same heads
            add_lora(model, config)
        if config.gradient_checkpointing:
            model.checkpoint_gradients()
        return model

    def fit(
        self, config: TrainConfig, on_eval: Callable[[Evaluation], None], *, model: TransferModel | None = None,
        train_corpus: Corpus | None = None, on_step: Callable[[int, int], None] | None = None,
        where: Placement | None = None, result: TrainResult | None = None, source: str | None = None,
    ) -> tuple[TransferModel, TrainResult]:
        """Fine-tune a fresh model (or `model`) on the target train split (or `train_corpus`) and the source task
        `source` (None: the study's only one), validating on the target validation split."""
        from hpo.train.loop import train

        model = model if model is not None else self.new_model(config, source)
        corpus = self.source(source) if config.target_weight < 1 else None
        source_data = self.encoded(corpus, config.max_length) if corpus is not None else None
        target = self.encoded(train_corpus if train_corpus is not None else "train", config.max_length)
        result = train(config, model, target, self.encoded("val", config.max_length), source_data,
                       pad_id=self.pad_id, on_eval=on_eval, on_step=on_step, where=where, result=result,
                       objective=self.objective)
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
                        config.batch_size * 4, reuse=reuse).argmax(-1)

    def fit_keeping_best(
        self, config: TrainConfig, *, train_corpus: Corpus | None = None, keep_best: bool = True,
        on_eval: Callable[[Evaluation], Any] | None = None, on_step: Callable[[int, int], None] | None = None,
        source: str | None = None,
    ) -> BestFit:
        """`fit`, then the model takes back the weights of its best validation step (unless `keep_best` is off:
        then it keeps its last weights, as for a fit on train + validation, which has nothing to pick a step by)."""
        model = self.new_model(config, source)
        kept: dict[str, Any] = {}

        def keep(evaluation: Evaluation) -> None:
            if on_eval is not None:
                on_eval(evaluation)
            if keep_best and ("best" not in kept or self.objective.better(evaluation.value, kept["best"].value)):
                kept.update(best=evaluation, state={k: v.detach().clone() for k, v in model.state_dict().items()})

        model, result = self.fit(config, keep, model=model, train_corpus=train_corpus, on_step=on_step,
                                 source=source)
        if "state" in kept:
            model.load_state_dict(kept["state"])
        return BestFit(model, result, kept.get("best"))
