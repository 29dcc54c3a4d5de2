"""The replay checked against reality: real searches of the quickstart task over the benchmark's continuous space
(space.py), each `hpo run` with the same wall-clock budget (default 600 s) on one core, then the test macro-F1 of
each one's pick.

Strategies, as in the replay: `default` (the study files' default sampler and pruner: the study file names none,
a quarter of the trials target only), `random` (random search, no pruning) and `grid` (the replay's 729-point grid,
3 values per axis, in an order shuffled by the run's seed, queued with `--enqueue`, no pruning). Each run starts on
an empty activation cache (the builds are part of its time; corpora and tokens are shared), keeps its best complete
trial's model at its best evaluation (`keep_models: 1`), and that model is scored on the test split with `hpo
evaluate`, which the search never read: the same "test F1 of the best run's best step" the table records.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python -m benchmarks.time_to_quality.live --strategies random grid \\
        --out benchmarks/time_to_quality/live-baselines.jsonl &
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python -m benchmarks.time_to_quality.live --strategies default \\
        --out benchmarks/time_to_quality/live-default.jsonl; wait

Resumable like the table: one JSON line per run is appended to OUT as it ends, and a rerun skips what OUT holds.
`--summarise FILE...` prints the runs and their means.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.time_to_quality.space import SPACE, grid_values

HERE = Path(__file__).parent
STUDY = Path(__file__).resolve().parents[2] / "studies" / "quickstart.yaml"
STRATEGIES = ("default", "random", "grid")
RUNS = 3  # per strategy; run r uses seed r


def study_text(strategy: str, seed: int, budget: float) -> dict[str, Any]:
    """The quickstart study file searching the benchmark's space with this strategy's sampler and pruner."""
    spec = yaml.safe_load(STUDY.read_text())
    space: dict[str, Any] = {}
    for axis, (low, high, kind) in SPACE.items():
        space[axis] = {"low": low, "high": high, **({"log": True} if kind == "log" else {})}
    if strategy == "default":
        space["target_weight"]["target_only_share"] = 0.25
    spec.pop("n_trials", None)
    spec.pop("sampler", None)
    spec.pop("pruner", None)
    spec |= {"name": f"live-{strategy}-{seed}", "search_space": space, "timeout": budget, "keep_models": 1}
    spec["training"]["seed"] = seed
    if strategy != "default":
        spec |= {"sampler": {"name": "random"}, "pruner": {"name": "none"}}
    return spec


def grid_document(seed: int) -> dict[str, Any]:
    """The 729 grid points in a seeded random order, in the form `hpo export --top K` writes (for --enqueue)."""
    values = grid_values()
    points = [dict(zip(values, p, strict=True)) for p in itertools.product(*values.values())]
    random.Random(seed).shuffle(points)
    origin = {"study": f"grid-{seed}", "spec_sha256": "", "data": {}, "model": {}, "packages": {},
              "exported_at": "written by benchmarks/time_to_quality/live.py"}
    return {"exported_from": origin, "configs": [{"params": p} for p in points]}


def live_run(strategy: str, seed: int, budget: float) -> dict[str, Any]:
    hpo = [sys.executable, "-m", "hpo"]
    with tempfile.TemporaryDirectory(prefix="hpo-live-") as folder:
        work = Path(folder)
        env = {**os.environ, "HPO_CACHE": str(_fresh_cache(work)), "HPO_STORAGE": f"sqlite:///{work}/live.db"}
        spec = study_text(strategy, seed, budget)
        (work / "live.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        command = [*hpo, "run", "live.yaml"]
        if strategy == "grid":
            (work / "grid.yaml").write_text(yaml.safe_dump(grid_document(seed), sort_keys=False))
            command += ["--enqueue", "grid.yaml"]
        started = time.perf_counter()
        _hpo(command, work, env)
        searched = time.perf_counter() - started
        trials = json.loads(_hpo([*hpo, "trials", spec["name"], "-f", "json"], work, env))
        best = json.loads(_hpo([*hpo, "best", spec["name"], "-f", "json"], work, env))[0]
        _hpo([*hpo, "export", spec["name"], "--model", "model"], work, env)
        _hpo([*hpo, "evaluate", "model"], work, env)
        test = json.loads((work / "model" / "test_metrics.json").read_text())
    states = [t["state"] for t in trials]  # a grid's points not reached stay WAITING: not trials that ran
    return {"strategy": strategy, "seed": seed, "budget_s": budget, "search_s": round(searched, 1),
            "trials": sum(states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")),
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
            "best_val_f1": best["value"], "chosen": best["params"], "test_f1": test["f1"]["macro"]}


def _hpo(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[2:])} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def _fresh_cache(work: Path) -> Path:
    """An empty activation cache; the corpora and tokenised texts of the default cache shared (read, not timed)."""
    from hpo.settings import cache_dir

    cache = work / "cache"
    cache.mkdir()
    for part in ("corpora", "tokens"):
        if (cache_dir() / part).is_dir():
            (cache / part).symlink_to(cache_dir() / part)
    return cache


def summarise(paths: list[Path]) -> None:
    """Per strategy: its runs' best validation F1 and the test F1 of their picks, the means, and the trials run."""
    import statistics

    runs = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    print(f"{'strategy':<9} {'runs':>4} {'trials (pruned)':>16} {'best val F1':>28} {'test F1 of the pick':>28}")
    for name in STRATEGIES:
        mine = sorted((r for r in runs if r["strategy"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        vals, tests = [r["best_val_f1"] for r in mine], [r["test_f1"] for r in mine]
        trials = ", ".join(f"{r['trials']} ({r['pruned']})" for r in mine)
        print(f"{name:<9} {len(mine):>4} {trials:>16} {' '.join(f'{v:.4f}' for v in vals):>20} "
              f"mean {statistics.fmean(vals):.4f} {' '.join(f'{v:.4f}' for v in tests):>20} "
              f"mean {statistics.fmean(tests):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of search per run")
    parser.add_argument("--out", type=Path, help="JSONL file to append runs to (resumed)")
    parser.add_argument("--summarise", type=Path, nargs="+", help="print the runs of these files instead")
    parser.add_argument("--shard", default="0/1", help="I/N: every N-th run from the I-th (one per core)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return
    if args.out is None:
        parser.error("give --out (or --summarise)")
    index, count = (int(x) for x in args.shard.split("/"))
    done = {(r["strategy"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines())} \
        if args.out.exists() else set()
    todo = [(s, seed) for seed in range(RUNS) for s in args.strategies][index::count]
    for strategy, seed in todo:
        if (strategy, seed) in done:
            continue
        result = live_run(strategy, seed, args.budget)
        with args.out.open("a") as out:
            out.write(json.dumps(result) + "\n")
        print(f"{strategy:<8} seed {seed}: {result['trials']:3d} trials ({result['pruned']} pruned) in "
              f"{result['search_s']:.0f} s, best val macro-F1 {result['best_val_f1']:.4f}, test macro-F1 of its pick "
              f"{result['test_f1']:.4f}", flush=True)


if __name__ == "__main__":
    main()
