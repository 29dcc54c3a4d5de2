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

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.files import write_output
from hpo.results.report import figures
from hpo.results.report.arithmetic import ComputeSummary, RetryChain, compute_summary, retry_chains
from hpo.results.report.common import FIGURE_IDS, SLICE_PARAMS, STATES
from hpo.results.report.page import page
from hpo.results.report.transfer import transfer

if TYPE_CHECKING:
    import optuna

__all__ = ["FIGURE_IDS", "SLICE_PARAMS", "STATES", "ComputeSummary", "RetryChain", "compute_summary", "report_study",
           "retry_chains", "write_report"]


def report_study(name: str, path: Path, storage: str | None = None) -> str:
    """`hpo report NAME -o PATH`: load the study from the resolved storage, write its report, say what was written."""
    from hpo.storage import load_study

    study, _ = load_study(name, storage)
    written = write_report(study, path)
    trials = len(study.get_trials(deepcopy=False))
    return f"wrote {path}: {len(written)} figures for study {name!r} ({trials} trials)"


def write_report(study: optuna.Study, path: Path) -> list[str]:
    """Write the study's report to `path` (one HTML file, plotly.js inside); returns the figure ids written."""
    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's experimental and empty-study warnings; the figures say it
        sections = [
            figures.history(study, trials),
            figures.intermediate(trials),
            figures.importance(study, trials),
            figures.parallel(study, trials),
            figures.slices(study, trials),
            transfer(study, trials),
            figures.compute(study, trials),
            figures.states(trials),
        ]
    write_output(Path(path), page(study, trials, sections))
    return [section.id for section in sections]


