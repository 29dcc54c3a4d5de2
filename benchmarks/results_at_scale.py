"""The results commands on a 10,000-trial study, side by side with what a user would run without transfer-hpo.

Builds a study of N trials shaped like a real search's (benchmarks/big_study.py: 40% COMPLETE, 55% PRUNED, 5% FAIL,
per-evaluation F1 and the attributes `hpo run` records) in SQLite (and PostgreSQL with --postgres URL), then times,
each as a fresh process as a user runs it (the median of --repeats runs):

    hpo studies -f json         vs  optuna studies -f json
    hpo status NAME -f json     vs  optuna best-trial (the nearest Optuna command)
    hpo trials NAME -f json     vs  optuna trials -f json
    hpo best NAME --top 5       vs  optuna best-trial
    hpo report NAME             vs  optuna.visualization's five plots of the whole study in one HTML file

Goals (issue 12): `hpo report` <= 10 s; `hpo status`, `hpo studies`, `hpo trials -f json` <= 2 s.

    python -m benchmarks.results_at_scale [--trials 10000] [--repeats 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.big_study import build

GOALS = {"report": 10.0, "status": 2.0, "studies": 2.0, "trials": 2.0}
BIN = Path(sys.executable).parent

# The baseline report: what a user writes with Optuna alone, on every trial of the study.
OPTUNA_REPORT = """
import sys, warnings
warnings.simplefilter("ignore")
import optuna
from optuna import visualization as vis
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
figures = [vis.plot_optimization_history(study), vis.plot_intermediate_values(study),
           vis.plot_param_importances(study), vis.plot_parallel_coordinate(study), vis.plot_slice(study)]
with open(sys.argv[3], "w") as out:
    for i, figure in enumerate(figures):
        out.write(figure.to_html(full_html=False, include_plotlyjs=i == 0))
"""


def _timed(command: list[str], repeats: int, timeout: float) -> float | None:
    """The median wall time of `command` (None: it ran past `timeout`)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _pairs(url: str, name: str, out: Path) -> dict[str, tuple[list[str], list[str]]]:
    hpo, optuna = [str(BIN / "hpo")], [str(BIN / "optuna")]
    store = ["--storage", url]
    return {
        "studies": ([*hpo, "studies", "-f", "json", *store], [*optuna, "studies", "-f", "json", *store]),
        "status": ([*hpo, "status", name, "-f", "json", *store],
                   [*optuna, "best-trial", "--study-name", name, "-f", "json", *store]),
        "trials": ([*hpo, "trials", name, "-f", "json", *store],
                   [*optuna, "trials", "--study-name", name, "-f", "json", *store]),
        "best": ([*hpo, "best", name, "--top", "5", "-f", "json", *store],
                 [*optuna, "best-trial", "--study-name", name, "-f", "json", *store]),
        "report": ([*hpo, "report", name, "-o", str(out / "hpo.html"), *store],
                   [sys.executable, "-c", OPTUNA_REPORT, url, name, str(out / "optuna.html")]),
    }


def _fmt(seconds: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s" if seconds is None else f"{seconds:.2f} s"


def run(url: str, label: str, n_trials: int, repeats: int, timeout: float) -> None:
    name = "big"
    started = time.perf_counter()
    build(url, n_trials, name=name)
    print(f"\n{label}: {n_trials:,} trials written in {time.perf_counter() - started:.1f} s")
    print(f"{'command':<10} {'hpo':>10} {'baseline':>12} {'baseline/hpo':>13}  goal")
    with tempfile.TemporaryDirectory() as out:
        for command, (ours, baseline) in _pairs(url, name, Path(out)).items():
            mine = _timed(ours, repeats, timeout)
            theirs = _timed(baseline, 1 if command == "report" else repeats, timeout)
            ratio = "-" if mine is None or theirs is None else f"{theirs / mine:.1f}x"
            goal = GOALS.get(command)
            verdict = "" if goal is None or mine is None else f"<= {goal:g} s {'met' if mine <= goal else 'MISSED'}"
            print(f"{command:<10} {_fmt(mine, timeout):>10} {_fmt(theirs, timeout):>12} {ratio:>13}  {verdict}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a command counts as too slow")
    parser.add_argument("--postgres", metavar="URL", help="also on this (empty) PostgreSQL database")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; each command a fresh process, median of "
          f"{args.repeats} (the baseline report: 1 run)")
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/big.db", "SQLite", args.trials, args.repeats, args.timeout)
    if args.postgres:
        run(args.postgres, "PostgreSQL", args.trials, args.repeats, args.timeout)


if __name__ == "__main__":
    main()
