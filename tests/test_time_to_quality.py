"""The time-to-quality benchmark (benchmarks/time_to_quality): the surrogate returns the recorded curves at the
recorded configurations; whole searches replayed through Optuna's real samplers and pruners on hand-made curves
and costs happen at the times, in the order and with the outcome worked out by hand; the compare step's numbers."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from scipy.stats import t as student_t

from benchmarks.time_to_quality import costs as clock
from benchmarks.time_to_quality.compare import document, summarise
from benchmarks.time_to_quality.replay import Costs, Outcome, Search, replay
from benchmarks.time_to_quality.space import grid_values, suggest
from benchmarks.time_to_quality.strategies import (
    EVALUATIONS,
    HF_FIXED,
    STRATEGIES,
    grid,
    hf_style,
    one_epoch_top_k,
    run_strategy,
)
from benchmarks.time_to_quality.surrogate import Surrogate, load_records

BASE = {"l2": 1e-7, "l1": 1e-9, "warmup_ratio": 0.0}  # the axes no hand-made curve depends on


def _config(lr: float, lam: float, depth: int = 0) -> dict[str, Any]:
    return {"learning_rate": lr, "target_weight": lam, "freeze_depth": depth, **BASE}


# Four curves by (learning rate, λ): val F1 at each of 4 evaluations, and the test F1. Only B reaches the target.
CURVES = {
    (1e-4, 0.5): ((0.20, 0.40, 0.50, 0.60), 0.55),  # A
    (1e-4, 1.0): ((0.30, 0.50, 0.70, 0.90), 0.85),  # B: 0.90 at its 4th evaluation
    (3e-4, 0.5): ((0.50, 0.60, 0.65, 0.70), 0.68),  # C
    (3e-4, 1.0): ((0.10, 0.20, 0.30, 0.40), 0.35),  # D
}
A, B, C, D = (_config(lr, lam) for lr, lam in CURVES)
TARGET = 0.99 * 0.90
# A segment (half an epoch, then a validation) costs 10 s with a source batch (λ < 1) and 15 s target only, at
# every depth; storing depth 3's activations costs 30 s once, depth 6's 50 s.
COSTS = Costs(transfer={d: 10.0 for d in range(7)}, target_only={d: 15.0 for d in range(7)}, build={3: 30.0, 6: 50.0})
NO_BUILD = Costs(COSTS.transfer, COSTS.target_only, build={})


class Table:
    """The four curves as a `Curves`: by learning rate and λ, the same at every seed (no noise to draw)."""

    def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        return np.array(CURVES[config["learning_rate"], config["target_weight"]][0])

    def test_f1(self, config: dict[str, Any]) -> float:
        return CURVES[config["learning_rate"], config["target_weight"]][1]


@dataclass
class Region:
    """Curves over the whole continuous space: B's inside the region, C's outside."""

    inside: Callable[[dict[str, Any]], bool]

    def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        return np.array(CURVES[(1e-4, 1.0) if self.inside(config) else (3e-4, 0.5)][0])

    def test_f1(self, config: dict[str, Any]) -> float:
        return 0.85 if self.inside(config) else 0.68


def _queued(configs: list[dict[str, Any]], pruner: Any) -> Search:
    """A study that runs `configs` in this order (queued trials; `suggest` reads the queued values back)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    for config in configs:
        study.enqueue_trial(config)
    return Search(study, suggest, limit=len(configs))


def _row(config: dict[str, Any], seed: int, values: list[float], test_f1: float, wall_s: float,
         build_s: float) -> dict[str, Any]:
    """A run as record_table.py writes it (a line of table-*.jsonl), with the fields the readers use."""
    return {"params": config, "seed": seed, "wall_s": wall_s, "test_f1": test_f1,
            "curve": [{"evaluation": i + 1, "epoch": (i + 1) / 2, "val_f1": v} for i, v in enumerate(values)],
            "reuse": {"depth": config["freeze_depth"], "build_seconds": build_s}}


def test_the_surrogate_returns_the_recorded_curves_and_the_table_gives_the_clock(tmp_path):
    a0, a1 = [0.20, 0.40, 0.50, 0.60, 0.65, 0.70], [0.30, 0.50, 0.60, 0.60, 0.60, 0.80]  # one configuration, 2 seeds
    b3, d6 = [0.50, 0.60, 0.70, 0.80, 0.85, 0.90], [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]
    rows = [_row(_config(1e-4, 0.5), 0, a0, 0.55, 60.0, 0.0), _row(_config(1e-4, 0.5), 1, a1, 0.65, 72.0, 0.0),
            _row(_config(3e-4, 1.0, 3), 0, b3, 0.85, 120.0, 30.0),
            _row(_config(3e-4, 1.0, 6), 0, d6, 0.35, 100.0, 40.0)]
    table = tmp_path / "table-0.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    surrogate = Surrogate.fit(load_records([table]))
    # Fully grown trees without bootstrap: every tree sees every run and splits until each leaf holds one
    # configuration, so at a recorded configuration each of the 200 trees returns its recorded curve (the mean of
    # its seeds) and test F1; 1e-12 leaves room only for the rounding of averaging the trees.
    a = (np.array(a0) + np.array(a1)) / 2
    for config, curve, test in [(_config(1e-4, 0.5), a, 0.60), (_config(3e-4, 1.0, 3), b3, 0.85),
                                (_config(3e-4, 1.0, 6), d6, 0.35)]:
        assert surrogate.curve(config) == pytest.approx(curve, abs=1e-12)
        assert surrogate.test_f1(config) == pytest.approx(test, abs=1e-12)
    # between them a tree ensemble averages recorded values: never outside what some run reached at that evaluation
    between = surrogate.curve(_config(2e-4, 0.7, 4))
    assert np.all(between >= d6) and np.all(between <= b3)
    # the seed noise, from A's two seeds: |a − b| / 2 per evaluation; a draw is the curve plus that noise
    assert surrogate.noise == pytest.approx([0.05, 0.05, 0.05, 0.0, 0.025, 0.05])
    noise = np.random.default_rng(7).normal(0.0, [0.05, 0.05, 0.05, 0.0, 0.025, 0.05])
    assert surrogate.draw(_config(1e-4, 0.5), np.random.default_rng(7)) == pytest.approx(a + noise, abs=1e-12)
    # The clock from the same table (costs.from_records): a segment is (wall − build) / 6 evaluations, the median
    # over runs; A's seeds 60 / 6 = 10 and 72 / 6 = 12 -> 11 s; (120 − 30) / 6 = 15 s at depth 3 and
    # (100 − 40) / 6 = 10 s at depth 6 target only; depth 0 never ran target only: its transfer cost stands in.
    costs = clock.from_records([table])
    assert costs == Costs(transfer={0: 11.0}, target_only={3: 15.0, 6: 10.0, 0: 11.0}, build={3: 30.0, 6: 40.0})


def test_events_run_in_time_order_across_workers_and_pruned_trials_free_their_worker():
    # Two workers; a trial reporting below 0.35 is stopped there (Optuna's ThresholdPruner).
    search = _queued([D, A, B, C], optuna.pruners.ThresholdPruner(lower=0.35))
    out = replay(Table(), COSTS, search, seed=0, workers=2, budget_s=1000, target=TARGET)
    # By hand: D (15 s segments) and A (10 s) start at 0. A reports 0.20 at 10 s: pruned, B starts on its worker
    # (reports at 25, 40, ...). D reports 0.10 at 15 s: pruned, C starts (25, 35, 45, 55). At 25 s B reports
    # first (its event was queued first): 0.30, pruned; no trial is left to start. C runs to the end: 0.70.
    trials = search.study.trials
    assert [t.user_attrs["config"] for t in trials] == [D, A, B, C]
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED", "PRUNED", "COMPLETE"]
    assert [max(t.intermediate_values) for t in trials] == [1, 1, 1, 4]
    assert out.trace == [(10.0, 0.20), (25.0, 0.30), (25.0, 0.50), (35.0, 0.60), (45.0, 0.65), (55.0, 0.70)]
    assert out.time_to_target == math.inf and out.chosen == C and out.test_f1 == 0.68 and out.trials == 4


@pytest.mark.parametrize(("workers", "trace"), [
    # One worker: A at depth 3 first builds depth 3 (30 s), then reports at 40..70; C reuses depth 3 (70..110);
    # B at depth 6 builds it from 110 on top of depth 3's entry (the 50 s from the input less depth 3's 30 s),
    # reports at 145, 160, 175 and 0.90 at 190 s.
    (1, [(40.0, 0.20), (50.0, 0.40), (60.0, 0.50), (70.0, 0.60), (100.0, 0.65), (110.0, 0.70), (190.0, 0.90)]),
    # Two workers: C starts with A but waits for A's build of depth 3 (one entry, built once, under a lock), so
    # both report at 40..70; B then starts at 70, builds depth 6 from depth 3 until 90 and reaches 0.90 at
    # 90 + 4 × 15 = 150 s: 40 s sooner than one worker, the length of C's run, which now overlaps A's.
    (2, [(40.0, 0.20), (40.0, 0.50), (50.0, 0.60), (60.0, 0.65), (70.0, 0.70), (150.0, 0.90)]),
])
def test_each_depth_is_built_once_and_a_second_worker_overlaps_the_runs(workers, trace):
    a3, c3, b6 = {**A, "freeze_depth": 3}, {**C, "freeze_depth": 3}, {**B, "freeze_depth": 6}
    search = _queued([a3, c3, b6], optuna.pruners.NopPruner())
    out = replay(Table(), COSTS, search, seed=0, workers=workers, budget_s=1000, target=TARGET)
    assert out.trace == trace and out.time_to_target == trace[-1][0]
    assert out.chosen == b6 and out.test_f1 == 0.85 and out.trials == 3


def test_the_strategy_that_searches_the_good_region_reaches_the_target_first():
    # Only the target alone reaches the target (B's curve at λ = 1, C's at any λ < 1); no builds.
    curves = Region(lambda config: config["target_weight"] == 1.0)
    out = {name: run_strategy(name, curves, NO_BUILD, 2, workers=1, budget_s=1500, target=TARGET)
           for name in ("hyperparameter_search-style", "grid", "random", "asha", "one-epoch-top-k")}
    # hyperparameter_search-style searches the learning rate at λ = 1: its first trial reaches 0.90 at its 4th
    # evaluation, 4 × 15 = 60 s, the least possible.
    assert out["hyperparameter_search-style"].time_to_target == 60.0
    # The grid runs its points in a seeded random order, a third of them at λ = 1: each point before its first
    # λ = 1 point runs to the end, 4 × 10 s, then 60 s more.
    search = grid(2)
    again = replay(curves, NO_BUILD, search, seed=2, workers=1, budget_s=1500, target=TARGET)
    lambdas = [t.params["target_weight"] for t in search.study.trials]
    before = lambdas.index(1.0)
    assert before > 0 and set(lambdas[:before]) <= {0.3, 0.65}  # (this seed's order starts away from λ = 1)
    assert out["grid"].time_to_target == again.time_to_target == 40.0 * before + 60.0
    # Random search, ASHA and one epoch then the top k sample λ from a continuum: never exactly 1, never there.
    for name in ("random", "asha", "one-epoch-top-k"):
        assert out[name].time_to_target == math.inf and out[name].test_f1 == 0.68
    ranked = sorted(out, key=lambda name: out[name].time_to_target)
    assert ranked[:2] == ["hyperparameter_search-style", "grid"]
    # The first searches the learning rate alone (TPE; median pruning stops none: every curve is B's), so it
    # picks a configuration at λ = 1.
    hf = hf_style(2)
    replay(curves, NO_BUILD, hf, seed=2, workers=1, budget_s=1500, target=TARGET)
    # 1500 s / 60 s = 25 trials run to the end; the 26th starts at 1500 s, the budget's end, and is left running
    assert [t.state.name for t in hf.study.trials] == ["COMPLETE"] * 25 + ["RUNNING"]
    assert all({k: v for k, v in t.user_attrs["config"].items() if k != "learning_rate"} == HF_FIXED
               for t in hf.study.trials)
    assert len({t.params["learning_rate"] for t in hf.study.trials}) == 26
    assert out["hyperparameter_search-style"].chosen == hf.study.trials[0].user_attrs["config"]  # ties: the first
    assert out["hyperparameter_search-style"].test_f1 == 0.85


@pytest.mark.parametrize(("workers", "top_k_s"), [
    (1, 560.0),  # 27 first epochs of 2 × 10 s = 540 s, then the first of the top 3: 2 × 10 s more
    # 4 workers: 27 first epochs over 4 workers end at 7 × 20 = 140 s (three workers run 7, one 6); then 20 s more
    (4, 160.0),
])
def test_one_epoch_then_top_k_pays_for_its_first_epochs_before_any_full_run(workers, top_k_s):
    # Every configuration the same (B's curve, 10 s a segment at any λ, no builds): whoever runs a trial to the
    # end first gets there; random search does at 4 × 10 = 40 s.
    curves = Region(lambda config: True)
    flat = Costs({d: 10.0 for d in range(7)}, {d: 10.0 for d in range(7)}, {})
    random = run_strategy("random", curves, flat, 0, workers=workers, budget_s=1000, target=TARGET)
    top_k = one_epoch_top_k(curves, flat, seed=0, workers=workers, budget_s=1000, target=TARGET)
    assert random.time_to_target == 40.0 and top_k.time_to_target == top_k_s
    if workers == 1:  # trials are configurations started by 1000 s: 27, then the next batch's at 600, 620 .. 1000
        assert top_k.trials == 27 + 21


def test_one_epoch_then_top_k_waits_for_each_depth_to_be_built():
    # 27 workers: the whole first batch starts at 0. Frozen configurations (depth ≥ 1) report 0.6, 0.7, 0.8, 0.9,
    # the others 0.1 .. 0.4; every depth's build takes 100 s, 10 s a segment. By hand: each depth's first run
    # builds until 100 s and the others at that depth wait for it, so no frozen run reports before 110 s; the
    # first epochs end at 120 s, the top 3 (frozen) continue and reach 0.9 at 140 s.
    class Frozen:
        def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
            return np.array([0.6, 0.7, 0.8, 0.9] if config["freeze_depth"] else [0.1, 0.2, 0.3, 0.4])

        def test_f1(self, config: dict[str, Any]) -> float:
            return 0.85 if config["freeze_depth"] else 0.35

    costs = Costs({d: 10.0 for d in range(7)}, {d: 10.0 for d in range(7)}, {d: 100.0 for d in range(1, 7)})
    out = one_epoch_top_k(Frozen(), costs, seed=0, workers=27, budget_s=150, target=TARGET)
    assert [(at, v) for at, v in out.trace if v >= 0.6] == [(110.0, 0.6), (120.0, 0.7), (130.0, 0.8), (140.0, 0.9)]
    assert out.time_to_target == 140.0


class Rising:
    """Curves whose every report beats all before it (the n-th draw reports n × 6 + 1, + 2, ..), so the trace
    holds the time of every report."""

    def __init__(self) -> None:
        self.draws = 0

    def draw(self, config: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        self.draws += 1
        return (self.draws * 6 + np.arange(1, 7)) / 10_000

    def test_f1(self, config: dict[str, Any]) -> float:
        return 0.5


def test_the_grid_is_three_values_an_axis_run_once_each_in_one_grid_time():
    values = grid_values()
    assert values == {
        "learning_rate": [5e-5, pytest.approx(math.sqrt(5e-5 * 5e-4)), 5e-4],  # log-spaced: 1.58e-4 the middle
        "target_weight": [0.3, 0.65, 1.0], "freeze_depth": [0, 3, 6],
        "l2": [1e-7, pytest.approx(math.sqrt(1e-7 * 1e-4)), 1e-4], "l1": [1e-9, pytest.approx(math.sqrt(1e-15)), 1e-6],
        "warmup_ratio": [0.0, 0.15, 0.3],
    }
    search = grid(0)
    out = replay(Rising(), COSTS, search, seed=0, workers=1, budget_s=1e6, target=1.0)
    trials = search.study.trials
    points = {tuple(t.user_attrs["config"][a] for a in values) for t in trials}
    assert len(trials) == out.trials == 729 == len(points) and all(t.state.name == "COMPLETE" for t in trials)
    assert all(p[i] in v for p in points for i, v in enumerate(values.values()))
    # By hand, one worker: each point's 6 segments one after another, a depth's build before its first point (from
    # the deepest depth built before it: depth 6 after depth 3 costs 50 - 30 s).
    expected, now, built = [], 0.0, set()
    for trial in trials:
        depth = trial.user_attrs["config"]["freeze_depth"]
        config = trial.user_attrs["config"]
        if depth and depth not in built:
            now += COSTS.build[depth] - COSTS.build.get(max((d for d in built if d < depth), default=0), 0.0)
            built.add(depth)
        for _ in range(6):
            now += COSTS.segment(config)
            expected.append(now)
    assert [at for at, _ in out.trace] == pytest.approx(expected)


def test_the_compare_step_summarises_each_strategy_against_ours():
    def runs(name: str, times: list[float], tests: list[float | None]) -> list[Outcome]:
        return [Outcome(name, seed, t, None, f, trials=10) for seed, (t, f) in enumerate(zip(times, tests,
                                                                                             strict=True))]

    outcomes = {"default": runs("default", [100, 200, 300], [0.8, 0.9, 1.0]),
                "random": runs("random", [300, math.inf, 500], [0.7, None, 0.9])}  # seed 1 never chose one
    rows = summarise(outcomes)
    ci = float(student_t.ppf(0.975, 2)) * 0.1 / math.sqrt(3)  # the sample standard deviation of 0.8, 0.9, 1.0
    assert rows["default"]["median_s"] == 200 and rows["default"]["p90_s"] == 300 and rows["default"]["reached"] == 1
    assert rows["default"]["median_vs_ours"] == 1 and rows["default"]["test_f1"] == pytest.approx((0.9, ci))
    # random: median of 300, 500, never = 500, 2.5 times ours; its 90th percentile never; 2 of 3 seeds got there;
    # no configuration counts as test F1 0
    assert rows["random"]["median_s"] == 500 and rows["random"]["p90_s"] == math.inf
    assert rows["random"]["reached"] == pytest.approx(2 / 3) and rows["random"]["median_vs_ours"] == 2.5
    assert rows["random"]["test_f1"][0] == pytest.approx(statistics.fmean([0.7, 0.0, 0.9]))
    assert rows["random"]["test_f1_minus_ours"][0] == pytest.approx(statistics.fmean([-0.1, -0.9, -0.1]))
    written = json.loads(json.dumps(document(rows, {"held_out_runs": 0}, NO_BUILD, quality=0.99, workers=4, seeds=3,
                                             budget_s=1000.0, best=0.9, records=2, costs_source="hand"), default=str))
    assert written["quality"] == 0.99 and written["workers"] == 4 and written["target"] == pytest.approx(0.891)
    assert written["axes"] == ["learning_rate", "target_weight", "freeze_depth", "l2", "l1", "warmup_ratio"]
    assert set(written["strategies"]) == {"default", "random"}
    for row in written["strategies"].values():
        assert {"median_s", "p90_s", "reached", "median_vs_ours", "test_f1"} <= set(row)
    random = written["strategies"]["random"]
    assert random["median_vs_ours"] == 2.5 and random["p90_s"] == math.inf and random["test_f1"] == pytest.approx(
        list(rows["random"]["test_f1"]))


def test_the_benchmark_s_default_is_the_study_files_default_and_the_full_study_s_choice():
    # One source: the strategy the benchmark calls "default" is built from the study file's defaults, and the shipped
    # full study writes out exactly those, so it runs that strategy's sampler and pruner.
    from hpo.search.algorithms import make_pruner
    from hpo.spec import PrunerSpec, SamplerSpec, load_spec

    spec = load_spec(Path(__file__).parents[1] / "studies" / "r8-from-20ng.yaml")
    assert (spec.sampler, spec.pruner) == (SamplerSpec(), PrunerSpec())
    assert (spec.sampler.name, spec.sampler.n_startup_trials) == ("tpe", 10)
    search = STRATEGIES["default"]()(0)
    shipped = make_pruner(spec.pruner, EVALUATIONS)
    assert isinstance(search.study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert type(search.study.pruner) is type(shipped) and vars(search.study.pruner) == vars(shipped)
    previous = STRATEGIES["default (previous)"]()(0)
    assert isinstance(previous.study.pruner, optuna.pruners.HyperbandPruner)
