"""The report's figures, one function each: optuna.visualization's where it draws what is wanted, hand-written
where no optuna plot does (each says why)."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

from hpo.results.report.arithmetic import compute_summary, retry_chains
from hpo.results.report.common import (
    COLORS,
    SLICE_PARAMS,
    STATES,
    Section,
    complete_trials,
    is_target_only,
    metric_label,
    numbers_text,
    param_names,
    placeholder,
    state_of,
    tint,
    value_key,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["FEW_FOR_IMPORTANCE", "compute", "history", "importance", "intermediate", "parallel", "slices", "states"]

FEW_FOR_IMPORTANCE = 20  # below this many complete trials, importances are mostly noise: the figure says so
IMPORTANCE_TRIALS = 500  # fANOVA over at most this many complete trials


def history(study: optuna.Study, every: list[Any]) -> Section:
    # Hand-written: optuna's plot_optimization_history indexes its values by trial number, so it cannot draw a
    # selection of a large study's trials; this one draws every complete trial (a value each: cheap at any size).
    import plotly.graph_objects as go

    title = "Optimisation history"
    complete = sorted(complete_trials(every), key=lambda t: t.number)
    if not complete:
        return Section("fig-history", title, placeholder("no complete trial yet"))
    pick = min if study.direction.name == "MINIMIZE" else max
    best, running = [], None
    for trial in complete:
        running = trial.value if running is None else pick(running, trial.value)
        best.append(running)
    numbers = [t.number for t in complete]
    figure = go.Figure([
        go.Scatter(x=numbers, y=[t.value for t in complete], mode="markers", name=metric_label(study),
                   marker={"color": COLORS["COMPLETE"], "size": 6 if len(complete) < 500 else 3},
                   hovertemplate="trial %{x}<br>" + metric_label(study) + " %{y:.4f}<extra></extra>"),
        go.Scatter(x=numbers, y=best, mode="lines", name="best so far", line={"color": "#d62728", "shape": "hv"},
                   hovertemplate="after trial %{x}: best %{y:.4f}<extra></extra>"),
    ])
    figure.update_layout(height=450, xaxis_title="trial", yaxis_title=metric_label(study))
    return Section("fig-history", title, figure,
                   f"The {metric_label(study)} of each of the {len(complete)} complete trials, and the best so far.")


def intermediate(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: optuna's plot_intermediate_values draws every trial alike; here a pruned trial is dotted and
    # marked with a × at the evaluation where it was stopped. One trace per trial that reported a value, so a
    # trace count in the browser equals the number of such trials.
    import plotly.graph_objects as go

    traces = []  # plain dicts, validated once by the Figure: a Scatter object per trial took seconds for 2,000
    shown = [t for t in trials if t.intermediate_values]
    for trial in shown:
        state = trial.state.name
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        pruned = state == "PRUNED"
        color = COLORS["target_only"] if is_target_only(trial) and state == "COMPLETE" else COLORS.get(state, "#333")
        sizes = [5] * len(steps)
        symbols = ["circle"] * len(steps)
        if pruned:
            sizes[-1], symbols[-1] = 13, "x"
        label = f"trial {trial.number} " + (f"(pruned at {steps[-1]})" if pruned else f"({state.lower()})")
        if is_target_only(trial):
            label += ", target only"
        traces.append(dict(
            type="scatter", x=steps, y=values, mode="lines+markers", name=label, legendgroup=state,
            legendgrouptitle={"text": state.lower()}, opacity=0.6 if pruned else 0.9,
            line={"color": color, "dash": "dot" if pruned else "solid", "width": 1.5 if pruned else 2},
            marker={"size": sizes, "symbol": symbols, "color": color},
            hovertemplate=f"trial {trial.number} ({state.lower()})<br>evaluation %{{x}}<br>"
                          f"{metric_label(study)} %{{y:.4f}}<extra></extra>",
        ))
    if not shown:
        return Section("fig-intermediate", f"{metric_label(study)} at every evaluation",
                       placeholder("no trial has reported"))
    figure = go.Figure(data=traces)
    figure.update_layout(height=500, xaxis_title="evaluation (step reported to the pruner)",
                         yaxis_title=metric_label(study), legend={"groupclick": "toggleitem"})
    figure.update_xaxes(tickmode="linear", dtick=1)
    pruned = sum(t.state.name == "PRUNED" for t in shown)
    note = (f"{len(shown)} trials reported; {pruned} were pruned (dotted, × at the evaluation where the pruner "
            "stopped them). Green: complete target-only trials (λ = 1).")
    return Section("fig-intermediate", f"{metric_label(study)} at every evaluation", figure, note)


def importance(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], uniform: set[int] | None = None) -> Section:
    """fANOVA importances over the complete trials (of `uniform`, the drawn trials sampled without regard to their
    value, when the report draws a selection: the best 500 alone would squeeze the ranges), at most
    IMPORTANCE_TRIALS of them."""
    title = "Parameter importances"
    complete = [t for t in complete_trials(trials) if uniform is None or t.number in uniform]
    reason = None
    if len(complete) < 2:
        reason = f"Parameter importances need at least 2 complete trials; the study has {len(complete)}."
    elif not any(len({value_key(t.params.get(name)) for t in complete}) > 1 for name in param_names(complete)):
        reason = "No parameter varies across the complete trials, so there is nothing to attribute."
    elif len({t.value for t in complete}) < 2:
        reason = (f"Every complete trial has the same {metric_label(study)} ({complete[0].value:.4f}); nothing to "
                  "attribute.")
    if reason is None:
        from optuna.importance import FanovaImportanceEvaluator
        from optuna.visualization import plot_param_importances

        from hpo.storage import snapshot_study

        # fANOVA's time grows with the trials (13 s for 1,090 here): a seeded sample of 500 ranks the parameters
        # as the whole does (measured on a 10,000-trial study) in a tenth of it; 32 trees instead of 64 likewise.
        used = complete if len(complete) <= IMPORTANCE_TRIALS else \
            sorted(random.Random(0).sample(complete, IMPORTANCE_TRIALS), key=lambda t: t.number)
        try:
            figure = plot_param_importances(snapshot_study(study, used), target_name=metric_label(study),
                                            evaluator=FanovaImportanceEvaluator(n_trees=32, seed=0))
        except Exception as exc:  # an evaluator failing on odd data: the report still gets written
            reason = f"Parameter importances could not be computed: {type(exc).__name__}: {exc}"
        else:
            figure.update_layout(title=None, height=max(300, 60 + 45 * len(figure.data[0].y or [])))
            over = f"{len(complete)}" if len(used) == len(complete) else \
                f"a seeded sample of {len(used)} of the {len(complete)}"
            note = f"fANOVA importance of each parameter for {metric_label(study)}, over {over} complete trials " \
                   "(pruned trials are not counted)."
            if len(complete) < FEW_FOR_IMPORTANCE:
                note += (f" Caution: these rest on only {len(complete)} complete trials, fewer than "
                         f"{FEW_FOR_IMPORTANCE}: a rough hint, not a ranking.")
            return Section("fig-importance", title, figure, note)
    return Section("fig-importance", title, placeholder(reason), reason)


def parallel(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Parallel coordinates"
    if not complete_trials(trials):
        return Section("fig-parallel", title, placeholder("no complete trial yet"))
    from optuna.visualization import plot_parallel_coordinate

    figure = plot_parallel_coordinate(study, target_name=metric_label(study))
    figure.update_layout(title=None, height=480)
    return Section("fig-parallel", title, figure, "Every complete trial as one line through its parameters.")


def slices(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    title = "Slices: " + metric_label(study) + " against each parameter"
    present = [p for p in SLICE_PARAMS if p in param_names(complete_trials(trials))]
    if not present:
        reason = f"none of {', '.join(SLICE_PARAMS)} is searched in a complete trial"
        return Section("fig-slice", title, placeholder(reason), reason)
    from optuna.visualization import plot_slice

    figure = plot_slice(study, params=present, target_name=metric_label(study))
    figure.update_layout(title=None, height=420, width=None)
    return Section("fig-slice", title, figure, f"Complete trials, against {', '.join(present)}; colour: trial number.")


def compute(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> Section:
    # Hand-written: optuna has no plot of compute; this one weighs the epochs run against an unpruned search.
    import plotly.graph_objects as go

    title = "Compute: epochs run and what pruning saved"
    summary = compute_summary(study, trials)
    if not summary.trials:
        return Section("fig-compute", title, placeholder("no finished trial yet"))
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


def states(trials: list[Any]) -> Section:
    """Every trial (FrozenTrials, or the storage's TrialRows) by state, and the retry chains."""
    # Hand-written: a table, which optuna does not draw.
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    counts = Counter(state_of(t) for t in trials)
    numbers = {s: [t.number for t in trials if state_of(t) == s] for s in STATES}
    chains = retry_chains(trials)
    figure = make_subplots(rows=2, cols=1, specs=[[{"type": "table"}], [{"type": "table"}]],
                           row_heights=[0.55, 0.45], vertical_spacing=0.06,
                           subplot_titles=("trial states", "retried trials"))
    figure.add_trace(go.Table(
        header={"values": ["state", "trials", "trial numbers"], "align": "left", "fill_color": "#eee"},
        cells={"values": [list(STATES), [counts.get(s, 0) for s in STATES], [numbers_text(numbers[s]) for s in STATES]],
               "align": "left", "fill_color": [[tint(s) for s in STATES]]},
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


