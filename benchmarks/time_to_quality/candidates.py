"""How the new default was chosen: candidate samplers and pruners of the study file, each replayed as compare.py
replays a strategy (the same surrogate, clock, target and seeds, a quarter of the trials target only), printed as
the median time to 99% of the best validation F1, the share of seeds that got there and the mean test F1 of the
pick. The winner became `SamplerSpec()` / `PrunerSpec()` (hpo/spec/models.py), which compare.py calls `default`.

    python -m benchmarks.time_to_quality.candidates [--seeds 40] [--budget-min 60] [--processes 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

from benchmarks.time_to_quality import compare
from benchmarks.time_to_quality.strategies import STRATEGIES, project
from hpo.spec import PrunerSpec, SamplerSpec

CANDIDATES: dict[str, tuple[SamplerSpec, PrunerSpec]] = {
    "tpe + hyperband rf 3 (the previous default)": (SamplerSpec(), PrunerSpec(name="hyperband")),
    "tpe + hyperband rf 3, min resource 2": (SamplerSpec(), PrunerSpec(name="hyperband", min_resource=2)),
    "tpe + median pruning": (SamplerSpec(), PrunerSpec(name="median")),
    "tpe + successive halving rf 2": (SamplerSpec(), PrunerSpec(name="successive_halving", reduction_factor=2)),
    "tpe + successive halving rf 3": (SamplerSpec(), PrunerSpec(name="successive_halving")),
    "tpe + successive halving rf 4": (SamplerSpec(), PrunerSpec(name="successive_halving", reduction_factor=4)),
    "tpe + successive halving rf 3, min resource 2": (SamplerSpec(),
                                                      PrunerSpec(name="successive_halving", min_resource=2)),
    "tpe, 5 start-up trials + successive halving rf 3": (SamplerSpec(n_startup_trials=5),
                                                         PrunerSpec(name="successive_halving")),
    "tpe, 20 start-up trials + successive halving rf 3": (SamplerSpec(n_startup_trials=20),
                                                          PrunerSpec(name="successive_halving")),
    "qmc + successive halving rf 3": (SamplerSpec(name="qmc"), PrunerSpec(name="successive_halving")),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--budget-min", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    for name, (sampler, pruner) in CANDIDATES.items():  # the pool's processes fork with these registered
        STRATEGIES[name] = lambda s=sampler, p=pruner, n=name: project(s, p, n)
    best = compare.start(sorted(compare.HERE.glob("table-*.jsonl")), compare.HERE / "costs.json")
    names = ["asha", *CANDIDATES]
    outcomes = compare.replay_all(names, args.seeds, 1, args.budget_min * 60, 0.99 * best, args.processes)
    print(f"{args.seeds} seeds, 1 worker, budget {args.budget_min:.0f} min, target {0.99 * best:.4f}")
    for name, runs in outcomes.items():
        times = [o.time_to_target for o in runs]
        print(f"{name:<52} median {statistics.median(times) / 60:5.2f} min  reached "
              f"{sum(t < math.inf for t in times) / len(times):4.0%}  test F1 "
              f"{statistics.fmean(o.test_f1 or 0.0 for o in runs):.4f}")


if __name__ == "__main__":
    main()
