"""`hpo train`: fit an exported config (every field fixed) once, keep the weights of its best validation step,
save the classifier, and evaluate it on the held-out test split.

With the same seed, device and precision the retrain repeats the trial's run step for step (both go through
`Workbench.fit`), so its validation F1 at the trial's best step is the trial's.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

from hpo.errors import HpoError
from hpo.spec import load_spec

__all__ = ["retrain"]


def retrain(
    study_file: Path, out: Path, *, train_on: Literal["train", "train+validation"] = "train",
    on_eval: Any = None,
) -> dict[str, Any]:
    import numpy as np

    from hpo.evaluate import evaluate_saved
    from hpo.files import output_dir, write_output
    from hpo.resources import Workbench
    from hpo.runner import check_model, load_data
    from hpo.train.data import Corpus, load_test
    from hpo.train.model import load_encoder
    from hpo.train.saved import load_classifier, save_classifier

    spec = load_spec(study_file)
    if spec.searched():
        raise HpoError(f"{study_file}: hpo train needs every field fixed, but it searches "
                       f"{', '.join(spec.searched())}; export a trial first (hpo export STUDY -o best.yaml)")
    check_model(spec, str(study_file))
    config = spec.base_config().model_copy(update={"time_limit_s": None})  # a search's guard, not a retrain's
    data = load_data(spec, str(study_file))
    # What the evaluation after training needs is checked before training: the test split and its labels, and
    # somewhere to save the model.
    load_test(spec.target, data.target_train.label_names)
    output_dir(out)
    bench = Workbench(load_encoder(spec.model), data)
    corpus = bench.data.target_train
    if train_on == "train+validation":
        val = bench.data.target_val
        corpus = Corpus(corpus.texts + val.texts, np.concatenate([corpus.labels, val.labels]), corpus.label_names)
        best_epoch = (spec.exported_from or {}).get("best_epoch")
        if best_epoch:  # no held-out data to pick a step with: stop where the search's trial peaked
            config = config.model_copy(update={"epochs": max(1, math.ceil(best_epoch))})

    best: dict[str, Any] = {}
    model = bench.new_model(config)

    def keep_best(evaluation: Any) -> None:
        if on_eval is not None:
            on_eval(evaluation)
        if "f1" not in best or evaluation.f1 > best["f1"]:
            best.update(f1=evaluation.f1, accuracy=evaluation.accuracy, step=evaluation.step,
                        epoch=evaluation.epoch,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})

    started = time.monotonic()
    model, result = bench.fit(config, keep_best, model=model, train_corpus=corpus)
    if train_on == "train":
        model.load_state_dict(best["state"])  # the weights of the best validation step
    seconds = time.monotonic() - started
    save_classifier(model.cpu(), bench.bundle.tokenizer, out, label_names=corpus.label_names,
                    source_label_names=bench.data.source.label_names, config=config,
                    study_text=Path(study_file).read_text())
    test = evaluate_saved(load_classifier(out))
    metrics = {
        "validation": {k: best[k] for k in ("f1", "accuracy", "step", "epoch")} if train_on == "train" else None,
        "curve": [[e.step, e.epoch, round(e.f1, 5)] for e in result.curve],
        "test": test,
        "trained_on": train_on,
        "train_seconds": round(seconds, 2),
        "config": config.model_dump(mode="json"),
        "exported_from": spec.exported_from,
    }
    write_output(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
