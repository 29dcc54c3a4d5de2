"""The transfer effect's outputs: the terminal table and the gain's line, and the HTML page (a bar chart with
error bars, the table, plotly.js inside) with the JSON beside it."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from hpo.files import html_page, write_output
from hpo.results.transfer.stats import INCONCLUSIVE, NEGATIVE, POSITIVE

__all__ = ["clipped_rows", "gain_line", "source_lines", "text_table", "write_outputs", "zero_shot_line"]


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _ci_text(ci: list[float | None], signed: bool = False) -> str:
    low, high = ci
    if low is None or high is None:
        return "undefined (n = 1)"
    return f"[{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _config_text(summary: dict[str, Any]) -> str:
    trial = summary["trial"]
    return f"trial {trial['trial']} of {trial['study']}" if trial else "none (no training)"


def text_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"transfer effect · study {result['study']} · {result['metric']} on the test split "
                        f"({result['test']['dataset']}, {result['test']['documents']} documents) · "
                        f"{len(result['seeds'])} seeds", title_justify="left")
    for column, justify in (("row", "left"), ("mean F1", "right"), ("95% CI", "right"), ("accuracy", "right"),
                            ("per seed (F1)", "left"), ("config", "left")):
        table.add_column(column, justify=justify, no_wrap=column in ("row", "95% CI"))
    for name, row in result["rows"].items():
        table.add_row(name, _fmt(row["f1_mean"]), _ci_text(row["f1_ci"]), _fmt(row["accuracy_mean"]),
                      " ".join(_fmt(v) for v in row["f1"]), _config_text(row))
    return table


_VERDICT = {  # what each verdict says, and how the terminal shows it
    POSITIVE: ("positive transfer: the whole interval is above 0", "bold green"),
    NEGATIVE: ("NEGATIVE TRANSFER: the whole interval is below 0", "bold red"),
    INCONCLUSIVE: ("inconclusive: the interval holds 0, so these seeds cannot tell the source task's effect from "
                   "none (more --seeds narrow it)", "bold yellow"),
}


def _verdict_text(result: dict[str, Any]) -> str:
    text, _ = _VERDICT[result["verdict"]]
    return text if result["gain"]["ci"][0] is not None else "inconclusive: one seed gives no interval"


def gain_line(result: dict[str, Any]) -> str:
    gain = result["gain"]
    _, style = _VERDICT[result["verdict"]]
    return (f"transfer gain (transfer - target only, paired by seed): [bold]{_fmt(gain['mean'], True)}[/] "
            f"95% CI {_ci_text(gain['ci'], True)}  [{style}]{_verdict_text(result)}[/]")


def source_lines(result: dict[str, Any]) -> list[str]:
    """One line per candidate source (a study that searched its source): its transfer row's gain over target only."""
    return [f"  source {item['source']}: gain {_fmt(item['gain']['mean'], True)} 95% CI "
            f"{_ci_text(item['gain']['ci'], True)} ({item['verdict']}; row {item['row']!r})"
            for item in result.get("sources") or []]


_ZERO_SHOT = {  # how each zero-shot method picks a label, in the page's words
    "embedding": "the label name that embeds closest (cosine) in the mean-pooled pretrained encoder",
    "log-likelihood": "the label name with the highest summed log-likelihood after a fixed prompt, by the model's LM "
                      "head (the prompt runs once per text; its key/value cache serves every label)",
}


def zero_shot_line(result: dict[str, Any]) -> str:
    """Which zero-shot the row is, and on how many of the test texts (--zero-shot-limit caps them)."""
    zero = result.get("zero_shot")
    if not zero:
        return ""
    prompt = f" ({zero['prompt_style']})" if zero.get("prompt_style") else ""
    limit = f" (--zero-shot-limit {zero['limit']})" if zero.get("limit") is not None else ""
    return (f"zero-shot on {zero['texts']} of {zero['of']} test texts{limit}: {zero['method']}{prompt}, "
            f"{_ZERO_SHOT.get(zero['method'], zero['method'])}")


def _zero_shot_html(result: dict[str, Any]) -> str:
    zero = result.get("zero_shot")
    if not zero:
        return ""
    prompt = (f'<pre id="zero-shot-prompt">{html.escape(zero["prompt"])}</pre>') if zero.get("prompt") else ""
    return f'<p class="method" id="zero-shot">{html.escape(zero_shot_line(result))}.</p>{prompt}'


def write_outputs(result: dict[str, Any], output: Path) -> None:
    """The HTML page (bar chart with error bars, the table, plotly.js inside) and the JSON beside it."""
    write_output(output, _page(result))
    write_output(output.with_suffix(".json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def _figure(result: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    names = list(result["rows"])
    rows = [result["rows"][n] for n in names]
    means = [r["f1_mean"] for r in rows]
    # An F1 lies in [0, 1]; a t interval over few seeds can reach past either end. It is drawn clipped (the
    # table keeps the interval as computed), and the figure says which rows were clipped.
    plus = [None if r["f1_ci"][1] is None else min(r["f1_ci"][1], 1.0) - r["f1_mean"] for r in rows]
    minus = [None if r["f1_ci"][0] is None else r["f1_mean"] - max(r["f1_ci"][0], 0.0) for r in rows]
    colors = ["#7f7f7f", "#9467bd", "#2ca02c", "#1f77b4"]
    colors += ["#6baed6"] * (len(names) - len(colors))  # the other sources' transfer rows
    figure = go.Figure(go.Bar(
        x=names, y=means, name="mean over seeds", marker_color=colors[: len(names)],
        error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "visible": True},
        hovertemplate="%{x}: %{y:.4f}<extra></extra>",
    ))
    xs = [n for n, r in zip(names, rows, strict=True) for _ in r["f1"]]
    ys = [v for r in rows for v in r["f1"]]
    seeds = [s for r in rows for s in result["seeds"][: len(r["f1"])]]
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="per seed", customdata=seeds,
                                marker={"color": "black", "size": 6, "opacity": 0.6},
                                hovertemplate="%{x}, seed %{customdata}: %{y:.4f}<extra></extra>"))
    figure.update_layout(template="plotly_white", height=450, margin_t=40,
                         yaxis_title=result["metric"], yaxis_range=[0, 1.02],
                         title=f"{result['metric']}: mean and 95% CI (Student's t) over {len(result['seeds'])} seeds")
    clipped = clipped_rows(result)
    if clipped:
        figure.add_annotation(text=f"CI clipped to [0, 1] for {', '.join(clipped)}", xref="paper", yref="paper",
                              x=1, y=1.06, showarrow=False, xanchor="right", font={"size": 11, "color": "#666"})
    return figure


def clipped_rows(result: dict[str, Any]) -> list[str]:
    """The rows whose F1 interval reaches outside [0, 1], where the figure draws it clipped."""
    return [name for name, row in result["rows"].items()
            if row["f1_ci"][0] is not None and (row["f1_ci"][0] < 0 or row["f1_ci"][1] > 1)]


def _page(result: dict[str, Any]) -> str:
    graph = _figure(result).to_html(full_html=False, include_plotlyjs=True, div_id="fig-transfer-effect",
                                    config={"displaylogo": False, "responsive": True})
    esc = html.escape
    body = []
    for name, row in result["rows"].items():
        body.append(
            f'<tr data-row="{esc(name)}"><td>{esc(name)}</td><td class="num">{_fmt(row["f1_mean"])}</td>'
            f'<td class="num">{esc(_ci_text(row["f1_ci"]))}</td><td class="num">{_fmt(row["accuracy_mean"])}</td>'
            f'<td>{esc(" ".join(_fmt(v) for v in row["f1"]))}</td><td>{esc(_config_text(row))}</td>'
            f'<td class="note">{esc(row["note"])}</td></tr>'
        )
    gain = result["gain"]
    flag = f'<strong class="{esc(result["verdict"].split()[0].lower())}" id="verdict">{esc(_verdict_text(result))}' \
           "</strong>"
    clipped = clipped_rows(result)
    clip_note = (f'<p class="method" id="clipped">The figure draws the 95% CI of {esc(", ".join(clipped))} clipped to '
                 "[0, 1] (an F1 cannot leave it); the table gives the interval as computed.</p>") if clipped else ""
    title = f"transfer effect: study {result['study']}"
    per_source = "".join(
        f'<tr data-source="{esc(item["source"])}"><td>{esc(item["source"])}</td><td>{esc(item["row"])}</td>'
        f'<td class="num">{_fmt(item["gain"]["mean"], True)}</td>'
        f'<td class="num">{esc(_ci_text(item["gain"]["ci"], True))}</td><td>{esc(item["verdict"])}</td></tr>'
        for item in result.get("sources") or [])
    sources = (f'<h2>Per source</h2><table id="source-table"><thead><tr><th>source</th><th>row</th>'
               f"<th>gain over target only</th><th>95% CI</th><th>verdict</th></tr></thead><tbody>{per_source}"
               "</tbody></table>") if per_source else ""
    return html_page(title, f"""<h1>{esc(title)}</h1>
<p>{esc(result['metric'])} on the held-out test split of {esc(result['test']['dataset'])}
({result['test']['documents']} documents, {result['test']['classes']} classes), seeds
{esc(", ".join(map(str, result['seeds'])))}.</p>
{graph}
{clip_note}
<table id="transfer-table">
<thead><tr><th>row</th><th>mean F1</th><th>95% CI</th><th>accuracy</th><th>per seed (F1)</th><th>config</th>
<th>what</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<p id="gain">transfer gain ({esc(gain['definition'])}): <b>{_fmt(gain['mean'], True)}</b>, 95% CI
{esc(_ci_text(gain['ci'], True))}; per seed {esc(" ".join(_fmt(v, True) for v in gain['per_seed']))}. {flag}</p>
{sources}
{_zero_shot_html(result)}
<p class="method">{esc(result['ci_method'])} The verdict: {esc(result['verdict_rule'])}.</p>""",
                     style="td.note, .method { color: #555; font-size: 90%; }\n.negative { color: #c00; }\n"
                           ".positive { color: #080; }\n.inconclusive { color: #a60; }\n"
                           "#zero-shot-prompt { white-space: pre-wrap; color: #555; font-size: 85%; }\n")
