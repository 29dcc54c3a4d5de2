"""Commands on the chosen model: retrain an exported config and save it, evaluate it, predict with it."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.app import app, console, err_console, quiet

PANEL = "Classifier"

class TrainOn(StrEnum):
    train = "train"
    train_validation = "train+validation"


ModelDir = Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="A directory written by `hpo train --out`.")]


@app.command("train", rich_help_panel=PANEL)
def train_command(
    study_file: Annotated[Path, typer.Argument(help="An exported study file (every field fixed).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the trained classifier in (not -: a model is "
                                                    "several files).")],
    train_on: Annotated[TrainOn, typer.Option(
        "--train-on", help="train: keep the best validation step; train+validation: train on both, for the epochs "
                           "the trial peaked at.")] = TrainOn.train,
) -> None:
    """Retrain an exported config, save the model as a Hugging Face classifier and evaluate it on the test split.
    Shows epoch, step, the validation objective (val F1 by default) and ETA while it trains."""
    from hpo.classifier.evaluate import format_metrics
    from hpo.classifier.retrain import retrain
    from hpo.search.progress import FitProgress
    from hpo.train.metrics import objective_for_metric

    quiet()
    with FitProgress(console, f"training {study_file}") as progress:
        result = retrain(study_file, out, train_on=train_on.value, on_eval=progress.evaluated,
                         on_step=progress.step, on_start=progress.started_training)
    if result.validation is not None:
        v = result.validation
        label = objective_for_metric(v.metric).label.replace("val ", "validation ")
        shown = f"best {label} {v.value:.4f}" + (f" (F1 {v.f1:.4f})" if v.metric != "val_f1" else "")
        console.print(f"{shown} at evaluation {v.evaluation} (epoch {v.epoch:g})")
    console.print(*format_metrics(result.test))
    console.print(f"saved to {out} (metrics.json, README.md, confusion_matrix.html); fit {result.fit_seconds:.0f} s "
                  f"(training {result.train_seconds:.0f} s of it, evaluations excluded), test "
                  f"{result.test_seconds:.0f} s", highlight=False, soft_wrap=True)


@app.command(rich_help_panel=PANEL)
def evaluate(model_dir: ModelDir) -> None:
    """Evaluate a saved classifier on its study's test split: metric tables, plus test_metrics.json and
    confusion_matrix.html written into MODEL_DIR."""
    from hpo.classifier.evaluate import evaluate_dir, format_metrics

    quiet()
    with console.status("evaluating on the test split…"):
        metrics = evaluate_dir(model_dir)
    console.print(*format_metrics(metrics))
    console.print(f"confusion matrix: {model_dir / 'confusion_matrix.html'}; "
                  f"metrics: {model_dir / 'test_metrics.json'}", highlight=False, soft_wrap=True)


@app.command(rich_help_panel=PANEL)
def predict(
    model_dir: ModelDir,
    source: Annotated[str, typer.Argument(
        metavar="INPUT", help="CSV, TSV, JSON, JSONL or Parquet file of texts, or - for one text per line on stdin.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write: .csv, .tsv, .json, .jsonl or .parquet; - or none: CSV on stdout.")]
    = None,
    text_column: Annotated[str, typer.Option("--text-column", help="The input column holding the texts.")] = "text",
) -> None:
    """Label texts with a saved classifier: per row the text, `label` and `p_<class>` for every class."""
    from hpo.classifier.predict import predict_file

    quiet()
    with err_console.status("predicting…"):  # stderr: stdout may be the CSV itself
        written = predict_file(model_dir, source if source == "-" else Path(source), output, text_column=text_column)
    if written != "-":
        console.print(f"wrote {written}", highlight=False)
    sys.stdout.flush()
