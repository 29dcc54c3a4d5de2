"""`hpo train`: fit an exported config (every field fixed) once, keep the weights of its best validation step,
save the classifier, evaluate it on the held-out test split, and write its model card.

With the same seed, device and precision the retrain repeats the trial's run step for step (both go through
`Workbench.fit`), so its validation F1 at the trial's best step is the trial's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.classifier.card import model_card
from hpo.classifier.retrained import BestValidation, Retrained, TrainOn
from hpo.errors import HpoError
from hpo.spec import dump_spec, load_study_file

if TYPE_CHECKING:
    from hpo.spec import StudySpec
    from hpo.train.config import TrainConfig
    from hpo.train.data import Corpus
    from hpo.train.loop import Evaluation
    from hpo.train.metrics import ValidationObjective
    from hpo.workbench import Workbench

__all__ = ["BestValidation", "Retrained", "retrain"]


def retrain(
    study_file: Path, out: Path, *, train_on: TrainOn = "train",
    on_eval: Callable[[Evaluation], Any] | None = None, on_step: Callable[[int, int], None] | None = None,
    on_start: Callable[[TrainConfig, ValidationObjective], Any] | None = None,
) -> Retrained:
    """Train, save into `out`, evaluate; returns what `out/metrics.json` holds. `on_start` gets the config and the
    study's objective once the model and data are loaded, `on_step` and `on_eval` follow the training (a live
    display)."""
    from hpo.classifier.evaluate import evaluate_saved
    from hpo.classifier.saved import load_classifier, save_classifier
    from hpo.files import output_dir, write_output
    from hpo.train.data import load_test
    from hpo.workbench import open_workbench

    if str(out) == "-":
        raise HpoError("--out -: a saved model is a directory of files, which standard output cannot hold; give a "
                       "directory")
    spec, _ = load_study_file(study_file)
    searched = [*spec.searched(), *(["source"] if spec.searches_source else [])]
    if searched:
        raise HpoError(f"{study_file}: hpo train needs every field fixed, but it searches {', '.join(searched)}; "
                       "export a trial first (hpo export STUDY -o best.yaml)")
    bench = open_workbench(spec, str(study_file))
    # What the evaluation after training needs is checked before training: the test split and its labels, and
    # somewhere to save the model.
    load_test(spec.target, bench.data.target_train.label_names)
    output_dir(out)
    config, corpus = _what_to_fit(spec, bench, train_on)
    if on_start is not None:
        on_start(config, spec.validation_objective)
    fit = bench.fit_keeping_best(config, train_corpus=corpus, keep_best=train_on == "train", on_eval=on_eval,
                                 on_step=on_step)
    source = bench.source()  # the study's one source task; None for a trial that drew none (target only)
    source_labels = source.label_names if source is not None else ()
    saved = save_classifier(fit.model.cpu(), bench.bundle.tokenizer, out, label_names=corpus.label_names,
                            source_label_names=source_labels, config=config, study_text=dump_spec(spec))
    started = time.monotonic()
    test = evaluate_saved(load_classifier(out))
    best, curve = fit.best, fit.result.curve
    result = Retrained(
        validation=BestValidation(spec.validation_objective.metric, best.value, best.f1, best.accuracy, best.number,
                                  best.epoch) if train_on == "train" and best is not None else None,
        curve=tuple((e.number, e.epoch, round(e.value, 5)) for e in curve),
        test=test, trained_on=train_on,
        # the trial's clocks, read from the same place: the loop's, up to its last evaluation
        train_seconds=round(curve[-1].train_seconds, 2) if curve else 0.0,
        fit_seconds=round(curve[-1].fit_seconds, 2) if curve else 0.0,
        test_seconds=round(time.monotonic() - started, 2),
        config=config, exported_from=spec.exported_from,
    )
    write_output(out / "metrics.json", json.dumps(result.to_json(), indent=2))
    write_output(out / "README.md", model_card(spec, result, directory=out,
                                               source_labels=source_labels, train_size=len(corpus), saved=saved))
    return result


def _what_to_fit(spec: StudySpec, bench: Workbench, train_on: TrainOn) -> tuple[TrainConfig, Corpus]:
    """The config and the training documents: the target's training split, or with its validation split too, for
    the epochs the search's trial peaked at (no held-out data is left to pick a step with)."""
    import numpy as np

    from hpo.train.data import Corpus

    config, corpus = spec.base_config(), bench.data.target_train
    if train_on == "train+validation":
        val = bench.data.target_val
        corpus = Corpus(corpus.texts + val.texts, np.concatenate([corpus.labels, val.labels]), corpus.label_names)
        best_epoch = spec.exported_from.best_epoch if spec.exported_from else None
        if best_epoch:
            config = config.model_copy(update={"epochs": max(1, math.ceil(best_epoch))})
    return config, corpus
