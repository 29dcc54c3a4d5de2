"""The report's table of trials: one row per drawn trial, best complete first. Hand-written: optuna draws no
table; `hpo trials NAME` prints the same facts for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo.results.report.common import Section, fmt, metric_label, placeholder, state_of, tint

if TYPE_CHECKING:
    import optuna

__all__ = ["trials_table"]


def _order(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> tuple[int, float, int]:
    """Complete trials best first, then the others by number."""
    sign = 1 if study.direction.name == "MINIMIZE" else -1
    if state_of(trial) == "COMPLETE" and trial.value is not None:
        return (0, sign * trial.value, trial.number)
    return (1, 0.0, trial.number)


def trials_table(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    import plotly.graph_objects as go

    title = "Trials"
    if not trials:
        return Section("fig-trials", title, placeholder("no trial yet"))
    rows = sorted(trials, key=lambda t: _order(study, t))
    names = list(dict.fromkeys(name for t in rows for name in t.params))
    columns: dict[str, list[str]] = {
        "trial": [str(t.number) for t in rows],
        "state": [state_of(t) for t in rows],
        metric_label(study): [_value(t) for t in rows],
        "epochs run": [fmt(t.user_attrs["epochs_run"]) if "epochs_run" in t.user_attrs else "-"
                       for t in rows],
        "minutes": [f"{t.duration.total_seconds() / 60:.1f}" if t.duration else "-" for t in rows],
        **{name: [fmt(t.params[name]) if name in t.params else "-" for t in rows] for name in names},
        "failure": [str(t.user_attrs.get("failure_reason", "")) for t in rows],
    }
    figure = go.Figure(go.Table(
        header={"values": list(columns), "align": "left", "fill_color": "#eee"},
        cells={"values": list(columns.values()), "align": "left",
               "fill_color": [[tint(state_of(t)) for t in rows]]},
        columnwidth=[1, 1.3, 1, 1, 1, *([1.2] * len(names)), 4],
    ))
    figure.update_layout(height=min(900, 120 + 28 * len(rows)), margin={"t": 10, "b": 10})
    note = (f"{len(rows)} trials, complete ones best first, then the others by number; a pruned trial's "
            f"{metric_label(study)} is the last it reported. `hpo trials NAME -f json` prints the same for scripts.")
    return Section("fig-trials", title, figure, note)


def _value(trial: optuna.trial.FrozenTrial) -> str:
    if trial.value is not None:
        return f"{trial.value:.4f}"
    if trial.intermediate_values:
        return f"{trial.intermediate_values[max(trial.intermediate_values)]:.4f} (last)"
    return "-"
