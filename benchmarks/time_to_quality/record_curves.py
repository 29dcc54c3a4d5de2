"""Record the table of real curves the search replay runs on: a grid of real fine-tunes on the quickstart task.

Every configuration of the grid below (learning rate × λ × freeze depth × l2) is fine-tuned from scratch with
each seed, exactly as a search trial of `studies/quickstart.yaml` would be (same data, splits, model, epochs,
evaluations, `Workbench.fit`), without frozen-activation reuse. For each run the table keeps every evaluation's
validation macro-F1 with the wall time (seconds since the fit started, evaluations included) at which it was
reached, and one test macro-F1 of the weights of its best validation step (the R8 test split, read here only).

One JSON object per run is appended to OUT as soon as the run ends, so an interrupted recording resumes where
it stopped. Run it on a quiet machine, one shard per core, each pinned to its core, e.g. on 2 cores:

    for i in 0 1; do taskset -c $i .venv/bin/python benchmarks/time_to_quality/record_curves.py --threads 1 \
        --shard $i/2 --out benchmarks/time_to_quality/curves-$i.jsonl & done; wait
    cat benchmarks/time_to_quality/curves-[01].jsonl > benchmarks/time_to_quality/curves.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path
from typing import Any

GRID = {
    "learning_rate": (5e-5, 1.5e-4, 4.5e-4),
    "target_weight": (0.4, 0.7, 1.0),
    "freeze_depth": (0, 3, 6),
    "l2": (0.0, 1e-4),
}
SEEDS = (0, 1)
STUDY = Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml"


def grid() -> list[dict[str, Any]]:
    return [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]


def run_key(params: dict[str, Any], seed: int) -> str:
    return json.dumps({**params, "seed": seed}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append runs to (resumed)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--shard", default="0/1", help="I/N: record every N-th run from the I-th (one per core)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from hpo.spec import load_spec
    from hpo.train.data import load_test
    from hpo.workbench import open_workbench

    spec = load_spec(STUDY)
    bench = open_workbench(spec, str(STUDY))
    test = load_test(spec.target, bench.data.target_train.label_names)
    done = set()
    if args.out.exists():
        done = {run_key(r["params"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines())}
    index, count = map(int, args.shard.split("/"))
    todo = [(p, s) for p in grid() for s in SEEDS if run_key(p, s) not in done][index::count]
    print(f"{len(done)} runs recorded, {len(todo)} to go; torch threads {torch.get_num_threads()}", flush=True)
    for number, (params, seed) in enumerate(todo[: args.limit] if args.limit else todo, 1):
        record = record_run(bench, spec, test, params, seed)
        with args.out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        best = max(e["val_f1"] for e in record["curve"])
        print(f"[{number}/{len(todo)}] {params} seed {seed}: best val F1 {best:.4f} at evaluation "
              f"{record['best_step']}, test F1 {record['test_f1']:.4f}, {record['wall_s']:.1f} s", flush=True)


def record_run(bench: Any, spec: Any, test: Any, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """One fine-tune of the grid: its curve with wall times, and the test F1 of its best validation step."""
    import torch

    from hpo.train.loop import evaluate, resolve_device, resolve_precision
    from hpo.train.metrics import f1

    config = spec.base_config().model_copy(update={**params, "seed": seed, "time_limit_s": None,
                                                   "reuse_activations": False})
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    curve: list[dict[str, float]] = []
    started = time.monotonic()

    def on_eval(evaluation: Any) -> None:
        curve.append({"step": evaluation.number, "epoch": evaluation.epoch, "val_f1": evaluation.f1,
                      "val_accuracy": evaluation.accuracy, "wall_s": round(time.monotonic() - started, 3)})

    fit = bench.fit_keeping_best(config, on_eval=on_eval)  # the model ends on its best validation step's weights
    wall = time.monotonic() - started
    predictions = evaluate(fit.model, bench.encoded(test, config.max_length), bench.pad_id, device, precision,
                           config.batch_size * 4).argmax(-1)  # logits -> classes
    return {"params": params, "seed": seed, "curve": curve, "wall_s": round(wall, 3), "best_step": fit.best.number,
            "test_f1": f1(test.labels, predictions, "macro"), "precision": "bf16" if precision is not None else "fp32",
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}


if __name__ == "__main__":
    main()
