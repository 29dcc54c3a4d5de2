"""`hpo report`: one self-contained HTML file of plotly figures for a study.

The file works offline: plotly.js is embedded once, with the first figure; every other figure reuses it. The
report reads the study in a few SQL queries (hpo/storage/rows.py), the same on SQLite and PostgreSQL, and never
shows the storage URL. Above 2,000 trials it draws the 500 best and a seeded sample of 1,500 others, and each
figure of them says so (selection.py). plotly and optuna are imported inside the functions, so importing this
module (and so the CLI) stays fast.

Figures, each in its own `<div>` with a stable id (the plotly graph div itself, so `document.getElementById(id)
.data` is the figure's traces in the browser):

| id | what | drawn by |
|---|---|---|
| `fig-history` | val F1 of every complete trial and the best so far | here |
| `fig-intermediate` | val F1 at every evaluation, one trace per trial; pruned trials dotted, × where pruned | here |
| `fig-importance` | fANOVA parameter importances, or why they cannot be computed | `optuna.visualization` |
| `fig-parallel` | parallel coordinates of the complete trials | `optuna.visualization` |
| `fig-slice` | val F1 against learning_rate, λ, freeze_depth, l1, l2 (those searched) | `optuna.visualization` |
| `fig-transfer` | best val F1 against λ; target-only trials (λ = 1) apart; best transfer vs best target only | here |
| `fig-sources` | best val F1 of each candidate source, for a study that searches its source (absent otherwise) | here |
| `fig-compute` | epochs run per trial and the epochs pruning saved | here |
| `fig-states` | trial states and retried trials (every trial), as a table | here |
| `fig-trials` | the drawn trials, one row each, best complete first | here |

At the end of the page a small script waits until every figure has drawn its SVG and writes, into
`<pre id="render-check">`, a JSON object {figure id: {"traces": n, "svg": true, "tables": [cells…]}}: what a
browser test (or a person in the devtools) reads to see that the page rendered.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.files import write_output
from hpo.results.report import figures, table
from hpo.results.report.arithmetic import ComputeSummary, RetryChain, compute_summary, retry_chains
from hpo.results.report.common import FIGURE_IDS, SLICE_PARAMS, STATES
from hpo.results.report.page import page
from hpo.results.report.selection import Drawn, draw
from hpo.results.report.transfer import sources, transfer

if TYPE_CHECKING:
    import optuna

__all__ = ["FIGURE_IDS", "SLICE_PARAMS", "STATES", "ComputeSummary", "Drawn", "RetryChain", "compute_summary", "draw",
           "report_study", "retry_chains", "write_report"]


STDOUT = Path("-")


def report_study(name: str, path: Path, storage: str | None = None) -> str:
    """`hpo report NAME -o PATH`: load the study from the resolved storage, write its report (`-o -`: to standard
    output), say what was written."""
    from hpo.storage import count_states, load_study

    study, _ = load_study(name, storage)
    written = write_report(study, path)
    where = "standard output" if Path(path) == STDOUT else str(path)
    return f"wrote {where}: {len(written)} figures for study {name!r} ({sum(count_states(study).values())} trials)"


def write_report(study: optuna.Study, path: Path) -> list[str]:
    """Write the study's report to `path` (one HTML file, plotly.js inside; `-`: standard output); returns the
    figure ids written."""
    drawn = draw(study)
    view, trials = drawn.study, drawn.trials
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's experimental and empty-study warnings; the figures say it
        sections = [
            figures.history(view, drawn.every),
            figures.intermediate(study, trials),
            figures.importance(view, trials, drawn.uniform),
            figures.parallel(view, trials),
            figures.slices(view, trials),
            transfer(view, trials),
            sources(view, trials),
            figures.compute(view, trials),
            figures.states(drawn.every),
            table.trials_table(view, trials),
        ]
    sections = [section for section in sections if section is not None]  # fig-sources: only a source search
    if drawn.sampled:  # the figures of the drawn trials say so (history and states cover every trial)
        sections = [s if s.id in ("fig-history", "fig-states") else replace(s, note=f"{s.note} {drawn.note}".strip())
                    for s in sections]
    html = page(study, drawn, sections)
    if Path(path) == STDOUT:
        sys.stdout.write(html)
        sys.stdout.flush()
    else:
        write_output(Path(path), html)
    return [section.id for section in sections]
