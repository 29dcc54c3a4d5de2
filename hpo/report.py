"""`hpo report`: one self-contained HTML file of plotly figures for a study.

The file works offline: plotly.js is embedded once, with the first figure; every other figure reuses it. The
report reads the study only through the `optuna.Study` API, so it is the same on SQLite and PostgreSQL, and it
never shows the storage URL. plotly and optuna are imported inside the functions, so importing this module
(and so the CLI) stays fast.

Figures, each in its own `<div>` with a stable id (the plotly graph div itself, so `document.getElementById(id)
.data` is the figure's traces in the browser):

| id | what | drawn by |
|---|---|---|
| `fig-history` | objective value of every trial and the best so far | `optuna.visualization` |
| `fig-intermediate` | val F1 at every evaluation, one trace per trial; pruned trials dotted, × where pruned | here |
| `fig-importance` | fANOVA parameter importances, or why they cannot be computed | `optuna.visualization` |
| `fig-parallel` | parallel coordinates of the complete trials | `optuna.visualization` |
| `fig-slice` | val F1 against learning_rate, λ, freeze_depth, l1, l2 (those searched) | `optuna.visualization` |
| `fig-transfer` | best val F1 against λ; target-only trials (λ = 1) apart; best transfer vs best target only | here |
| `fig-compute` | epochs run per trial and the epochs pruning saved | here |
| `fig-states` | trial states and retried trials, as a table | here |

At the end of the page a small script waits until every figure has drawn its SVG and writes, into
`<pre id="render-check">`, a JSON object {figure id: {"traces": n, "svg": true, "tables": [cells…]}}: what a
browser test (or a person in the devtools) reads to see that the page rendered.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

__all__ = ["FIGURE_IDS", "SLICE_PARAMS", "ComputeSummary", "RetryChain", "compute_summary", "report_study",
           "retry_chains", "write_report"]

FIGURE_IDS = ("fig-history", "fig-intermediate", "fig-importance", "fig-parallel", "fig-slice", "fig-transfer",
              "fig-compute", "fig-states")
SLICE_PARAMS = ("learning_rate", "source_weight", "freeze_depth", "l1", "l2")
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e", "FAIL": "#d62728", "RUNNING": "#9467bd",
          "WAITING": "#7f7f7f", "target_only": "#2ca02c", "saved": "#d9d9d9"}
METRIC_LABEL = "val F1"


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    figure: go.Figure
    note: str = ""  # plain text, escaped when written


def report_study(name: str, path: Path, storage: str | None = None) -> str:
    """`hpo report NAME -o PATH`: load the study from the resolved storage, write its report, say what was written."""
    from hpo.storage import load_study

    study, _ = load_study(name, storage)
    figures = write_report(study, path)
    trials = len(study.get_trials(deepcopy=False))
    return f"wrote {path}: {len(figures)} figures for study {name!r} ({trials} trials)"


def write_report(study: optuna.Study, path: Path) -> list[str]:
    """Write the study's report to `path` (one HTML file, plotly.js inside); returns the figure ids written."""
    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's experimental and empty-study warnings; the figures say it
        sections = [
            _history(study, trials),
            _intermediate(trials),
            _importance(study, trials),
            _parallel(study, trials),
            _slice(study, trials),
            _transfer(study, trials),
            _compute(study, trials),
            _states(trials),
        ]
    from hpo.files import write_output

    write_output(Path(path), _page(study, trials, sections))
    return [section.id for section in sections]


# -- the page -------------------------------------------------------------------------------------------------


def _page(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], sections: list[Section]) -> str:
    config = {"displaylogo": False, "responsive": True}
    parts = []
    for index, section in enumerate(sections):
        section.figure.update_layout(template="plotly_white")  # optuna's figures and ours alike
        if section.figure.layout.margin.t is None:
            section.figure.update_layout(margin_t=30)
        graph = section.figure.to_html(
            full_html=False, include_plotlyjs=index == 0, div_id=section.id, config=config,
            default_height=f"{section.figure.layout.height or 450}px",
        )
        note = f'<p class="note" id="{section.id}-note">{html.escape(section.note)}</p>' if section.note else ""
        parts.append(f'<section id="{section.id}-section">\n<h2>{html.escape(section.title)}</h2>\n{note}\n'
                     f"{graph}\n</section>")
    nav = " · ".join(f'<a href="#{s.id}-section">{html.escape(s.title)}</a>' for s in sections)
    ids = json.dumps([s.id for s in sections])
    name = html.escape(study.study_name)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hpo report: {name}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1300px;
       padding: 0 16px; color: #222; }}
h1 {{ margin-bottom: 4px; }}
h2 {{ margin: 32px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }}
.summary {{ margin: 4px 0; }}
.note {{ color: #444; margin: 4px 0 8px; }}
nav {{ font-size: 90%; margin-top: 12px; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 12px 0; }}
dt {{ color: #666; }} dd {{ margin: 0; }}
</style>
</head>
<body>
<header>
<h1>study {name}</h1>
{_summary(study, trials)}
<nav>{nav}</nav>
</header>
{chr(10).join(parts)}
<pre id="render-check" hidden></pre>
<script>
(function () {{
  var ids = {ids};
  var started = Date.now();
  function graph(id) {{ return document.getElementById(id); }}
  function hasSvg(id) {{ var gd = graph(id); return !!(gd && gd.querySelector("svg.main-svg")); }}
  function drawn() {{ return ids.every(hasSvg); }}
  function write() {{
    var out = {{}};
    ids.forEach(function (id) {{
      var gd = graph(id), data = (gd && gd.data) || [];
      var entry = {{traces: data.length, svg: hasSvg(id)}};
      var tables = data.filter(function (t) {{ return t.type === "table"; }})
                       .map(function (t) {{ return t.cells.values; }});
      if (tables.length) {{ entry.tables = tables; }}
      out[id] = entry;
    }});
    document.getElementById("render-check").textContent = JSON.stringify(out);
  }}
  function poll() {{ if (drawn() || Date.now() - started > 8000) {{ write(); }} else {{ setTimeout(poll, 50); }} }}
  poll();
}})();
</script>
</body>
</html>
"""


def _summary(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> str:
    """Storage-free facts about the study: best value, trial counts, budget, when it was created."""
    counts = Counter(t.state.name for t in trials)
    complete = _complete(trials)
    rows: list[tuple[str, str]] = []
    if complete:
        best = _best(study, complete)
        params = ", ".join(f"{k} = {_fmt(v)}" for k, v in best.params.items())
        rows.append((f"best {METRIC_LABEL}", f'<b id="best-value">{best.value:.4f}</b> (trial {best.number}'
                     f"{', evaluation ' + str(best.user_attrs['best_step']) if 'best_step' in best.user_attrs else ''})"
                     f"<br>{html.escape(params)}"))
    else:
        rows.append((f"best {METRIC_LABEL}", '<span id="best-value">no complete trial yet</span>'))
    states = ", ".join(f'<span data-state="{s}">{counts.get(s, 0)}</span> {s.lower()}' for s in STATES)
    rows.append(("trials", f'<span id="trial-count">{len(trials)}</span>: {states}'))
    budget = study.user_attrs.get("n_trials")
    used = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    rows.append(("budget", f"{used} / {budget} (complete + pruned)" if budget else f"{used} (no trial budget)"))
    rows.append(("direction", html.escape(study.direction.name.lower())))
    provenance = study.user_attrs.get("provenance") or {}
    if provenance.get("created_at"):
        rows.append(("created", html.escape(str(provenance["created_at"]))))
    model = (provenance.get("model") or {}).get("id")
    if model:
        rows.append(("model", html.escape(str(model))))
    rows.append(("report written", datetime.now(UTC).isoformat(timespec="seconds")))
    items = "\n".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<dl class="summary" id="summary">\n{items}\n</dl>'


# -- the figures ----------------------------------------------------------------------------------------------


def _history(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Optimisation history"
    if not _complete(trials):
        return Section("fig-history", title, _placeholder("no complete trial yet"))
    from optuna.visualization import plot_optimization_history

    figure = plot_optimization_history(study, target_name=METRIC_LABEL)
    figure.update_layout(title=None, height=450, yaxis_title=METRIC_LABEL)
    return Section("fig-history", title, figure, "The best validation F1 of each complete trial, and the best so far.")


def _intermediate(trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: optuna's plot_intermediate_values draws every trial alike; here a pruned trial is dotted and
    # marked with a × at the evaluation where it was stopped. One trace per trial that reported a value, so a
    # trace count in the browser equals the number of such trials.
    import plotly.graph_objects as go

    figure = go.Figure()
    shown = [t for t in trials if t.intermediate_values]
    for trial in shown:
        state = trial.state.name
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        pruned = state == "PRUNED"
        color = COLORS["target_only"] if _target_only(trial) and state == "COMPLETE" else COLORS.get(state, "#333")
        sizes = [5] * len(steps)
        symbols = ["circle"] * len(steps)
        if pruned:
            sizes[-1], symbols[-1] = 13, "x"
        label = f"trial {trial.number} " + (f"(pruned at {steps[-1]})" if pruned else f"({state.lower()})")
        if _target_only(trial):
            label += ", target only"
        figure.add_trace(go.Scatter(
            x=steps, y=values, mode="lines+markers", name=label, legendgroup=state,
            legendgrouptitle_text=state.lower(), opacity=0.6 if pruned else 0.9,
            line={"color": color, "dash": "dot" if pruned else "solid", "width": 1.5 if pruned else 2},
            marker={"size": sizes, "symbol": symbols, "color": color},
            hovertemplate=f"trial {trial.number} ({state.lower()})<br>evaluation %{{x}}<br>"
                          f"{METRIC_LABEL} %{{y:.4f}}<extra></extra>",
        ))
    if not shown:
        return Section("fig-intermediate", "Validation F1 at every evaluation", _placeholder("no trial has reported"))
    figure.update_layout(height=500, xaxis_title="evaluation (step reported to the pruner)",
                         yaxis_title=METRIC_LABEL, legend={"groupclick": "toggleitem"})
    figure.update_xaxes(tickmode="linear", dtick=1)
    pruned = sum(t.state.name == "PRUNED" for t in shown)
    note = (f"{len(shown)} trials reported; {pruned} were pruned (dotted, × at the evaluation where the pruner "
            "stopped them). Green: complete target-only trials (λ = 1).")
    return Section("fig-intermediate", "Validation F1 at every evaluation", figure, note)


def _importance(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Parameter importances"
    complete = _complete(trials)
    reason = None
    if len(complete) < 2:
        reason = f"Parameter importances need at least 2 complete trials; the study has {len(complete)}."
    elif not any(len({_key(t.params.get(name)) for t in complete}) > 1 for name in _param_names(complete)):
        reason = "No parameter varies across the complete trials, so there is nothing to attribute."
    elif len({t.value for t in complete}) < 2:
        reason = f"Every complete trial has the same {METRIC_LABEL} ({complete[0].value:.4f}); nothing to attribute."
    if reason is None:
        from optuna.importance import FanovaImportanceEvaluator
        from optuna.visualization import plot_param_importances

        try:
            figure = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                            target_name=METRIC_LABEL)
        except Exception as exc:  # an evaluator failing on odd data: the report still gets written
            reason = f"Parameter importances could not be computed: {type(exc).__name__}: {exc}"
        else:
            figure.update_layout(title=None, height=max(300, 60 + 45 * len(figure.data[0].y or [])))
            return Section("fig-importance", title, figure,
                           f"fANOVA importance of each parameter for {METRIC_LABEL}, over {len(complete)} "
                           "complete trials (pruned trials are not counted).")
    return Section("fig-importance", title, _placeholder(reason), reason)


def _parallel(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Parallel coordinates"
    if not _complete(trials):
        return Section("fig-parallel", title, _placeholder("no complete trial yet"))
    from optuna.visualization import plot_parallel_coordinate

    figure = plot_parallel_coordinate(study, target_name=METRIC_LABEL)
    figure.update_layout(title=None, height=480)
    return Section("fig-parallel", title, figure, "Every complete trial as one line through its parameters.")


def _slice(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Slices: " + METRIC_LABEL + " against each parameter"
    present = [p for p in SLICE_PARAMS if p in _param_names(_complete(trials))]
    if not present:
        reason = f"none of {', '.join(SLICE_PARAMS)} is searched in a complete trial"
        return Section("fig-slice", title, _placeholder(reason), reason)
    from optuna.visualization import plot_slice

    figure = plot_slice(study, params=present, target_name=METRIC_LABEL)
    figure.update_layout(title=None, height=420, width=None)
    return Section("fig-slice", title, figure, f"Complete trials, against {', '.join(present)}; colour: trial number.")


def _transfer(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: no optuna plot separates the λ = 1 (target only) trials, the baseline transfer is judged by.
    import plotly.graph_objects as go

    title = "Transfer: best val F1 against λ (source_weight)"
    fixed = _fixed(study, "source_weight")
    complete = {t.number for t in _complete(trials)}
    points = []  # (trial, λ, target only?, its best val F1); pruned trials count with what they reached
    for trial in trials:
        weight = trial.params.get("source_weight", fixed)
        value = trial.value if trial.number in complete else \
            _best_reported(trial) if trial.state.name == "PRUNED" else None
        if weight is None or value is None:
            continue
        points.append((trial, float(weight), _target_only(trial) or float(weight) == 1.0, value))
    if not points:
        reason = "no complete or pruned trial with a known λ yet"
        return Section("fig-transfer", title, _placeholder(reason), reason)
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
                hovertemplate="%{text}<br>λ %{x:.3f}<br>" + METRIC_LABEL + " %{y:.4f}<extra>" + name + suffix +
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
    figure.update_layout(height=480, xaxis_title="λ = source_weight (weight of the target "
                         "loss; 1 − λ weighs the source)", yaxis_title=f"best {METRIC_LABEL} of the trial",
                         xaxis_range=[-0.02, 1.05])
    note = _transfer_note(best_transfer, best_alone) + " Open markers: pruned trials, at the best val F1 they reached."
    return Section("fig-transfer", title, figure, note)


def _best_reported(trial: optuna.trial.FrozenTrial) -> float | None:
    values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    return max(values) if values else None


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


def _compute(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: optuna has no plot of compute; this one weighs the epochs run against an unpruned search.
    import plotly.graph_objects as go

    title = "Compute: epochs run and what pruning saved"
    summary = compute_summary(study, trials)
    if not summary.trials:
        return Section("fig-compute", title, _placeholder("no finished trial yet"))
    numbers = [row.number for row in summary.trials]
    figure = go.Figure([
        go.Bar(x=numbers, y=[row.run for row in summary.trials], name="epochs run",
               marker_color=[COLORS[row.state] for row in summary.trials],
               customdata=[row.state.lower() for row in summary.trials],
               hovertemplate="trial %{x} (%{customdata})<br>%{y:.2f} epochs run<extra></extra>"),
        go.Bar(x=numbers, y=[row.saved for row in summary.trials], name="saved by pruning",
               marker_color=COLORS["saved"], marker_pattern_shape="/",
               hovertemplate="trial %{x}<br>%{y:.2f} epochs not run<extra></extra>"),
    ])
    figure.update_layout(barmode="stack", height=420, xaxis_title="trial",
                         yaxis_title="epochs")
    figure.update_xaxes(tickmode="linear", dtick=1 if len(numbers) <= 40 else None)
    note = (f"{summary.headline()} Without pruning, each complete or pruned trial would have run its full epochs; "
            "a failed trial counts what it ran in both (it would have failed the same way).")
    return Section("fig-compute", title, figure, note)


def _states(trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: a table, which optuna does not draw.
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    counts = Counter(t.state.name for t in trials)
    numbers = {s: [t.number for t in trials if t.state.name == s] for s in STATES}
    chains = retry_chains(trials)
    figure = make_subplots(rows=2, cols=1, specs=[[{"type": "table"}], [{"type": "table"}]],
                           row_heights=[0.55, 0.45], vertical_spacing=0.06,
                           subplot_titles=("trial states", "retried trials"))
    figure.add_trace(go.Table(
        header={"values": ["state", "trials", "trial numbers"], "align": "left", "fill_color": "#eee"},
        cells={"values": [list(STATES), [counts.get(s, 0) for s in STATES], [_numbers(numbers[s]) for s in STATES]],
               "align": "left", "fill_color": [[_tint(s) for s in STATES]]},
        columnwidth=[1, 1, 6],
    ), row=1, col=1)
    if chains:
        cells = [[c.first for c in chains], [len(c.attempts) for c in chains],
                 [" → ".join(str(n) for n in c.attempts) for c in chains], [c.final_state for c in chains],
                 [c.reason for c in chains]]
    else:
        cells = [["-"], [0], ["no trial was retried"], ["-"], ["-"]]
    figure.add_trace(go.Table(
        header={"values": ["first trial", "attempts", "trial numbers", "last state", "reason"], "align": "left",
                "fill_color": "#eee"},
        cells={"values": cells, "align": "left"}, columnwidth=[1, 1, 3, 1, 4],
    ), row=2, col=1)
    figure.update_layout(height=460, margin={"t": 40, "b": 10})
    total = sum(counts.values())
    note = (f"{total} trials; {len(chains)} retried (a retry is a new trial with the same parameters, linked by "
            "its user attribute retry_of).")
    return Section("fig-states", "Trial states and retries", figure, note)


# -- compute arithmetic ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialCompute:
    number: int
    state: str
    run: float  # epochs of target data the trial saw
    full: float  # epochs it would have seen without pruning

    @property
    def saved(self) -> float:
        return max(0.0, self.full - self.run)


@dataclass(frozen=True)
class ComputeSummary:
    """Epochs run against the epochs a search without pruning would have run, over the finished trials.

    A COMPLETE or PRUNED trial would have run its full epochs (its `epochs` parameter when searched, else the
    study's training epochs from its provenance, else the most epochs any trial ran). A FAIL counts the epochs it
    ran on both sides: it would have failed the same way without pruning. RUNNING and WAITING trials are left out.
    """

    trials: list[TrialCompute] = field(default_factory=list)

    @property
    def epochs_run(self) -> float:
        return sum(row.run for row in self.trials)

    @property
    def epochs_without_pruning(self) -> float:
        return sum(row.full for row in self.trials)

    @property
    def epochs_saved(self) -> float:
        return self.epochs_without_pruning - self.epochs_run

    @property
    def share_run(self) -> float:
        return self.epochs_run / self.epochs_without_pruning if self.epochs_without_pruning else 1.0

    def headline(self) -> str:
        if not self.epochs_without_pruning:
            return "No finished trial recorded the epochs it ran."
        return (f"{_fmt(self.epochs_run)} of {_fmt(self.epochs_without_pruning)} epochs run "
                f"({self.share_run:.0%}); pruning saved {_fmt(self.epochs_saved)} epochs.")


def compute_summary(study: optuna.Study, trials: list[optuna.trial.FrozenTrial] | None = None) -> ComputeSummary:
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    fixed = _fixed(study, "epochs")
    seen = max((_epochs_run(t, None) for t in finished), default=0.0)
    default_full = float(fixed) if fixed is not None else seen
    rows = []
    for trial in finished:
        full = float(trial.params["epochs"]) if "epochs" in trial.params else default_full
        run = _epochs_run(trial, full)
        rows.append(TrialCompute(trial.number, trial.state.name, run, run if trial.state.name == "FAIL" else full))
    return ComputeSummary(rows)


def _epochs_run(trial: optuna.trial.FrozenTrial, full: float | None) -> float:
    """`epochs_completed`; else the last row of `f1_curve`; else a COMPLETE trial ran them all."""
    if "epochs_completed" in trial.user_attrs:
        return float(trial.user_attrs["epochs_completed"])
    curve = trial.user_attrs.get("f1_curve")
    if curve:
        return float(curve[-1][1])
    return float(full) if full is not None and trial.state.name == "COMPLETE" else 0.0


# -- retries --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryChain:
    first: int  # the trial that was retried
    attempts: list[int]  # trial numbers, the first included, in order
    final_state: str
    reason: str


def retry_chains(trials: list[optuna.trial.FrozenTrial]) -> list[RetryChain]:
    """Trials linked by `retry_of` (a retry names the trial it retries), grouped by the first attempt."""
    by_number = {t.number: t for t in trials}

    def root(trial: optuna.trial.FrozenTrial) -> int:
        if "retry_root" in trial.user_attrs:
            return int(trial.user_attrs["retry_root"])
        seen = {trial.number}
        while "retry_of" in trial.user_attrs and int(trial.user_attrs["retry_of"]) in by_number:
            trial = by_number[int(trial.user_attrs["retry_of"])]
            if trial.number in seen:
                break
            seen.add(trial.number)
        return trial.number

    groups: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        if "retry_of" in trial.user_attrs:
            groups.setdefault(root(trial), []).append(trial)
    chains = []
    for first, retries in sorted(groups.items()):
        attempts = sorted({first, *(t.number for t in retries)})
        last = by_number.get(attempts[-1])
        chains.append(RetryChain(first, attempts, last.state.name if last else "?", _reasons(retries)))
    return chains


def _reasons(retries: list[optuna.trial.FrozenTrial]) -> str:
    reasons = [str(t.user_attrs["retry_reason"]) for t in retries if t.user_attrs.get("retry_reason")]
    return "; ".join(dict.fromkeys(reasons)) or "-"


# -- helpers --------------------------------------------------------------------------------------------------


def _complete(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]


def _best(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    pick = min if study.direction.name == "MINIMIZE" else max
    return pick(complete, key=lambda t: t.value)


def _param_names(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    return list(dict.fromkeys(name for t in trials for name in t.params))


def _target_only(trial: optuna.trial.FrozenTrial) -> bool:
    from hpo.space import is_target_only

    return is_target_only(trial)


def _fixed(study: optuna.Study, name: str) -> Any:
    """A training value the study did not search, from the provenance it was created with."""
    provenance = study.user_attrs.get("provenance") or {}
    return ((provenance.get("search_space") or {}).get("fixed") or {}).get(name)


def _placeholder(text: str) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_annotation(text=html.escape(text, quote=False), x=0.5, y=0.5, xref="paper", yref="paper",
                          showarrow=False, font={"size": 16, "color": "#666"})
    figure.update_layout(height=220, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def _key(value: Any) -> str:
    return repr(value)


def _numbers(numbers: list[int], limit: int = 40) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", … ({len(numbers) - limit} more)" if len(numbers) > limit else "") if numbers else "-"


def _tint(state: str) -> str:
    return {"COMPLETE": "#e8f1fa", "PRUNED": "#fff1e0", "FAIL": "#fbe5e5"}.get(state, "white")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    return str(value)
