"""`hpo train`: fit an exported config (every field fixed) once, keep the weights of its best validation step,
save the classifier, and evaluate it on the held-out test split.

With the same seed, device and precision the retrain repeats the trial's run step for step (both go through
`Workbench.fit`), so its validation F1 at the trial's best step is the trial's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hpo.errors import HpoError
from hpo.spec import dump_spec, load_study_file

if TYPE_CHECKING:
    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation

__all__ = ["retrain"]


def retrain(
    study_file: Path, out: Path, *, train_on: Literal["train", "train+validation"] = "train",
    on_eval: Callable[[Evaluation], Any] | None = None, on_step: Callable[[int, int], None] | None = None,
    on_start: Callable[[TrainConfig], Any] | None = None,
) -> dict[str, Any]:
    """Train, save into `out`, evaluate; returns what `out/metrics.json` holds. `on_start` gets the config once the
    model and data are loaded, `on_step` and `on_eval` follow the training (a live display)."""
    import numpy as np

    from hpo.classifier.evaluate import evaluate_saved
    from hpo.classifier.saved import load_classifier, save_classifier
    from hpo.files import output_dir, write_output
    from hpo.train.data import Corpus, load_test
    from hpo.workbench import open_workbench

    spec, _ = load_study_file(study_file)
    if spec.searched():
        raise HpoError(f"{study_file}: hpo train needs every field fixed, but it searches "
                       f"{', '.join(spec.searched())}; export a trial first (hpo export STUDY -o best.yaml)")
    bench = open_workbench(spec, str(study_file))
    # What the evaluation after training needs is checked before training: the test split and its labels, and
    # somewhere to save the model.
    load_test(spec.target, bench.data.target_train.label_names)
    output_dir(out)
    config, corpus = spec.base_config(), bench.data.target_train
    if train_on == "train+validation":
        val = bench.data.target_val
        corpus = Corpus(corpus.texts + val.texts, np.concatenate([corpus.labels, val.labels]), corpus.label_names)
        best_epoch = spec.exported_from.best_epoch if spec.exported_from else None
        if best_epoch:  # no held-out data to pick a step with: stop where the search's trial peaked
            config = config.model_copy(update={"epochs": max(1, math.ceil(best_epoch))})
    if on_start is not None:
        on_start(config)
    started = time.monotonic()
    fit = bench.fit_keeping_best(config, train_corpus=corpus, keep_best=train_on == "train", on_eval=on_eval,
                                 on_step=on_step)
    fit_seconds = time.monotonic() - started
    save_classifier(fit.model.cpu(), bench.bundle.tokenizer, out, label_names=corpus.label_names,
                    source_label_names=bench.data.source.label_names, config=config, study_text=dump_spec(spec))
    best = fit.best
    started = time.monotonic()
    test = evaluate_saved(load_classifier(out))
    metrics = {
        "validation": {"f1": best.f1, "accuracy": best.accuracy, "evaluation": best.number, "epoch": best.epoch}
        if train_on == "train" and best is not None else None,
        "curve": [[e.number, e.epoch, round(e.f1, 5)] for e in fit.result.curve],
        "test": test,
        "trained_on": train_on,
        # The clocks a trial records, by the same names: optimisation only, and the whole fit.
        "train_seconds": round(fit.result.curve[-1].train_seconds, 2) if fit.result.curve else 0.0,
        "fit_seconds": round(fit_seconds, 2),
        "test_seconds": round(time.monotonic() - started, 2),
        "config": config.model_dump(mode="json"),
        "exported_from": spec.exported_from.model_dump(mode="json") if spec.exported_from else None,
    }
    write_output(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
