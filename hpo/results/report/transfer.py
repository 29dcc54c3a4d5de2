"""The report's transfer panel: best val F1 against λ, target-only trials (λ = 1) apart, pruned trials as open
markers at the best value they reached. Hand-written: no optuna plot separates the λ = 1 trials that transfer is
judged by."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hpo.results.report.common import (
    COLORS,
    Section,
    complete_trials,
    fixed_value,
    is_target_only,
    metric_label,
    placeholder,
)
from hpo.search.space import SOURCE
from hpo.spec.sources import NO_SOURCE

if TYPE_CHECKING:
    import optuna

__all__ = ["sources", "transfer"]


def transfer(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    import plotly.graph_objects as go

    label = metric_label(study)
    title = f"Transfer: best {label} against λ (target_weight)"
    fixed = fixed_value(study, "target_weight")
    complete = {t.number for t in complete_trials(trials)}
    points = []  # (trial, λ, target only?, its best value); pruned trials count with what they reached
    for trial in trials:
        weight = 1.0 if trial.params.get(SOURCE) == NO_SOURCE else trial.params.get("target_weight", fixed)
        value = trial.value if trial.number in complete else \
            _best_reported(study, trial) if trial.state.name == "PRUNED" else None
        if weight is None or value is None:
            continue
        points.append((trial, float(weight), is_target_only(trial) or float(weight) == 1.0, value))
    if not points:
        reason = "no complete or pruned trial with a known λ yet"
        return Section("fig-transfer", title, placeholder(reason), reason)
    figure = go.Figure()
    groups = (("transfer (λ < 1)", False, COLORS["COMPLETE"], "circle"),
              ("target only (λ = 1)", True, COLORS["target_only"], "diamond"))
    for name, only, color, symbol in groups:
        for state, suffix, fill in (("COMPLETE", "", symbol), ("PRUNED", ", pruned", f"{symbol}-open")):
            group = [(t, w, v) for t, w, o, v in points if o == only and t.state.name == state]
            if not group:
                continue
            figure.add_trace(go.Scatter(
                x=[w for _, w, _ in group], y=[v for _, _, v in group], mode="markers", name=name + suffix,
                marker={"color": color, "size": 11, "symbol": fill, "line": {"width": 1.5, "color": color}},
                text=[f"trial {t.number}" for t, _, _ in group],
                hovertemplate="%{text}<br>λ %{x:.3f}<br>" + label + " %{y:.4f}<extra>" + name + suffix +
                              "</extra>",
            ))
    transfer = [(t, w) for t, w, only, _ in points if not only and t.state.name == "COMPLETE"]
    alone = [(t, w) for t, w, only, _ in points if only and t.state.name == "COMPLETE"]
    pick = min if study.direction.name == "MINIMIZE" else max
    best_transfer = pick(transfer, key=lambda p: p[0].value, default=None)
    best_alone = pick(alone, key=lambda p: p[0].value, default=None)
    for best, color, label in ((best_transfer, COLORS["COMPLETE"], "best transfer"),
                               (best_alone, COLORS["target_only"], "best target only")):
        if best is not None:
            figure.add_hline(y=best[0].value, line={"color": color, "dash": "dash", "width": 1},
                             annotation_text=f"{label} {best[0].value:.4f}", annotation_position="top left",
                             annotation_font_color=color)
    if alone:
        figure.add_annotation(x=1.0, y=best_alone[0].value, text="target only", showarrow=True,
                              arrowhead=2, ay=-36, font={"color": COLORS["target_only"]})
    figure.add_vline(x=1.0, line={"color": COLORS["target_only"], "dash": "dot", "width": 1})
    figure.update_layout(height=480, xaxis_title="λ = target_weight (weight of the target "
                         "loss; 1 − λ weighs the source)", yaxis_title=f"best {label} of the trial",
                         xaxis_range=[-0.02, 1.05])
    note = _transfer_note(best_transfer, best_alone) + \
        f" Open markers: pruned trials, at the best {label} they reached."
    return Section("fig-transfer", title, figure, note)


def sources(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section | None:
    """Best value per candidate source task, for a study that searches its source (None for one that does not):
    which source pays, and how many trials each got (pruned ones beside the complete)."""
    import plotly.graph_objects as go

    drawn = [t for t in trials if SOURCE in t.params and t.state.name in ("COMPLETE", "PRUNED")]
    if not drawn:
        return None
    pick = min if study.direction.name == "MINIMIZE" else max
    rows = []
    for key in sorted({t.params[SOURCE] for t in drawn}):
        mine = [t for t in drawn if t.params[SOURCE] == key]
        complete = [t for t in mine if t.state.name == "COMPLETE"]
        best = pick(complete, key=lambda t: t.value, default=None)
        rows.append((key, best, len(complete), len(mine) - len(complete)))
    figure = go.Figure(go.Bar(
        x=[key for key, *_ in rows], y=[best.value if best else 0 for _, best, *_ in rows],
        text=[f"{best.value:.4f} (trial {best.number})" if best else "no complete trial" for _, best, *_ in rows],
        customdata=[[n, p] for *_, n, p in rows], marker_color=[COLORS["target_only"] if key == NO_SOURCE else
                                                               COLORS["COMPLETE"] for key, *_ in rows],
        hovertemplate="%{x}<br>best %{y:.4f}<br>%{customdata[0]} complete, %{customdata[1]} pruned<extra></extra>",
    ))
    figure.update_layout(height=380, xaxis_title="source task (none: the target alone, λ = 1)",
                         yaxis_title=f"best {metric_label(study)}",
                         yaxis_range=None if study.direction.name == "MINIMIZE" else [0, 1.02])  # a loss is unbounded
    note = "; ".join(f"{key}: " + (f"{best.value:.4f} (trial {best.number})" if best else "none complete") +
                     f", {n} complete, {p} pruned" for key, best, n, p in rows) + "."
    return Section("fig-sources", f"Source tasks: best {metric_label(study)} of each candidate", figure, note)


def _best_reported(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> float | None:
    values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(values) if values else None


def _transfer_note(best_transfer, best_alone) -> str:
    parts = []
    if best_transfer:
        trial, weight = best_transfer
        parts.append(f"best transfer: {trial.value:.4f} (trial {trial.number}, λ = {weight:.3g})")
    else:
        parts.append("no complete transfer trial (λ < 1) yet")
    if best_alone:
        parts.append(f"best target only: {best_alone[0].value:.4f} (trial {best_alone[0].number})")
    else:
        parts.append("no complete target-only trial (λ = 1) yet")
    if best_transfer and best_alone:
        parts.append(f"transfer − target only: {best_transfer[0].value - best_alone[0].value:+.4f}")
    return "; ".join(parts) + "."


