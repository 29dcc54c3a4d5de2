"""The replay's clock: seconds per evaluation segment of a quickstart trial by freeze depth, with and without source
batches, and the one-time cost of storing a depth's frozen activations, measured with this project's loop.

    taskset -c 0 .venv/bin/python -m benchmarks.time_to_quality.costs --threads 1   # costs.json, on a quiet core

For every depth 0..6 and λ in {0.5, 1}: one epoch (2 evaluations) of the quickstart config on an empty activation
cache (the build, for depths ≥ 1), then `--repeats` epochs with the cache warm; a segment is half an epoch of
training plus one validation pass (the wall time between two evaluations). The table's own wall times were recorded
on a machine other processes shared, so the replay takes its clock from here instead; `from_records` derives one
from the table as a fallback (medians per depth and λ), for a quick look before this has run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.time_to_quality.replay import Costs

__all__ = ["from_records", "load", "measure"]

HERE = Path(__file__).parent
STUDY = Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml"


def load(path: Path) -> Costs:
    raw = json.loads(path.read_text())
    return Costs(*({int(k): float(v) for k, v in raw[part].items()} for part in ("transfer", "target_only", "build")))


def from_records(paths: list[Path]) -> Costs:
    """A clock from the recorded table: per depth and λ, the median seconds per evaluation segment (the run's wall
    time less what it spent storing activations, over its evaluations) and the median build time where one built."""
    segments: dict[tuple[int, bool], list[float]] = {}
    builds: dict[int, list[float]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            raw = json.loads(line)
            depth, alone = int(raw["params"]["freeze_depth"]), float(raw["params"]["target_weight"]) >= 1.0
            build = float(raw["reuse"]["build_seconds"]) if isinstance(raw.get("reuse"), dict) else 0.0
            segments.setdefault((depth, alone), []).append((raw["wall_s"] - build) / len(raw["curve"]))
            if build:
                builds.setdefault(depth, []).append(build)
    transfer = {d: statistics.median(v) for (d, alone), v in segments.items() if not alone}
    alone = {d: statistics.median(v) for (d, a), v in segments.items() if a}
    for depth, seconds in transfer.items():  # a depth never recorded at λ = 1: a transfer segment's cost
        alone.setdefault(depth, seconds)
    return Costs(transfer, alone, {d: statistics.median(v) for d, v in builds.items()})


def measure(threads: int | None, repeats: int, depths: list[int]) -> dict[str, dict[int, float]]:
    import os
    import shutil

    import torch

    if threads:
        torch.set_num_threads(threads)
    from hpo.search.worker import quiet_libraries
    from hpo.settings import configure
    from hpo.spec import load_spec
    from hpo.workbench import open_workbench

    quiet_libraries()
    spec = load_spec(STUDY)
    costs: dict[str, dict[int, float]] = {"transfer": {}, "target_only": {}, "build": {}}
    with tempfile.TemporaryDirectory(prefix="hpo-costs-") as cache:
        os.environ["HPO_CACHE"] = cache
        configure(cache=Path(cache))
        bench = open_workbench(spec, str(STUDY))
        for depth in depths:
            # Each depth's stored activations built from the input (an emptied store): the project builds a depth
            # from the deepest one already stored below it, which the replay charges as a difference of these.
            shutil.rmtree(Path(cache) / "activations", ignore_errors=True)
            for weight, part in ((0.5, "transfer"), (1.0, "target_only")):
                config = spec.trial_config({"freeze_depth": depth, "target_weight": weight}, epochs=1, seed=0)
                _, first = _segments(bench, config)
                if depth and part == "transfer":
                    costs["build"][depth] = first.reuse.build_seconds if first.reuse else 0.0
                costs[part][depth] = statistics.median(s for _ in range(repeats) for s in _segments(bench, config)[0])
                print(f"depth {depth} λ {weight}: {costs[part][depth]:.3f} s a segment"
                      + (f", build {costs['build'][depth]:.2f} s" if depth and part == "transfer" else ""), flush=True)
    return costs


def _segments(bench: Any, config: Any) -> tuple[list[float], Any]:
    """Wall seconds of each evaluation segment of one fit, and the fit's TrainResult."""
    marks = [time.monotonic()]
    _, result = bench.fit(config, lambda evaluation: marks.append(time.monotonic()))
    return [b - a for a, b in itertools.pairwise(marks)], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="+", default=list(range(7)),
                        help="measure these depths again; the others are kept from OUT")
    parser.add_argument("--out", type=Path, default=HERE / "costs.json")
    args = parser.parse_args()
    costs = measure(args.threads, args.repeats, args.depths)
    if args.out.exists():  # the depths not measured this time, as OUT had them
        kept = json.loads(args.out.read_text())
        costs = {part: {**{int(d): v for d, v in kept[part].items()}, **costs[part]} for part in costs}
    args.out.write_text(json.dumps({part: dict(sorted(v.items())) for part, v in costs.items()}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
