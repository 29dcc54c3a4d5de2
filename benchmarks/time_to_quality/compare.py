"""Replay every strategy on the surrogate, over many seeds, and say who wins, by how much, and where not.

For each strategy and seed (`--seeds`, default 100): the simulated time until some trial reports 99% (`--quality`)
of the best validation macro-F1 any recorded run reached (`time to quality`), and the test macro-F1 (the
surrogate's) of the configuration the strategy would pick at the end of the budget (its best complete trial). The
budget is `--budget-min` minutes of one worker's time (default 30; N workers get 30/N minutes of wall time, the
same compute): past every strategy's slowest time to quality at one worker in a trial run of 16 seeds, and about
what a user gives a study of this size (the whole 729-point grid would take 6.7 hours of one core). Seeds run in
`--processes` processes at once (a seed's outcome does not depend on which process ran it). Printed: the
surrogate's held-out accuracy beside the seed noise; per strategy the median and 90th percentile time to
quality (with the share of seeds that got there), the ratio of its median to the new default's, and the mean test
F1 with a 95% t interval, alone and paired with the default by seed. Written: `replay-{N}w.json` (with every seed's
outcome) and a plot of the best validation F1 against time (median over seeds, the 10-90% band shaded), as HTML and
PNG.

    python -m benchmarks.time_to_quality.compare [--workers 1] [--seeds 100] [--budget-min 30] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.time_to_quality import costs as clock
from benchmarks.time_to_quality.plot import plot
from benchmarks.time_to_quality.replay import Costs, Outcome
from benchmarks.time_to_quality.space import AXES
from benchmarks.time_to_quality.strategies import STRATEGIES, run_strategy
from benchmarks.time_to_quality.surrogate import Surrogate, load_records, validate

HERE = Path(__file__).parent
OURS = "default"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _mean_ci(values: list[float]) -> tuple[float, float]:
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, float(t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def _minutes(seconds: float) -> str:
    return "never" if seconds == math.inf else f"{seconds / 60:.1f} min"


def summarise(outcomes: dict[str, list[Outcome]]) -> dict[str, dict]:
    ours = outcomes[OURS]
    ours_median = statistics.median(o.time_to_target for o in ours)
    rows = {}
    for name, runs in outcomes.items():
        times = [o.time_to_target for o in runs]
        tests = [o.test_f1 if o.test_f1 is not None else 0.0 for o in runs]
        paired = [a - (b.test_f1 or 0.0) for a, b in zip(tests, ours, strict=True)]
        median = statistics.median(times)
        rows[name] = {"median_s": median, "p90_s": percentile(times, 0.9),
                      "reached": sum(t < math.inf for t in times) / len(times),
                      "median_vs_ours": median / ours_median if ours_median not in (0, math.inf) else None,
                      "test_f1": _mean_ci(tests), "test_f1_minus_ours": _mean_ci(paired),
                      "trials": statistics.median(o.trials for o in runs),
                      "per_seed": [[o.time_to_target, o.test_f1] for o in runs]}
    return rows


def document(rows: dict[str, dict], checked: dict, costs: Costs, *, quality: float, workers: int, seeds: int,
             budget_s: float, best: float, records: int, costs_source: str) -> dict[str, Any]:
    """What `replay-{N}w.json` holds: the settings, the surrogate's check, the clock and `summarise`'s rows."""
    return {"quality": quality, "workers": workers, "axes": list(AXES), "seeds": seeds, "budget_s": budget_s,
            "best_val": best, "target": quality * best, "records": records, "surrogate": checked,
            "costs": {"source": costs_source, "transfer": costs.transfer, "target_only": costs.target_only,
                      "build": costs.build},
            "strategies": rows}


def print_summary(rows: dict[str, dict], checked: dict, *, workers: int, budget_s: float, seeds: int,
                  quality: float, best: float) -> None:
    print(f"surrogate: {checked['held_out_runs']} held-out runs ({checked['folds']} folds): Spearman of the best val "
          f"F1 {checked['spearman_best']:.3f}, mean absolute error {checked['mae_best']:.4f}; seed noise per "
          f"evaluation {', '.join(f'{v:.4f}' for v in checked['seed_noise'])} (a second seed predicts the first's "
          f"best with error {checked['second_seed']['mae_best']:.4f} over {checked['second_seed']['pairs']} pairs)")
    print(f"axes: {', '.join(AXES)}; target: {quality:.0%} of the best recorded val macro-F1 {best:.4f} = "
          f"{quality * best:.4f}; {workers} worker(s); budget {budget_s / 60:.0f} min simulated; {seeds} seeds")
    print(f"{'strategy':<30} {'reached':>8} {'median':>10} {'p90':>10} {'median/ours':>12} {'trials':>7} "
          f"{'test F1 (95% CI)':>20} {'minus ours (95% CI)':>22}")
    for name, r in rows.items():
        ratio = "-" if r["median_vs_ours"] is None else f"{r['median_vs_ours']:.2f}x"
        mean, half = r["test_f1"]
        diff, dhalf = r["test_f1_minus_ours"]
        print(f"{name:<30} {r['reached']:>7.0%} {_minutes(r['median_s']):>10} {_minutes(r['p90_s']):>10} "
              f"{ratio:>12} {r['trials']:>7.0f} {mean:>11.4f} ± {half:.4f} {diff:>+13.4f} ± {dhalf:.4f}")


_WORK: dict[str, Any] = {}  # the surrogate and clock, fitted once; the pool's forked processes inherit them


def start(tables: list[Path], costs_path: Path) -> float:
    """Fit the surrogate and load the clock for this process and the replay's forked ones; the best validation F1
    any recorded run reached (the target's reference)."""
    records = load_records(tables)
    _WORK.update(surrogate=Surrogate.fit(records), records=records,
                 costs=clock.load(costs_path) if costs_path.exists() else clock.from_records(tables))
    return max(max(r.values) for r in records)


def _one(task: tuple[str, int, int, float, float]) -> Outcome:
    name, seed, workers, budget, target = task
    return run_strategy(name, _WORK["surrogate"], _WORK["costs"], seed, workers=workers, budget_s=budget,
                        target=target)


def replay_all(names: list[str], seeds: int, workers: int, budget: float, target: float,
               processes: int) -> dict[str, list[Outcome]]:
    """Every strategy at every seed, in `processes` processes (each fits the same surrogate: it is seeded)."""
    from multiprocessing import get_context

    tasks = [(name, seed, workers, budget, target) for name in names for seed in range(seeds)]
    if processes <= 1:
        done = list(map(_one, tasks))
    else:
        with get_context("fork").Pool(processes) as pool:
            done = pool.map(_one, tasks, chunksize=1)
    return {name: [o for o in done if o.strategy == name] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, nargs="+", default=sorted(HERE.glob("table-*.jsonl")))
    parser.add_argument("--costs", type=Path, default=HERE / "costs.json")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--quality", type=float, default=0.99, help="the target, as a share of the recorded best")
    parser.add_argument("--budget-min", type=float, default=30.0, help="minutes of one worker's time")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    best = start(args.table, args.costs)
    records, costs = _WORK["records"], _WORK["costs"]
    checked = validate(records)
    budget = args.budget_min * 60 / args.workers
    names = [OURS, *(n for n in args.strategies if n != OURS)]
    outcomes = replay_all(names, args.seeds, args.workers, budget, args.quality * best, args.processes)
    rows = summarise(outcomes)
    print_summary(rows, checked, workers=args.workers, budget_s=budget, seeds=args.seeds, quality=args.quality,
                  best=best)
    suffix = f"-{args.workers}w" + ("" if args.quality == 0.99 else f"-q{args.quality:g}")
    out = args.out / f"replay{suffix}.json"
    source = str(args.costs) if args.costs.exists() else "the table's wall times"
    out.write_text(json.dumps(document(rows, checked, costs, quality=args.quality, workers=args.workers,
                                       seeds=args.seeds, budget_s=budget, best=best, records=len(records),
                                       costs_source=source), indent=2, default=str) + "\n")
    plot(outcomes, budget, args.quality * best, args.out / f"replay{suffix}.html")
    print(f"wrote {out} and {out.with_suffix('.html')} (.png)")


if __name__ == "__main__":
    main()
