"""The replay's picture: the best validation F1 found so far against simulated time, per strategy (the median
over seeds, the 10-90% band shaded), as a page and a PNG beside it."""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["plot"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def plot(outcomes: dict[str, list[Any]], budget_s: float, target: float, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    grid = [budget_s * 10 ** (-4 + 4 * i / 400) for i in range(1, 401)]  # log-spaced: races end early
    figure = go.Figure()
    for colour, (name, runs) in zip(qualitative.Plotly, outcomes.items(), strict=False):
        curves = [[max([v for t, v in o.trace if t <= at], default=0.0) for at in grid] for o in runs]
        columns = list(zip(*curves, strict=True))
        low, mid, high = ([_percentile(list(c), q) for c in columns] for q in (0.1, 0.5, 0.9))
        minutes = [t / 60 for t in grid]
        figure.add_trace(go.Scatter(x=minutes + minutes[::-1], y=high + low[::-1], fill="toself", opacity=0.15,
                                    fillcolor=colour, line={"width": 0}, showlegend=False, hoverinfo="skip",
                                    legendgroup=name))
        figure.add_trace(go.Scatter(x=minutes, y=mid, name=name, mode="lines", line={"color": colour},
                                    legendgroup=name))
    figure.add_hline(y=target, line_dash="dash", line_color="gray", annotation_text="target")
    figure.update_layout(template="plotly_white", height=520, xaxis_title="simulated minutes (log scale)",
                         yaxis_title="best val macro-F1 so far (median over seeds, 10-90% shaded)",
                         xaxis_type="log", yaxis_range=[0.80, 1.0],
                         title="Time to quality on the quickstart task (surrogate of real curves)")
    path.write_text(figure.to_html(include_plotlyjs="cdn", full_html=True))
    _screenshot(figure, path.with_suffix(".png"))


def _screenshot(figure: Any, png: Path) -> None:
    """A PNG beside the page, for reading where HTML is not rendered, if a Chromium is on PATH (the page with
    plotly.js inline is 4.6 MB, too much to commit; kaleido would be one more dependency for one picture)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(f"no chromium on PATH: {png.name} not written")
        return
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "page.html"
        page.write_text(figure.to_html(include_plotlyjs=True, full_html=True, config={"displayModeBar": False}))
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={folder}/profile", "--window-size=1100,560", "--virtual-time-budget=5000",
                        f"--screenshot={png.resolve()}", page.as_uri()], check=True, capture_output=True, timeout=120)
