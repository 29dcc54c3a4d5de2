"""`hpo rank-models`: rank pretrained models for a study's target before fine-tuning any of them.

The target's training split is read once, as the study reads it (its `max_samples`, its seed; never the test
split, and before any validation split is carved out of it: LogME fits no weights to select on). Each candidate
then encodes it once with every weight frozen, pooled as the study pools (`training.pooling`, else the model
section's `pooling`) or as the candidate says (`ID:POOLING`), truncated at the study's `max_length`, and the
pooled vectors are scored by LogME (hpo/train/logme.py). A candidate that cannot be scored is reported with its
reason and the others still rank.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hpo.errors import DataError, HpoError, SpecError
from hpo.results.records import OutputFormat, dump
from hpo.spec import ModelSpec, StudySpec, load_spec, resolve_model
from hpo.train.data import Corpus, load_corpus
from hpo.train.logme import logme

if TYPE_CHECKING:
    import numpy as np

__all__ = ["POOLINGS", "Ranked", "Ranking", "frozen_features", "parse_candidate", "rank_models", "ranking_text"]

POOLINGS: tuple[str, ...] = typing.get_args(ModelSpec.model_fields["pooling"].annotation)


@dataclass(frozen=True)
class Ranked:
    """One candidate's score: what `-f json` prints for it."""

    rank: int
    model: str
    pooling: str
    logme: float
    dimensions: int  # the pooled vector's width: the D of LogME's n × D features
    parameters: int  # the backbone's, all frozen
    documents: int
    seconds: float  # the whole candidate: loading, tokenising, encoding and LogME
    logme_seconds: float  # LogME alone, features in hand


@dataclass(frozen=True)
class Ranking:
    target: str
    documents: int
    max_length: int
    ranked: list[Ranked]  # best first
    failed: list[tuple[str, str]]  # (the candidate as given, why it was not scored)


@dataclass(frozen=True)
class _Candidate:
    given: str  # as typed on the command line, for messages
    model: ModelSpec | None
    problem: str | None = None


def rank_models(study_file: Path, models: Sequence[str], *,
                on_candidate: Callable[[str], None] | None = None) -> Ranking:
    """LogME of each of `models` (hub ids, directories, `bundled:NAME`, each optionally `:POOLING`; none: the
    study's own model) on the target training split of `study_file`, best first, and the candidates that failed."""
    spec = load_spec(study_file)
    config = spec.base_config()
    default = spec.model.model_copy(update={"pooling": config.pooling or spec.model.pooling})
    corpus = _target_train(spec, study_file)
    candidates = [parse_candidate(text, default=default, base_dir=Path.cwd()) for text in models] or \
        [_Candidate(default.id, default)]
    scored: list[dict[str, Any]] = []
    failed: list[tuple[str, str]] = []
    for candidate in candidates:
        if on_candidate is not None:
            on_candidate(candidate.given)
        try:
            scored.append(_score(candidate, corpus, config.max_length, config.device, config.batch_size * 4))
        except Exception as exc:  # one candidate's failure, whatever it is, must not cost the others their rank
            failed.append((candidate.given, _one_line(exc)))
    scored.sort(key=lambda row: -row["logme"])
    ranked = [Ranked(rank=i, **row) for i, row in enumerate(scored, 1)]
    return Ranking(spec.target.label, len(corpus), config.max_length, ranked, failed)


def parse_candidate(text: str, *, default: ModelSpec, base_dir: Path) -> _Candidate:
    """`ID` or `ID:POOLING` as a model spec (the study's dtype; `default.pooling` unless given), a relative
    directory taken from `base_dir`; or the problem with it."""
    model_id, sep, last = text.rpartition(":")
    if not (sep and last in POOLINGS):
        model_id, last = text, default.pooling
        # `bundled:NAME:X` or `ORG/NAME:X` where X is no pooling: a mistyped pooling (no model id has a colon)
        colons = text.count(":") - text.startswith("bundled:")
        if colons and not Path(text).exists():
            return _Candidate(text, None, f"unknown pooling {text.rpartition(':')[2]!r}; poolings: "
                                          f"{', '.join(POOLINGS)}")
    try:
        model = ModelSpec(id=model_id, pooling=last, dtype=default.dtype)
    except ValidationError as exc:
        return _Candidate(text, None, "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
    model, problem = resolve_model(model, base_dir)
    if problem:  # a path-like id naming nothing; on a command line it is relative to where the command runs
        return _Candidate(text, None, f"{(base_dir / model_id).absolute()}: no such model directory")
    return _Candidate(text, model)


def _target_train(spec: StudySpec, study_file: Path) -> Corpus:
    """The target's training split as the study reads it, before the validation split is carved out of it."""
    try:
        return load_corpus(spec.target, "target", spec.training.seed)
    except DataError as exc:
        raise SpecError(str(study_file), [("target", str(exc))]) from None


def _score(candidate: _Candidate, corpus: Corpus, max_length: int, device: str, batch_size: int) -> dict[str, Any]:
    if candidate.model is None:
        raise HpoError(candidate.problem)
    model = candidate.model
    started = time.perf_counter()
    _check_length(model, max_length)
    features, parameters = frozen_features(model, corpus, max_length=max_length, device=device,
                                           batch_size=batch_size)
    scoring = time.perf_counter()
    score = logme(features, corpus.labels).score
    if not math.isfinite(score):
        raise HpoError(f"LogME is {score} (the features may be degenerate)")
    done = time.perf_counter()
    return {"model": model.id, "pooling": model.pooling, "logme": score, "dimensions": int(features.shape[1]),
            "parameters": parameters, "documents": len(corpus), "seconds": round(done - started, 3),
            "logme_seconds": round(done - scoring, 3)}


def _check_length(model: ModelSpec, max_length: int) -> None:
    """Refuse what the study's checks would: an encoder-decoder, a max length beyond the position table."""
    from hpo.train.model import model_shape

    shape = model_shape(model)
    if shape.max_length is not None and max_length > shape.max_length:
        raise HpoError(f"the study's max_length {max_length} exceeds the {shape.max_length} positions of "
                       f"{model.id} ({shape.family})")


def frozen_features(model: ModelSpec, corpus: Corpus, *, max_length: int, device: str = "auto",
                    batch_size: int = 64) -> tuple[np.ndarray, int]:
    """The pooled vector of every text of `corpus` in row order (float64, n × hidden size), computed in the model's
    own dtype without autocast, every weight frozen and dropout off; and the backbone's parameter count. Pooled by
    `TransferModel.pool`, the very code a trial's heads read from."""
    import gc

    import numpy as np
    import torch

    from hpo.train.batches import collate
    from hpo.train.model import TransferModel, load_encoder
    from hpo.train.placement import resolve_device
    from hpo.train.tokens import encode, tokenizer_fingerprint

    where = resolve_device(device)
    bundle = load_encoder(model)
    data = encode(bundle.tokenizer, tokenizer_fingerprint(bundle.tokenizer), corpus, max_length)
    pooler = TransferModel(bundle.encoder, 1, 1, model.pooling).to(where).eval()
    parameters = sum(p.numel() for p in bundle.encoder.parameters())
    features = np.empty((len(data), pooler.target_head.in_features), dtype=np.float64)
    order = np.argsort(data.lengths, kind="stable")  # similar lengths together: little padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask, _ = collate(data, rows, bundle.pad_id, where)
            features[rows] = pooler.pool(ids, mask).double().cpu().numpy()
    del pooler, bundle  # the next candidate loads into the memory this one held
    gc.collect()
    if where.type == "cuda":
        torch.cuda.empty_cache()
    return features, parameters


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, HpoError) else f"{type(exc).__name__}: {text}"


def ranking_text(ranking: Ranking, fmt: OutputFormat) -> str:
    """The ranking as JSON or YAML (a list of records, best first), or as an aligned plain-text table."""
    if fmt is not OutputFormat.table:
        return dump([asdict(row) for row in ranking.ranked], fmt)
    title = (f"LogME of frozen features on {ranking.target}: its training split, {ranking.documents} documents, "
             f"max length {ranking.max_length} (higher ranks first)")
    header = ("rank", "model", "pooling", "LogME", "dims", "parameters", "seconds")
    rows = [(str(r.rank), r.model, r.pooling, f"{r.logme:.4f}", str(r.dimensions), f"{r.parameters:,}",
             f"{r.seconds:.1f}") for r in ranking.ranked]
    if not rows:
        return f"{title}\nno candidate could be scored\n"
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    right = {0, 3, 4, 5, 6}  # numbers align right

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([title, line(header), *map(line, rows)]) + "\n"
