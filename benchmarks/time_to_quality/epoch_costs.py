"""What frozen-activation reuse does to a trial's time on the quickstart task, measured, for the replay.

1. Epoch cost by freeze depth: a one-epoch fit at each depth in the table (0, 3, 6), without reuse, with reuse
   on an empty cache (`first`: the trial that builds the frozen layers' outputs) and once they exist (`warm`),
   `--repeats` times each (median). The replay scales a recorded trial's times by warm/off (first/off for the
   first trial at a depth).
2. A check of that scaling: `--check` real grid configurations (3 epochs, as recorded) run with reuse, their
   wall time set against the recorded one scaled as the replay scales it.

Run it as the table was recorded (same threads, a quiet core):

    taskset -c 1 .venv/bin/python -m benchmarks.time_to_quality.epoch_costs --threads 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from benchmarks.time_to_quality.record_curves import STUDY
from benchmarks.time_to_quality.replay import AXES, Table

HERE = Path(__file__).parent
DEPTHS = (0, 3, 6)


def _fit(bench, spec, changes: dict) -> float:
    """Seconds of one fit (evaluations included, as the table's times are)."""
    config = spec.base_config().model_copy(update=changes)
    started = time.perf_counter()
    bench.fit(config, lambda e: None)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", type=int, default=6, help="real runs with reuse to check the scaling against")
    parser.add_argument("--out", type=Path, default=HERE / "epoch_costs.json")
    args = parser.parse_args()
    import torch

    from hpo.settings import cache_dir
    from hpo.spec import load_spec
    from hpo.workbench import open_workbench

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = load_spec(STUDY)
    bench = open_workbench(spec, str(STUDY))
    bench.fit(spec.base_config().model_copy(update={"epochs": 1, "reuse_activations": False}), lambda e: None)
    costs: dict[str, dict[int, float]] = {"off": {}, "first": {}, "warm": {}}
    for depth in DEPTHS:
        for mode in ("off", "first", "warm") if depth else ("off",):
            times = []
            for _ in range(args.repeats):
                if mode == "first":
                    shutil.rmtree(cache_dir() / "activations", ignore_errors=True)
                times.append(_fit(bench, spec, {"epochs": 1, "freeze_depth": depth, "target_weight": 0.7,
                                                "reuse_activations": mode != "off"}))
            costs[mode][depth] = statistics.median(times)
            print(f"freeze_depth {depth} reuse {mode:<5}: {costs[mode][depth]:6.2f} s per epoch "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    ratios = {mode: {d: costs[mode][d] / costs["off"][d] for d in costs[mode]} for mode in ("first", "warm")}
    print("share of the epoch without reuse:", json.dumps(ratios))
    checks = _check(bench, spec, ratios, args.check)
    args.out.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "seconds": costs, **ratios,
                                    "checks": checks}, indent=2) + "\n")
    print(f"wrote {args.out}")


def _check(bench, spec, ratios: dict, n: int) -> list[dict]:
    """Real 3-epoch runs with reuse (the cache warm, as for every trial after the first) against the recorded
    times scaled by the warm ratio."""
    table = Table.load(HERE / "curves.jsonl")
    chosen = [c for c in sorted(table.runs) if c[AXES.index("freeze_depth")] > 0][:: max(1, 36 // n)][:n]
    rows = []
    for config in chosen:
        params = dict(zip(AXES, config, strict=True))
        depth = int(params["freeze_depth"])
        recorded = table.runs[config][0]
        real = _fit(bench, spec, {**params, "freeze_depth": depth, "seed": recorded.seed, "reuse_activations": True})
        derived = recorded.steps[-1][1] * ratios["warm"][depth]
        rows.append({"params": params, "recorded_s": recorded.steps[-1][1], "derived_s": derived, "real_s": real,
                     "error": derived / real - 1})
        print(f"{json.dumps(params)}: recorded {recorded.steps[-1][1]:.1f} s, derived with reuse {derived:.1f} s, "
              f"real with reuse {real:.1f} s ({derived / real - 1:+.0%})", flush=True)
    return rows


if __name__ == "__main__":
    main()
