"""Replay every strategy over the recorded table, over many seeds, and say who wins, by how much, and where not.

For each strategy and seed (`--seeds`, default 100): the simulated time until some trial reports 99%
(`--quality`) of the table's best validation macro-F1 (`time to quality`), and the test macro-F1 of the
configuration the strategy would pick at the end of the budget (its best complete trial). Printed: the table's
axes; per strategy the median and 90th percentile time to quality (with the share of seeds that got there within
the budget), the ratio of its median to the project default's, and the mean test F1 with a 95% t interval, and
paired with the project default by seed. Written: results JSON and a plot of the best validation F1 against time
(median over seeds, the 10-90% band shaded).

    python -m benchmarks.time_to_quality.compare [--workers 1] [--seeds 100]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from benchmarks.time_to_quality.replay import AXES, Outcome, ReuseCost, Table
from benchmarks.time_to_quality.strategies import STRATEGIES, run_strategy

HERE = Path(__file__).parent
OURS = "project default + reuse"


def _percentile(values: list[float], q: float) -> float:
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
        rows[name] = {"median_s": median, "p90_s": _percentile(times, 0.9),
                      "reached": sum(t < math.inf for t in times) / len(times),
                      "median_vs_ours": median / ours_median if ours_median not in (0, math.inf) else None,
                      "test_f1": _mean_ci(tests), "test_f1_minus_ours": _mean_ci(paired)}
    return rows


def print_summary(table: Table, rows: dict[str, dict], workers: int, budget_s: float, seeds: int,
                  quality: float = 0.99) -> None:
    print(f"table: {sum(len(r) for r in table.runs.values())} runs of {len(table.runs)} configurations; axes:")
    for axis in AXES:
        print(f"  {axis}: {', '.join(f'{v:g}' for v in table.axes[axis])}")
    print(f"target: {quality:.0%} of the table's best val macro-F1 {table.best_val:.4f} = "
          f"{quality * table.best_val:.4f}; "
          f"{workers} worker(s); budget {budget_s / 60:.0f} min simulated; {seeds} seeds")
    print(f"{'strategy':<30} {'reached':>8} {'median':>10} {'p90':>10} {'median/ours':>12} "
          f"{'test F1 (95% CI)':>20} {'minus ours (95% CI)':>22}")
    for name, r in rows.items():
        ratio = "-" if r["median_vs_ours"] is None else f"{r['median_vs_ours']:.2f}x"
        mean, half = r["test_f1"]
        diff, dhalf = r["test_f1_minus_ours"]
        print(f"{name:<30} {r['reached']:>7.0%} {_minutes(r['median_s']):>10} {_minutes(r['p90_s']):>10} "
              f"{ratio:>12} {mean:>11.4f} ± {half:.4f} {diff:>+13.4f} ± {dhalf:.4f}")


def plot(outcomes: dict[str, list[Outcome]], budget_s: float, target: float, path: Path) -> None:
    """Best validation F1 against simulated time: the median over seeds, the 10-90% band shaded."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    grid = [budget_s * i / 400 for i in range(1, 401)]
    figure = go.Figure()
    for colour, (name, runs) in zip(qualitative.Plotly, outcomes.items(), strict=False):
        curves = [[max([v for t, v in o.trace if t <= at], default=0.0) for at in grid] for o in runs]
        columns = list(zip(*curves, strict=True))
        low, mid, high = ([_percentile(list(c), q) for c in columns] for q in (0.1, 0.5, 0.9))
        minutes = [t / 60 for t in grid]
        figure.add_trace(go.Scatter(x=minutes + minutes[::-1], y=high + low[::-1], fill="toself", opacity=0.15,
                                    fillcolor=colour, line={"width": 0}, showlegend=False, hoverinfo="skip",
                                    legendgroup=name))
        figure.add_trace(go.Scatter(x=minutes, y=mid, name=name, mode="lines", line={"color": colour},
                                    legendgroup=name))
    figure.add_hline(y=target, line_dash="dash", line_color="gray", annotation_text="target")
    # log time and the top of the F1 range: the races are decided in the first minutes and above 0.85
    figure.update_layout(template="plotly_white", height=520, xaxis_title="simulated minutes (log scale)",
                         yaxis_title="best val macro-F1 so far (median over seeds, 10-90% shaded)",
                         xaxis_type="log", xaxis_range=[math.log10(0.2), math.log10(budget_s / 60)],
                         yaxis_range=[0.85, 1.0],
                         title="Time to quality on the quickstart task (replayed real curves)")
    path.write_text(figure.to_html(include_plotlyjs="cdn", full_html=True))
    _screenshot(figure, path.with_suffix(".png"))


def _screenshot(figure, png: Path) -> None:
    """A PNG beside the page, for reading where HTML is not rendered, if a Chromium is on PATH (the page with
    plotly.js inline is 4.6 MB, too much to commit; kaleido would be one more dependency for one picture)."""
    import shutil
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(f"no chromium on PATH: {png.name} not written")
        return
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "page.html"
        page.write_text(figure.to_html(include_plotlyjs=True, full_html=True, config={"displayModeBar": False}))
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={folder}/profile", "--window-size=1100,560", "--virtual-time-budget=5000",
                        f"--screenshot={png.resolve()}", page.as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=HERE / "curves.jsonl")
    parser.add_argument("--costs", type=Path, default=HERE / "epoch_costs.json")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--quality", type=float, default=0.99, help="the target, as a share of the table's best")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    table = Table.load(args.table)
    costs = json.loads(args.costs.read_text())
    reuse = ReuseCost({int(k): v for k, v in costs["warm"].items()}, {int(k): v for k, v in costs["first"].items()})
    grid_time = sum(statistics.fmean(r.steps[-1][1] for r in runs) for runs in table.runs.values())
    budget = grid_time / args.workers
    names = list(STRATEGIES)
    outcomes = {name: [run_strategy(name, table, seed, workers=args.workers, budget_s=budget,
                                    target=args.quality * table.best_val, reuse=reuse) for seed in range(args.seeds)]
                for name in names}
    rows = summarise(outcomes)
    print_summary(table, rows, args.workers, budget, args.seeds, args.quality)
    suffix = f"-{args.workers}w" + ("" if args.quality == 0.99 else f"-q{args.quality:g}")
    (args.out / f"replay{suffix}.json").write_text(json.dumps(
        {"workers": args.workers, "seeds": args.seeds, "quality": args.quality, "budget_s": budget,
         "best_val": table.best_val,
         "strategies": rows}, indent=2, default=str) + "\n")
    plot(outcomes, budget, args.quality * table.best_val, args.out / f"replay{suffix}.html")
    print(f"wrote {args.out / f'replay{suffix}.json'} and {args.out / f'replay{suffix}.html'} (.png)")


if __name__ == "__main__":
    main()
