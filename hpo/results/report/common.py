"""What the report's parts share: the figure ids, colours and labels, a section, and small helpers."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.search.space import is_target_only
from hpo.train.metrics import objective_of

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

__all__ = ["COLORS", "FIGURE_IDS", "SLICE_PARAMS", "STATES", "Section", "best_trial", "complete_trials",
           "fixed_value", "fmt", "is_target_only", "metric_label", "numbers_text", "param_names", "placeholder",
           "state_of", "tint", "value_key"]

FIGURE_IDS = ("fig-history", "fig-intermediate", "fig-importance", "fig-parallel", "fig-slice", "fig-transfer",
              "fig-compute", "fig-states", "fig-trials")
SLICE_PARAMS = ("learning_rate", "target_weight", "freeze_depth", "l1", "l2")
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#9467bd",
          "WAITING": "#7f7f7f", "target_only": "#2ca02c", "saved": "#d9d9d9"}



@dataclass(frozen=True)
class Section:
    id: str
    title: str
    figure: go.Figure
    note: str = ""  # plain text, escaped when written


def state_of(trial: Any) -> str:
    """A trial's state by name, for Optuna's FrozenTrials and the storage's TrialRows alike."""
    return getattr(trial.state, "name", trial.state)


def complete_trials(trials: list[Any]) -> list[Any]:
    """The COMPLETE trials with a finite value (FrozenTrials or TrialRows)."""
    return [t for t in trials if state_of(t) == "COMPLETE" and t.value is not None and math.isfinite(t.value)]


def metric_label(study: optuna.Study) -> str:
    """What the study's values are, as the axes and notes name them: "val F1", "val loss", ..."""
    return objective_of(study.metric_names).label


def best_trial(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(complete, key=lambda t: t.value)


def param_names(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    return list(dict.fromkeys(name for t in trials for name in t.params))


def fixed_value(study: optuna.Study, name: str) -> Any:
    """A training value the study did not search, from the provenance it was created with."""
    from hpo.spec import stored_provenance

    provenance = stored_provenance(study)
    return provenance.fixed(name) if provenance is not None else None


def placeholder(text: str) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_annotation(text=html.escape(text, quote=False), x=0.5, y=0.5, xref="paper", yref="paper",
                          showarrow=False, font={"size": 16, "color": "#666"})
    figure.update_layout(height=220, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def value_key(value: Any) -> str:
    return repr(value)


def numbers_text(numbers: list[int], limit: int = 40) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", … ({len(numbers) - limit} more)" if len(numbers) > limit else "") if numbers else "-"


def tint(state: str) -> str:
    return {"COMPLETE": "#e8f1fa", "PRUNED": "#fff1e0", "FAIL": "#fbe5e5"}.get(state, "white")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)
