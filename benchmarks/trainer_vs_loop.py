"""The trial loop against a plain Hugging Face `Trainer`, side by side on one machine in one run.

What is measured
----------------
Four fine-tunes of the same pretrained encoder (default: the bundled all-MiniLM-L6-v2) on the same target
data (default: 512 Reuters R8 training documents, 128 validation documents, seed 0), with the same number of
epochs, batch size and maximum length, each followed by one evaluation on the validation documents an epoch:

1. `Trainer` fp32 - written as a user would write it: `AutoModelForSequenceClassification`, `AutoTokenizer`,
   `DataCollatorWithPadding`, a `datasets.Dataset` of texts tokenised with truncation and no padding,
   `TrainingArguments` with `eval_strategy="epoch"` and otherwise defaults (fp32);
2. `hpo.train.loop.train` at λ = 1 (target only, `source=None`), freeze_depth 0, precision "auto" (the
   project's default: bf16 autocast where the CPU computes bf16 natively, else fp32);
3. the same loop at precision "fp32";
4. `Trainer` with `bf16=True`.

Timed: the whole fit, i.e. the `train(...)` call of the loop and the `trainer.train()` call of the Trainer,
both of which include their evaluations. Model loading, `Trainer` construction and tokenisation are outside
the timed region on both sides. samples/s = training examples processed (documents × epochs) / that wall
time, the same definition for every run. Val macro-F1 is from the last evaluation, computed by scikit-learn
for both sides (`hpo.train.metrics.f1`). The two sides are not the same recipe, so their F1s differ somewhat:
the Trainer fine-tunes the stock classification head (BERT pooler on [CLS]) at one learning rate with no
warmup; the loop mean-pools, trains its head at 10× the learning rate (head_lr_multiplier) with 10% warmup.

Untimed warm-up first: a tiny forward/backward pass in fp32 and in bf16 autocast, the metric's import, and a
16-document fit of each side, so that no timed variant pays for first-call kernel set-up or lazy imports.
Each variant runs once: the figures are one sample each, so small differences (a few percent) are noise;
rerun to see the spread.

Then the loop (precision "auto", target only) runs at freeze_depth 0, 1, half and all of the encoder's layers,
each without activation reuse, with reuse on an empty cache (the first trial: it builds the frozen layers'
outputs) and with reuse once they exist (every later trial and epoch), `--repeats` times each (median), and its
per-epoch training time is compared with freeze_depth 0.

What limits the loop's speed
----------------------------
On a CPU nearly all the time goes into the encoder's matrix multiplications, forward and backward; Python
overhead, collation and the optimiser step are small. So the time is the tokens actually computed (padding
included) divided by the CPU's matmul rate. The loop cuts the tokens: it batches texts of similar length
together (`bucketed_batches`), so a batch is padded to a length near its texts' own, where the Trainer's
random batches are padded to the longest of batch-size random texts; evaluation is sorted by length and
batched 4× wider. It raises the rate: on CPUs with native bf16 (AVX512-BF16 or AMX) "auto" precision runs
the matmuls under bf16 autocast, which on those CPUs is faster than fp32; without native bf16 it stays fp32,
since emulated bf16 is slower. Freezing the bottom k layers removes their backward pass (and their optimiser
state); reusing their stored outputs (hpo/train/activations.py) removes their forward pass too, so once the
outputs exist an epoch costs only the layers above k (at k = every layer: the heads alone).

Run (full size; needs the corpora in $HPO_CACHE, fetched once with pip otherwise):

    HPO_CACHE=/tmp/hpocache .venv/bin/python benchmarks/trainer_vs_loop.py --json trainer_vs_loop.json

`--quick` runs tiny sizes as a smoke test; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpo.spec import DatasetSpec, ModelSpec
from hpo.train.config import TrainConfig
from hpo.train.data import Corpus, TaskData, load_task_data
from hpo.train.loop import Evaluation, resolve_device, resolve_precision, train
from hpo.train.metrics import f1
from hpo.train.model import EncoderBundle, TransferModel, load_encoder, resolve_model_path
from hpo.train.tokens import Encoded, encode, tokenizer_fingerprint

MODEL_ID = "bundled:all-MiniLM-L6-v2"
LEARNING_RATE = 1e-4
SEED = 0


@dataclass
class Run:
    name: str
    precision: str
    wall_s: float
    samples: int
    val_f1: float
    train_s: float | None = None  # the loop's own clock: optimisation only, evaluations excluded
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s else 0.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--train-docs", type=int, default=512, help="target training documents (default 512)")
    parser.add_argument("--val-docs", type=int, default=128, help="target validation documents (default 128)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text after truncation")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training documents")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (64 train / 32 val docs, max length 32): a smoke test only")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant (the median is shown)")
    parser.add_argument("--model", default=MODEL_ID,
                        help=f"the backbone (default {MODEL_ID}); e.g. bundled:smollm2-135m-instruct")
    parser.add_argument("--depths", type=int, nargs="+", metavar="K",
                        help="freeze depths of the reuse table (default 0, 1, half and all of the layers)")
    parser.add_argument("--reuse-only", action="store_true",
                        help="only the reuse table (no Trainer comparison): e.g. for a decoder backbone")
    args = parser.parse_args()
    if args.quick:
        args.train_docs, args.val_docs, args.max_length = 64, 32, 32
    return args


def warm_up(bundle: EncoderBundle, data: TaskData, args: argparse.Namespace) -> None:
    """Untimed: a tiny forward/backward in fp32 and bf16 autocast, the metric's import, and a tiny fit of each
    side (16 documents), so that no timed run pays for first-call kernel set-up or lazy imports."""
    n_labels = len(data.target_train.label_names)
    model = TransferModel(bundle.fresh_encoder(), n_labels, 2, "mean").train()
    ids = torch.randint(1000, 2000, (4, 16))
    mask = torch.ones_like(ids)
    for dtype in (torch.float32, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = model(ids, mask).float().logsumexp(-1).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            model(ids, mask)
    f1(np.array([0, 1]), np.array([0, 1]), "macro")  # imports scikit-learn
    tiny = argparse.Namespace(**{**vars(args), "max_length": 16, "batch_size": 8, "epochs": 1})
    rows = np.arange(min(16, len(data.target_train)))
    small = TaskData(data.source, data.target_train.take(rows), data.target_val.take(rows[:8]))
    run_trainer("warm-up", (small.target_train, small.target_val), tiny, bf16=False)
    run_loop("warm-up", bundle, small, tiny, "auto", 0, cache=False)


# The loop: exactly as hpo/objective.py drives it.

def run_loop(
    name: str, bundle: EncoderBundle, data: TaskData, args: argparse.Namespace, precision: str,
    freeze_depth: int, *, cache: bool = True, reuse: bool = False,
) -> Run:
    if cache:  # hpo's tokenisation, cached in $HPO_CACHE as the objective's is
        key = tokenizer_fingerprint(bundle.tokenizer)
        train_enc = encode(bundle.tokenizer, key, data.target_train, args.max_length)
        val_enc = encode(bundle.tokenizer, key, data.target_val, args.max_length)
    else:  # the warm-up's tiny corpora: the same tokenisation, kept out of the cache
        train_enc, val_enc = (_encode_uncached(bundle.tokenizer, c, args.max_length)
                              for c in (data.target_train, data.target_val))
    config = TrainConfig(
        learning_rate=LEARNING_RATE, head_lr_multiplier=10.0, target_weight=1.0, freeze_depth=freeze_depth,
        epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length, evaluations_per_epoch=1,
        seed=SEED, device="cpu", precision=precision, reuse_activations=reuse,
    )
    torch.manual_seed(config.seed)  # as the objective does: the same heads for the same seed
    model = TransferModel(
        bundle.fresh_encoder(), len(data.target_train.label_names), len(data.source.label_names), "mean"
    )
    model.freeze(freeze_depth)  # as Workbench.new_model does
    curve: list[Evaluation] = []
    started = time.perf_counter()
    result = train(config, model, train_enc, val_enc, None,
                   pad_id=bundle.pad_id, on_eval=lambda e: curve.append(e))
    wall = time.perf_counter() - started
    last = result.curve[-1]
    resolved = resolve_precision(precision, resolve_device(config.device))
    return Run(name, f"{precision} -> {'bf16 autocast' if resolved is not None else 'fp32'}", wall,
               last.samples_seen, last.f1, train_s=last.train_seconds,
               extra={"freeze_depth": freeze_depth, "trainable_params": result.trainable_params,
                      "reuse": result.reuse_record(),
                      "padded_tokens_per_epoch": padded_tokens_loop(train_enc.lengths, args.batch_size)})


def _encode_uncached(tokenizer: Any, corpus: Corpus, max_length: int) -> Encoded:
    rows = tokenizer(list(corpus.texts), truncation=True, max_length=max_length)["input_ids"]
    offsets = np.concatenate([[0], np.cumsum([len(row) for row in rows])])
    return Encoded(np.concatenate(rows).astype(np.int32), offsets, corpus.labels)


def padded_tokens_loop(lengths: np.ndarray, batch_size: int) -> int:
    from hpo.train.loop import bucketed_batches

    batches = bucketed_batches(lengths, batch_size, np.random.default_rng(SEED))
    return int(sum(lengths[rows].max() * len(rows) for rows in batches))


# The Trainer: as a user would write it.

def run_trainer(name: str, corpora: tuple[Corpus, Corpus], args: argparse.Namespace, bf16: bool) -> Run:
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    train_corpus, val_corpus = corpora
    path = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, Any]:
        return tokenizer(batch["text"], truncation=True, max_length=args.max_length)

    def dataset(corpus: Corpus) -> Dataset:
        raw = Dataset.from_dict({"text": list(corpus.texts), "label": corpus.labels.tolist()})
        return raw.map(tokenize, batched=True, remove_columns=["text"])

    train_set, val_set = dataset(train_corpus), dataset(val_corpus)
    scores: list[float] = []

    def compute_metrics(prediction: Any) -> dict[str, float]:
        scores.append(f1(prediction.label_ids, np.argmax(prediction.predictions, axis=-1), "macro"))
        return {"f1": scores[-1]}

    set_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(train_corpus.label_names))
    with tempfile.TemporaryDirectory(prefix="trainer-vs-loop-") as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            learning_rate=LEARNING_RATE,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=True,
            bf16=bf16,
            seed=SEED,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=training_args, data_collator=DataCollatorWithPadding(tokenizer),
            train_dataset=train_set, eval_dataset=val_set, processing_class=tokenizer,
            compute_metrics=compute_metrics,
        )
        trainer.remove_callback(PrinterCallback)  # it would print the metrics dicts (disable_tqdm adds it)
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    lengths = np.array([len(ids) for ids in train_set["input_ids"]])
    return Run(name, "bf16=True (autocast)" if bf16 else "fp32 (default)", wall,
               len(train_corpus) * args.epochs, scores[-1],
               extra={"padded_tokens_per_epoch": padded_tokens_random(lengths, args.batch_size)})


def padded_tokens_random(lengths: np.ndarray, batch_size: int) -> int:
    """Tokens computed in an epoch of random batches padded to their longest text (the Trainer's sampler)."""
    order = np.random.default_rng(SEED).permutation(len(lengths))
    return int(sum(lengths[order[i : i + batch_size]].max() * len(order[i : i + batch_size])
                   for i in range(0, len(order), batch_size)))


def main() -> None:
    args = parse_args()
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bar()

    data = load_task_data(
        DatasetSpec(builtin="20newsgroups", max_samples=64),
        DatasetSpec(builtin="reuters-r8", max_samples=args.train_docs + args.val_docs),
        validation_size=args.val_docs, seed=SEED,
    )
    bundle = load_encoder(ModelSpec(id=args.model))
    depth = int(bundle.encoder.config.num_hidden_layers)
    n_train, n_val = len(data.target_train), len(data.target_val)
    native_bf16 = resolve_precision("auto", torch.device("cpu")) is not None
    print(f"model {args.model} ({depth} layers); target reuters-r8: {n_train} train / {n_val} val docs, "
          f"{len(data.target_train.label_names)} classes")
    print(f"max_length {args.max_length}, batch {args.batch_size}, {args.epochs} epoch(s), one evaluation "
          f"on the {n_val} val docs per epoch; lr {LEARNING_RATE:g}; seed {SEED}")
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} "
          f"threads, CPU native bf16: {'yes' if native_bf16 else 'no'} ({cpu})")
    if args.quick:
        print("--quick: tiny sizes, a smoke test; the figures below mean nothing")

    if args.reuse_only:
        rows = depth_table(bundle, data, args, depth)
        if args.json is not None:
            args.json.write_text(json.dumps({"model": args.model, "freeze": rows}, indent=2) + "\n")
        return
    warm_up(bundle, data, args)
    corpora = (data.target_train, data.target_val)

    variants = [
        lambda: run_trainer("Trainer fp32", corpora, args, bf16=False),
        lambda: run_loop("loop auto", bundle, data, args, "auto", 0),
        lambda: run_loop("loop fp32", bundle, data, args, "fp32", 0),
        lambda: run_trainer("Trainer bf16", corpora, args, bf16=True),
    ]
    runs = [median_run([variant() for _ in range(args.repeats)]) for variant in variants]
    by_name = {run.name: run for run in runs}
    reference = by_name["Trainer fp32"].samples_per_s

    print()
    print("samples/s = training examples processed / wall time of the whole fit (training + evaluations),")
    print("the same definition for the loop's train(...) and for trainer.train(). Val F1: last evaluation.")
    print(f"{'run':<14} {'precision':<22} {'wall s':>8} {'samples/s':>10} {'val macro-F1':>13} "
          f"{'padded tok/epoch':>17} {'vs Trainer fp32':>16}")
    for run in runs:
        print(f"{run.name:<14} {run.precision:<22} {run.wall_s:>8.2f} {run.samples_per_s:>10.2f} "
              f"{run.val_f1:>13.4f} {run.extra['padded_tokens_per_epoch']:>17,} "
              f"{run.samples_per_s / reference:>15.2f}x")
    headline = by_name["loop auto"].samples_per_s / reference
    fp32_ratio = by_name["loop fp32"].samples_per_s / reference
    bf16_ratio = by_name["loop auto"].samples_per_s / by_name["Trainer bf16"].samples_per_s
    print()
    print(f"loop (auto precision) / Trainer (fp32 default): {headline:.2f}x")
    print(f"loop (fp32) / Trainer (fp32): {fp32_ratio:.2f}x")
    print(f"loop (auto precision) / Trainer (bf16=True): {bf16_ratio:.2f}x")

    freezes = depth_table(bundle, data, args, depth)
    if args.json is not None:
        figures = {
            "settings": {"model": args.model, "train_docs": n_train, "val_docs": n_val,
                         "max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs,
                         "learning_rate": LEARNING_RATE, "seed": SEED, "quick": args.quick},
            "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "threads": torch.get_num_threads(), "cpu_native_bf16": native_bf16,
                            "processor": cpu},
            "definition": "samples/s = training examples processed / wall time of the whole fit (training + "
                          "evaluations); val F1 = macro-F1 at the last evaluation",
            "runs": [_as_json(run, reference) for run in runs],
            "ratios": {"loop_auto_vs_trainer_fp32": headline, "loop_fp32_vs_trainer_fp32": fp32_ratio,
                       "loop_auto_vs_trainer_bf16": bf16_ratio},
            "freeze": freezes,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (the others' times kept in `extra`)."""
    chosen = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    chosen.extra["wall_s_all"] = [round(r.wall_s, 3) for r in runs]
    return chosen


MODES = (("off", False), ("cold", True), ("warm", True))  # reuse off; on an empty cache; once the outputs exist


def depth_table(bundle: EncoderBundle, data: TaskData, args: argparse.Namespace, depth: int) -> list[dict]:
    """Per-epoch training time (the loop's clock, evaluations excluded) by freeze depth and reuse, median of
    `--repeats`; `cold` runs on an empty activation cache, `warm` on the one `cold` left."""
    import os
    import shutil

    from hpo.settings import cache_dir

    rows = []
    for k in sorted(set(args.depths) if args.depths else {0, 1, depth // 2, depth}):
        for mode, reuse in MODES if k else MODES[:1]:
            runs = []
            for _ in range(args.repeats):
                if mode == "cold":
                    shutil.rmtree(cache_dir() / "activations", ignore_errors=True)
                runs.append(run_loop(f"freeze {k} {mode}", bundle, data, args, "auto", k, reuse=reuse))
            run = median_run(runs)
            rows.append({"freeze_depth": k, "reuse": mode, "train_s_per_epoch": (run.train_s or 0) / args.epochs,
                         "wall_s": run.wall_s, "val_macro_f1": run.val_f1, "reuse_stats": run.extra["reuse"],
                         "trainable_params": run.extra["trainable_params"], "threads": os.cpu_count()})
    base = next((r for r in rows if r["freeze_depth"] == 0), rows[0])["train_s_per_epoch"]
    print()
    print("loop, precision auto, target only: training seconds per epoch (evaluations excluded) by freeze_depth;")
    print("reuse off: frozen layers recomputed every step; cold: reuse on an empty cache (this trial builds the")
    print("frozen layers' outputs); warm: reuse once they exist (every later trial, and epochs after the first)")
    print(f"{'freeze_depth':>12} {'reuse':>6} {'trainable':>11} {'train s/epoch':>14} {'vs depth 0':>11} "
          f"{'val macro-F1':>13}")
    for row in rows:
        row["ratio_vs_depth0"] = row["train_s_per_epoch"] / base if base else 0.0
        print(f"{row['freeze_depth']:>12} {row['reuse']:>6} {row['trainable_params']:>11,} "
              f"{row['train_s_per_epoch']:>14.3f} {row['ratio_vs_depth0']:>10.3f}x {row['val_macro_f1']:>13.4f}")
    return rows


def _as_json(run: Run, reference: float) -> dict[str, Any]:
    return {"name": run.name, "precision": run.precision, "wall_s": run.wall_s, "samples": run.samples,
            "samples_per_s": run.samples_per_s, "val_macro_f1": run.val_f1, "train_s": run.train_s,
            "vs_trainer_fp32": run.samples_per_s / reference, **run.extra}


if __name__ == "__main__":
    main()
