"""Does searching layer-wise learning-rate decay help the quickstart search? With and without, paired by seed.

What is measured
----------------
`hpo run` of studies/quickstart.yaml (its model, data, sampler, pruner and trial budget) for each study seed
(`training.seed`: the validation split, the heads, the batch order and the sampler's base seed), twice:

1. without: the study file as shipped (one learning rate for the whole encoder, ξ = 1);
2. with: the same file with `layer_lr_decay: {low: 0.6, high: 1.0}` added to the search space (layer i of L then
   trains at learning_rate·ξ^(L−i), the embeddings at learning_rate·ξ^L).

Both runs of a seed share its validation split, so their best validation macro-F1s are paired: the script prints
both for each seed, their difference (with − without), and the mean difference over the seeds with its standard
deviation and a 95% t interval. Each run gets a cache of its own for the frozen layers' outputs
(benchmarks/lora_vs_full.py), so the wall times printed alongside are comparable.

    .venv/bin/python -m benchmarks.layer_decay [--seeds 0 1 2] [--json layer_decay.json]

`--quick` runs 2 trials of one epoch on tiny data as a smoke test; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.lora_vs_full import Search, quickstart, run_search

DECAY_RANGE = {"low": 0.6, "high": 1.0}


def with_decay(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "search_space": {**raw["search_space"], "layer_lr_decay": DECAY_RANGE}}


def seeded(raw: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**raw, "training": {**raw["training"], "seed": seed}}


def interval(differences: list[float]) -> tuple[float, float, float]:
    """Mean, standard deviation and the half-width of a 95% t interval of the paired differences."""
    from scipy import stats

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, float("nan"), float("nan")
    sd = statistics.stdev(differences)
    return mean, sd, stats.t.ppf(0.975, len(differences) - 1) * sd / len(differences) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, figures meaningless")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    raw = quickstart(args.quick)
    runs: dict[int, dict[str, Search]] = {}
    print(f"{'seed':>4} {'without F1':>10} {'with F1':>8} {'with-without':>12} {'without s':>9} {'with s':>7} "
          "best ξ", flush=True)
    for seed in args.seeds:
        runs[seed] = {name: run_search(study, f"layer-decay-{name}-{seed}")
                      for name, study in (("without", seeded(raw, seed)), ("with", with_decay(seeded(raw, seed))))}
        without, with_ = runs[seed]["without"], runs[seed]["with"]
        print(f"{seed:>4} {without.best_f1:>10.4f} {with_.best_f1:>8.4f} {with_.best_f1 - without.best_f1:>+12.4f} "
              f"{without.wall_s:>9.0f} {with_.wall_s:>7.0f} {with_.best_params.get('layer_lr_decay', 1.0):.3f}",
              flush=True)
    differences = [runs[s]["with"].best_f1 - runs[s]["without"].best_f1 for s in args.seeds]
    mean, sd, half = interval(differences)
    print(f"paired mean difference (with − without) over {len(differences)} seeds: {mean:+.4f} "
          f"(sd {sd:.4f}, 95% t interval {mean - half:+.4f} .. {mean + half:+.4f})")
    if args.json:
        args.json.write_text(json.dumps({seed: {k: asdict(v) for k, v in pair.items()} for seed, pair in runs.items()},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
