"""The report's page: the header's summary, a section per figure (plotly.js embedded once, with the first), and
the render check a browser test reads."""

from __future__ import annotations

import html
import json
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hpo.files import html_page
from hpo.results.records import COUNT_NAMES
from hpo.results.report.common import STATES, Section, best_trial, complete_trials, fmt, metric_label, state_of

if TYPE_CHECKING:
    import optuna

    from hpo.results.report.selection import Drawn

__all__ = ["page"]


def page(study: optuna.Study, drawn: Drawn, sections: list[Section]) -> str:
    """The whole HTML page: one self-contained file, plotly.js embedded with the first figure."""
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
    body = (f"<header>\n<h1>study {html.escape(study.study_name)}</h1>\n{_summary(study, drawn)}\n"
            f"<nav>{nav}</nav>\n</header>\n" + "\n".join(parts) + _RENDER_CHECK.replace("IDS", ids))
    return html_page(f"hpo report: {study.study_name}", body, style=_STYLE)


_STYLE = """
.summary { margin: 4px 0; }
nav { font-size: 90%; margin-top: 12px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 12px 0; }
dt { color: #666; } dd { margin: 0; }
"""

# Waits until every figure has drawn its SVG, then writes {figure id: {traces, svg, tables}} for a browser test.
_RENDER_CHECK = """
<pre id="render-check" hidden></pre>
<script>
(function () {
  var ids = IDS;
  var started = Date.now();
  function graph(id) { return document.getElementById(id); }
  function hasSvg(id) { var gd = graph(id); return !!(gd && gd.querySelector("svg.main-svg")); }
  function drawn() { return ids.every(hasSvg); }
  function write() {
    var out = {};
    ids.forEach(function (id) {
      var gd = graph(id), data = (gd && gd.data) || [];
      var entry = {traces: data.length, svg: hasSvg(id)};
      var tables = data.filter(function (t) { return t.type === "table"; })
                       .map(function (t) { return t.cells.values; });
      if (tables.length) { entry.tables = tables; }
      out[id] = entry;
    });
    document.getElementById("render-check").textContent = JSON.stringify(out);
  }
  function poll() { if (drawn() || Date.now() - started > 8000) { write(); } else { setTimeout(poll, 50); } }
  poll();
})();
</script>
"""


def _summary(study: optuna.Study, drawn: Drawn) -> str:
    """Storage-free facts about the study: best value, trial counts, budget, when it was created."""
    counts = Counter(state_of(t) for t in drawn.every)
    trials = drawn.every
    complete = complete_trials(drawn.trials)  # the drawn trials hold the best
    rows: list[tuple[str, str]] = []
    if complete:
        best = best_trial(study, complete)
        params = ", ".join(f"{k} = {fmt(v)}" for k, v in best.params.items())
        where = best.user_attrs.get("best_evaluation")
        rows.append((f"best {metric_label(study)}", f'<b id="best-value">{best.value:.4f}</b> (trial {best.number}'
                     f"{f', evaluation {where}' if where is not None else ''})<br>{html.escape(params)}"))
    else:
        rows.append((f"best {metric_label(study)}", '<span id="best-value">no complete trial yet</span>'))
    states = ", ".join(f'<span data-state="{s}">{counts.get(s, 0)}</span> {COUNT_NAMES[s]}' for s in STATES)
    rows.append(("trials", f'<span id="trial-count">{len(trials)}</span>: {states}'))
    budget = study.user_attrs.get("n_trials")
    used = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    rows.append(("budget", f"{used} / {budget} (complete + pruned)" if budget else f"{used} (no trial budget)"))
    rows.append(("direction", html.escape(study.direction.name.lower())))
    from hpo.spec import stored_provenance

    provenance = stored_provenance(study)
    if provenance is not None:
        rows.append(("created", html.escape(provenance.created_at)))
    model = provenance.model.get("id") if provenance is not None else None
    if model:
        rows.append(("model", html.escape(str(model))))
    rows.append(("report written", datetime.now(UTC).isoformat(timespec="seconds")))
    items = "\n".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<dl class="summary" id="summary">\n{items}\n</dl>'


