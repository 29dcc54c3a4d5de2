"""Record the table of real curves the surrogate is fitted on: real fine-tunes of the quickstart task at
space-filling configurations of a continuous 6-axis space.

The space (SPACE) is what a transfer study searches: the learning rate and λ on continuous ranges, the freeze depth,
and three penalties/schedules (l2, l1, warmup). 128 configurations are drawn from a scrambled Sobol sequence (seed
0: the same points on every machine), each fine-tuned once with seed 0, and the first 32 a second time with seed 1
to measure the noise between seeds. Each run is what a search trial of `studies/quickstart.yaml` is: the same
data, splits, model, epochs and evaluations through `Workbench.fit_keeping_best`, frozen-activation reuse on (as
trials run; it changes no F1, only time). The table keeps every evaluation's validation macro-F1, its optimisation
time and wall time since the fit started, the run's reuse record (what building stored states cost), and one test
macro-F1 of the weights of its best validation step (the R8 test split, read here only).

Resumable in shards across sessions: one JSON object per run is appended to OUT as the run ends; a rerun skips
what OUT holds. Commit the shard files as they grow (a lost environment loses nothing committed). On 2 cores:

    for i in 0 1; do nice taskset -c $i .venv/bin/python -m benchmarks.time_to_quality.record_table --threads 1 \
        --shard $i/2 --out benchmarks/time_to_quality/table-$i.jsonl & done; wait
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks.time_to_quality.space import SPACE, from_unit

CONFIGS = 128  # a power of two: Sobol's balance holds
SECOND_SEED = 32  # of them run again with seed 1
STUDY = Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml"


def configurations() -> list[dict[str, Any]]:
    from scipy.stats import qmc

    points = qmc.Sobol(d=len(SPACE), scramble=True, seed=0).random(CONFIGS)
    return [from_unit(point) for point in points]


def runs() -> list[tuple[dict[str, Any], int]]:
    configs = configurations()
    return [(c, 0) for c in configs] + [(c, 1) for c in configs[:SECOND_SEED]]


def run_key(params: dict[str, Any], seed: int) -> str:
    return json.dumps({**params, "seed": seed}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append runs to (resumed)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--shard", default="0/1", help="I/N: record every N-th run from the I-th (one per core)")
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="other shard files: skip what they hold")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from hpo.search.worker import quiet_libraries
    from hpo.spec import load_spec
    from hpo.train.data import load_test
    from hpo.workbench import open_workbench

    quiet_libraries()
    spec = load_spec(STUDY)
    bench = open_workbench(spec, str(STUDY))
    test = load_test(spec.target, bench.data.target_train.label_names)
    done = set()
    for path in [args.out, *args.also]:
        if path.exists():
            done |= {run_key(r["params"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())}
    index, count = map(int, args.shard.split("/"))
    todo = [(p, s) for p, s in runs()[index::count] if run_key(p, s) not in done]
    print(f"{len(done)} runs recorded, {len(todo)} to go in this shard; torch threads {torch.get_num_threads()}",
          flush=True)
    for number, (params, seed) in enumerate(todo[: args.limit] if args.limit else todo, 1):
        record = record_run(bench, spec, test, params, seed)
        with args.out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        best = max(e["val_f1"] for e in record["curve"])
        print(f"[{number}/{len(todo)}] {params} seed {seed}: best val F1 {best:.4f} at evaluation "
              f"{record['best_evaluation']}, test F1 {record['test_f1']:.4f}, {record['wall_s']:.1f} s", flush=True)


def record_run(bench: Any, spec: Any, test: Any, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """One fine-tune: its curve with both clocks, its reuse record, and the test F1 of its best validation step."""
    import torch

    from hpo.train.loop import placement
    from hpo.train.metrics import f1

    config = spec.trial_config(params, seed=seed, time_limit_s=None)
    curve: list[dict[str, float]] = []
    started = time.monotonic()

    def on_eval(evaluation: Any) -> None:
        curve.append({"evaluation": evaluation.number, "epoch": evaluation.epoch, "val_f1": evaluation.f1,
                      "val_accuracy": evaluation.accuracy, "train_s": round(evaluation.train_seconds, 3),
                      "wall_s": round(time.monotonic() - started, 3)})

    fit = bench.fit_keeping_best(config, on_eval=on_eval)  # the model ends on its best validation step's weights
    wall = time.monotonic() - started
    predictions = bench.predicted(fit.model, config, test)
    return {"params": params, "seed": seed, "curve": curve, "wall_s": round(wall, 3),
            "best_evaluation": fit.best.number, "test_f1": f1(test.labels, predictions, "macro"),
            "reuse": fit.result.reuse_record(), "precision": placement(config).precision,
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}


if __name__ == "__main__":
    main()
