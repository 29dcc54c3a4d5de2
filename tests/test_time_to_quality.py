"""The search replay (benchmarks/time_to_quality) on a hand-made table of 4 configurations: each strategy makes
the choices worked out by hand (which configurations, in which order, stopped where), and its time to quality is
the hand computation."""

from __future__ import annotations

import math

import pytest

from benchmarks.time_to_quality.replay import ReuseCost, Search, Table, replay
from benchmarks.time_to_quality.strategies import grid, hf_style, one_epoch_top_k, project_default, run_strategy

# Four configurations (learning rate x λ; nothing frozen, no penalty), one seed each: (val F1, seconds) per step.
CURVES = {
    (1e-4, 0.5): ([0.20, 0.40, 0.50, 0.60], [10, 20, 30, 40], 0.55),
    (1e-4, 1.0): ([0.30, 0.50, 0.70, 0.90], [15, 30, 45, 60], 0.85),  # the best: 0.90 at 60 s of its run
    (3e-4, 0.5): ([0.50, 0.60, 0.65, 0.70], [10, 20, 30, 40], 0.68),
    (3e-4, 1.0): ([0.10, 0.20, 0.30, 0.40], [10, 20, 30, 40], 0.35),
}
A, B, C, D = ((lr, lam, 0.0, 0.0) for lr, lam in CURVES)
TARGET = 0.99 * 0.90


def _table(freeze_depth: int) -> Table:
    return Table.from_records([
        {"params": {"learning_rate": lr, "target_weight": lam, "freeze_depth": freeze_depth, "l2": 0.0}, "seed": 0,
         "test_f1": test, "curve": [{"val_f1": v, "wall_s": t} for v, t in zip(values, times, strict=True)]}
        for (lr, lam), (values, times, test) in CURVES.items()])


@pytest.fixture(scope="module")
def table() -> Table:
    return _table(0)


def _steps(config) -> tuple[list[float], list[float]]:
    values, times, _ = CURVES[config[:2]]
    return values, times


def _by_hand(trials) -> float:
    """One worker: trials run one after another, each for the time of the last step it reported; the target is
    reached at the first report at or above it."""
    clock = 0.0
    for trial in trials:
        values, times = _steps(tuple(trial.user_attrs["config"]))
        last = max(trial.intermediate_values)
        hit = next((i for i in range(last) if values[i] >= TARGET), None)
        if hit is not None:
            return clock + times[hit]
        clock += times[last - 1]
    return math.inf


def _queued(table: Table, order, pruner) -> Search:
    """A study that runs `order` as queued trials (the propose step reads the queued values)."""
    import optuna

    from benchmarks.time_to_quality.strategies import _every_axis

    study = optuna.create_study(direction="maximize", pruner=pruner)
    for config in order:
        study.enqueue_trial(dict(zip(("learning_rate", "target_weight", "freeze_depth", "l2"), config, strict=True)))
    return Search(study, _every_axis(table), limit=len(order))


def test_events_run_in_time_order_across_workers_and_pruned_trials_free_their_worker(table):
    import optuna

    # Two workers; a trial whose value at a step is below 0.35 stops there.
    search = _queued(table, [D, A, B, C], optuna.pruners.ThresholdPruner(lower=0.35))
    out = replay(table, search, seed=0, workers=2, budget_s=1000, target=TARGET)
    trials = search.study.trials
    # By hand: D (worker 1) reports 0.10 at 10 s: pruned; A (worker 2) reports 0.20 at 10 s: pruned. B starts at
    # 10 s on worker 1 (events at the same time: D's first, it was asked first), C at 10 s on worker 2.
    # B: 0.30 at 25 s -> pruned. C runs to the end: 0.50 at 20, 0.60 at 30, 0.65 at 40, 0.70 at 50 s.
    assert [tuple(t.user_attrs["config"]) for t in trials] == [D, A, B, C]
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED", "PRUNED", "COMPLETE"]
    assert [max(t.intermediate_values) for t in trials] == [1, 1, 1, 4]
    assert out.trace == [(10.0, 0.10), (10.0, 0.20), (20.0, 0.50), (30.0, 0.60), (40.0, 0.65), (50.0, 0.70)]
    assert out.time_to_target == math.inf and out.chosen == C and out.test_f1 == 0.68


def test_grid_runs_every_configuration_once_to_the_end(table):
    out = run_strategy("grid", table, 3, workers=1, budget_s=10_000, target=TARGET, reuse=None)
    search = grid(table, 3)
    again = replay(table, search, seed=3, workers=1, budget_s=10_000, target=TARGET)
    order = [tuple(t.user_attrs["config"]) for t in search.study.trials]
    assert sorted(order) == sorted([A, B, C, D]) and all(t.state.name == "COMPLETE" for t in search.study.trials)
    # one worker: the full runs before B, then B's 60 s
    before = order[: order.index(B)]
    assert again.time_to_target == sum(_steps(c)[1][-1] for c in before) + 60 == _by_hand(search.study.trials)
    assert out.time_to_target == again.time_to_target and out.chosen == B and out.test_f1 == 0.85


@pytest.mark.parametrize(("k", "workers", "reached", "chosen"), [
    # 4 workers: every first epoch (2 steps) in parallel, done at 30 s (B's second step); then the top k by F1 at
    # step 2 (C 0.60, B 0.50, A 0.40, D 0.20) continue: with k = 2, B reports 0.90 at 30 + (60 - 30) = 60 s.
    (2, 4, 60.0, B),
    (1, 4, math.inf, C),  # only C continues: 0.70 at best
])
def test_one_epoch_then_top_k(table, k, workers, reached, chosen):
    out = one_epoch_top_k(table, k, seed=0, workers=workers, budget_s=1000, target=TARGET)
    assert out.time_to_target == reached and out.chosen == chosen


def test_one_epoch_top_k_on_one_worker_adds_the_first_epochs_up(table):
    # One worker: 20 + 30 + 20 + 20 = 90 s of first epochs, then C (20 s more), then B: 90 + 20 + 30 = 140 s,
    # in whatever seeded order phase 1 ran (its sum does not depend on it) and C before B (C ranks first).
    out = one_epoch_top_k(table, 2, seed=5, workers=1, budget_s=1000, target=TARGET)
    assert out.time_to_target == 140.0 and out.chosen == B


def test_hyperparameter_search_style_only_tries_the_learning_rate(table):
    search = hf_style(table, 1)
    out = replay(table, search, seed=1, workers=1, budget_s=400, target=TARGET)
    configs = [tuple(t.user_attrs["config"]) for t in search.study.trials]
    assert set(configs) <= {B, D}  # λ = 1, nothing else searched
    assert B in configs and out.time_to_target == _by_hand(search.study.trials)
    # Optuna's median pruner: nothing is pruned before 5 trials have finished; B, better than D at every step,
    # never is; D is once enough B runs finished
    pruned = [t for t in search.study.trials if t.state.name == "PRUNED"]
    assert all(tuple(t.user_attrs["config"]) == D and t.number >= 5 for t in pruned)


def test_the_project_default_keeps_its_target_only_share_and_prunes_by_hyperband(table):
    search = project_default(table, 0)
    out = replay(table, search, seed=0, workers=1, budget_s=600, target=TARGET)
    trials = search.study.trials
    # a quarter of the trials target only, at every point of the study
    target_only = [t.params["target_weight"] == 1.0 for t in trials]
    assert all(sum(target_only[:m]) >= math.floor(0.25 * m) for m in range(1, len(trials) + 1))
    assert any(t.state.name == "PRUNED" for t in trials)  # Hyperband stops some
    assert out.time_to_target == _by_hand(trials) < math.inf


def test_reuse_scales_the_time_of_trials_at_a_reused_depth():
    import optuna

    table = _table(3)  # the same curves, recorded at freeze depth 3
    cost = ReuseCost(warm={3: 0.5}, first={3: 0.75})
    b = (B[0], B[1], 3.0, 0.0)
    search = _queued(table, [b, b], optuna.pruners.NopPruner())
    out = replay(table, search, seed=0, workers=1, budget_s=1000, target=TARGET, reuse=cost)
    # first B builds the states (0.75 × 60 s), the second reuses them (0.5 × 60 s)
    assert out.time_to_target == pytest.approx(45.0)
    assert out.trace[-1] == (45.0, 0.9)
