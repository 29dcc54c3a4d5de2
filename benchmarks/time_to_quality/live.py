"""The replay checked against reality: three real searches on the quickstart task, one after another on this
machine, each with the same wall-clock budget (default 600 s), then the test macro-F1 of each one's choice.

1. `Trainer.hyperparameter_search(direction="maximize", backend="optuna", timeout=BUDGET)` with its default
   `hp_space` on `AutoModelForSequenceClassification` of the bundled MiniLM, written as the Hugging Face docs
   write it (`model_init`, `eval_strategy="epoch"`, `compute_metrics` returning macro-F1), on the same split and
   max length; its best hyperparameters retrained once and evaluated on the test split.
2. Grid search with this project's loop: the table's grid in a seeded order, each configuration fit in full
   (3 epochs, reuse on, as `hpo run` fits), until the budget; the best run's weights at its best validation step
   evaluated on the test split.
3. `hpo run` of studies/quickstart.yaml with `timeout: BUDGET` and no trial cap; its best trial exported and
   retrained with `hpo train` (which evaluates on the test split).

    .venv/bin/python -m benchmarks.time_to_quality.live [--budget 600]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.time_to_quality.record_curves import STUDY, grid

HERE = Path(__file__).parent


def _splits():
    from hpo.spec import load_spec
    from hpo.train.data import load_test
    from hpo.workbench import open_workbench

    spec = load_spec(STUDY)
    bench = open_workbench(spec, str(STUDY))
    return spec, bench, load_test(spec.target, bench.data.target_train.label_names)


def hyperparameter_search(budget: float) -> dict:
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from hpo.train.metrics import f1
    from hpo.train.model import resolve_model_path

    spec, bench, test = _splits()
    path = resolve_model_path(spec.model.id)
    tokenizer = AutoTokenizer.from_pretrained(path)
    n_labels = len(bench.data.target_train.label_names)

    def dataset(corpus):
        data = Dataset.from_dict({"text": list(corpus.texts), "label": [int(y) for y in corpus.labels]})
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=spec.training.max_length),
                        batched=True)

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=n_labels)

    def compute_metrics(prediction):
        return {"f1": f1(prediction.label_ids, np.argmax(prediction.predictions, -1), "macro")}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, eval_strategy="epoch", save_strategy="no", report_to=[],
                                 disable_tqdm=True, logging_strategy="no")
        trainer = Trainer(model_init=model_init, args=args, train_dataset=dataset(bench.data.target_train),
                          eval_dataset=dataset(bench.data.target_val), data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=compute_metrics)
        started = time.perf_counter()
        best = trainer.hyperparameter_search(direction="maximize", backend="optuna", n_trials=1000, timeout=budget)
        searched = time.perf_counter() - started
        for key, value in best.hyperparameters.items():
            setattr(trainer.args, key, value)
        trainer.train()
        predictions = trainer.predict(dataset(test)).predictions.argmax(-1)
    return {"search_s": searched, "best_val_f1": best.objective, "chosen": best.hyperparameters,
            "test_f1": f1(test.labels, predictions, "macro")}


def grid_search(budget: float, seed: int = 0) -> dict:
    from hpo.train.loop import evaluate, placement
    from hpo.train.metrics import f1

    spec, bench, test = _splits()
    configs = grid()
    random.Random(seed).shuffle(configs)
    started, runs = time.perf_counter(), []
    for params in configs:
        if time.perf_counter() - started >= budget:
            break
        config = spec.base_config().model_copy(update={**params, "time_limit_s": None})
        fit = bench.fit_keeping_best(config)
        runs.append((fit.best.f1, params, fit.model, config, time.perf_counter() - started))
    done = [r for r in runs if r[4] <= budget]  # finished within the budget
    best_f1, params, model, config, _ = max(done, key=lambda r: r[0])
    where = placement(config)
    predictions = evaluate(model, bench.encoded(test, config.max_length), bench.pad_id, where.device,
                           where.autocast, config.batch_size * 4).argmax(-1)  # logits -> classes
    return {"search_s": time.perf_counter() - started, "configurations": len(done), "best_val_f1": best_f1,
            "chosen": params, "test_f1": f1(test.labels, predictions, "macro")}


def hpo_run(budget: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        spec = yaml.safe_load(STUDY.read_text())
        spec.update({"name": "live", "timeout": budget, "n_trials": None})
        spec.pop("n_trials")
        (work / "live.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        hpo = [sys.executable, "-m", "hpo"]
        started = time.perf_counter()
        subprocess.run([*hpo, "run", "live.yaml"], cwd=work, check=True, capture_output=True, text=True)
        searched = time.perf_counter() - started
        best = json.loads(subprocess.run([*hpo, "best", "live", "-f", "json"], cwd=work, check=True,
                                         capture_output=True, text=True).stdout)[0]
        trials = json.loads(subprocess.run([*hpo, "trials", "live", "-f", "json"], cwd=work, check=True,
                                           capture_output=True, text=True).stdout)
        subprocess.run([*hpo, "export", "live", "-o", "best.yaml"], cwd=work, check=True, capture_output=True)
        subprocess.run([*hpo, "train", "best.yaml", "--out", "model"], cwd=work, check=True, capture_output=True)
        metrics = json.loads((work / "model" / "metrics.json").read_text())
    return {"search_s": searched, "trials": len(trials), "best_val_f1": best["value"], "chosen": best["params"],
            "test_f1": metrics["test"]["f1"]["macro"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=HERE / "live.json")
    args = parser.parse_args()
    results = {}
    for name, search in (("hyperparameter_search", hyperparameter_search), ("grid (hpo loop)", grid_search),
                         ("hpo run", hpo_run)):
        results[name] = search(args.budget)
        r = results[name]
        print(f"{name:<22} search {r['search_s']:6.0f} s  best val macro-F1 {r['best_val_f1']:.4f}  "
              f"test macro-F1 of its choice {r['test_f1']:.4f}  chose {json.dumps(r['chosen'])}", flush=True)
    args.out.write_text(json.dumps({"budget_s": args.budget, **results}, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
