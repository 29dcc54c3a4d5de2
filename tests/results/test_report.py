"""The HTML report: its arithmetic on hand-built studies, and the page itself, written for a real study run
through the `hpo` command and opened in headless Chromium, whose DOM (after plotly drew) is checked figure by
figure. The screenshot and the report stay in tests/artifacts/ for a person to look at."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpo.errors import HpoError
from hpo.results.report import FIGURE_IDS, compute_summary, report_study, retry_chains, write_report
from hpo.spec import Provenance
from tests.builders import REPO, browse_page, figure_data, hpo_cli, write_study

ARTIFACTS = REPO / "tests" / "artifacts"
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
LR = FloatDistribution(1e-4, 3e-3, log=True)
LAMBDA = FloatDistribution(0.3, 1.0)


def _study(fixed_epochs: int | None = 3) -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="hand-built")
    if fixed_epochs is not None:
        record = Provenance(created_at="2026-01-01T00:00:00", spec_text="", spec_sha256="", model={}, data={},
                            search_space={"fixed": {"epochs": fixed_epochs}, "searched": {}})
        study.set_user_attr("provenance", record.record())
    return study


def _add(study, state, *, epochs_run=None, value=None, params=None, **attrs) -> None:
    params = params or {"learning_rate": 1e-3}
    distributions = {"learning_rate": LR, "target_weight": LAMBDA, "epochs": IntDistribution(1, 5)}
    if epochs_run is not None:
        attrs["epochs_run"] = epochs_run
    study.add_trial(create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None, params=params,
        distributions={k: distributions[k] for k in params}, user_attrs=attrs,
        intermediate_values={1: 0.5} if state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
    ))


# -- arithmetic, no training ----------------------------------------------------------------------------------


def test_compute_saved_counts_what_pruned_trials_did_not_run():
    study = _study(fixed_epochs=3)
    _add(study, TrialState.COMPLETE, epochs_run=3.0, value=0.7)
    _add(study, TrialState.PRUNED, epochs_run=1.5)
    _add(study, TrialState.PRUNED, epochs_run=0.5)
    _add(study, TrialState.FAIL, epochs_run=1.0)  # would have failed the same way: no saving, no cost
    _add(study, TrialState.COMPLETE, epochs_run=5.0, value=0.8, params={"learning_rate": 1e-3, "epochs": 5})
    _add(study, TrialState.PRUNED, epochs_run=2.0, params={"learning_rate": 1e-3, "epochs": 4})  # its own epochs
    study.add_trial(create_trial(state=TrialState.WAITING, params={}, distributions={}))  # not finished: left out

    summary = compute_summary(study)
    assert summary.epochs_run == pytest.approx(3 + 1.5 + 0.5 + 1 + 5 + 2)
    assert summary.epochs_without_pruning == pytest.approx(3 + 3 + 3 + 1 + 5 + 4)
    assert summary.epochs_saved == pytest.approx(1.5 + 2.5 + 2)
    assert summary.share_run == pytest.approx(13 / 19)
    assert [row.saved for row in summary.trials] == pytest.approx([0, 1.5, 2.5, 0, 0, 2])
    assert summary.headline() == "13 of 19 epochs run (68%); pruning saved 6 epochs."


def test_compute_falls_back_to_the_most_epochs_seen_and_to_the_f1_curve():
    study = _study(fixed_epochs=None)  # no provenance: a study not created by `hpo run`
    _add(study, TrialState.COMPLETE, epochs_run=2.0, value=0.7)
    _add(study, TrialState.PRUNED, f1_curve=[[1, 0.5, 0.4], [2, 1.0, 0.45]])  # no epochs_run
    _add(study, TrialState.PRUNED, epochs_run=0.5)

    summary = compute_summary(study)
    assert [(row.run, row.full) for row in summary.trials] == [(2.0, 2.0), (1.0, 2.0), (0.5, 2.0)]
    assert summary.epochs_saved == pytest.approx(2.5)


def test_compute_of_a_study_without_finished_trials_is_zero():
    summary = compute_summary(_study())
    assert (summary.epochs_run, summary.epochs_without_pruning, summary.share_run) == (0, 0, 1.0)


def test_retries_are_grouped_by_their_first_trial():
    study = _study()
    _add(study, TrialState.FAIL, epochs_run=0.5)  # 0
    _add(study, TrialState.COMPLETE, epochs_run=3.0, value=0.6)  # 1
    _add(study, TrialState.FAIL, epochs_run=0.5, retry_of=0, attempt=2, retry_reason="preempted")  # 2, no root
    _add(study, TrialState.COMPLETE, epochs_run=3.0, value=0.7, retry_of=2, retry_root=0, attempt=3,
         retry_reason="worker lost: no heartbeat")  # 3
    _add(study, TrialState.FAIL, epochs_run=0.0)  # 4
    _add(study, TrialState.PRUNED, epochs_run=1.0, retry_of=4, attempt=2, retry_reason="preempted")  # 5

    chains = retry_chains(study.get_trials())
    assert [(c.first, c.attempts, c.final_state) for c in chains] == [(0, [0, 2, 3], "COMPLETE"),
                                                                      (4, [4, 5], "PRUNED")]
    assert chains[0].reason == "preempted; worker lost: no heartbeat"


def test_report_of_an_empty_study_is_written_with_placeholders(tmp_path):
    path = tmp_path / "sub" / "report.html"
    assert write_report(_study(), path) == list(FIGURE_IDS)
    page = path.read_text()
    for figure in FIGURE_IDS:
        assert f'id="{figure}"' in page
    assert "no complete trial yet" in page
    _assert_self_contained(page)


def test_importance_placeholder_says_why(tmp_path):
    study = _study()
    _add(study, TrialState.COMPLETE, epochs_run=3.0, value=0.7)
    _add(study, TrialState.PRUNED, epochs_run=1.0)
    write_report(study, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "Parameter importances need at least 2 complete trials; the study has 1." in page


def test_importances_are_drawn_once_two_complete_trials_differ(tmp_path):
    study = _study()
    for i, value in enumerate((0.2, 0.4, 0.6, 0.9)):
        _add(study, TrialState.COMPLETE, epochs_run=3.0, value=value,
             params={"learning_rate": 1e-4 * (i + 1), "target_weight": 0.3 + 0.2 * i})
    write_report(study, tmp_path / "report.html")
    traces = figure_data((tmp_path / "report.html").read_text(), "fig-importance")
    assert len(traces) == 1 and sorted(traces[0]["y"]) == ["learning_rate", "target_weight"]


def _assert_self_contained(page: str) -> None:
    assert page.count("plotly.js v") == 1, "plotly.js must be embedded exactly once"
    assert not re.search(r"<script[^>]*\bsrc=", page), "no script may be loaded from elsewhere"


# -- a real study, its report, in a browser --------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_storage(tmp_path_factory, tiny_model_dir) -> str:
    """The storage URL of a real 6-trial study, run by the `hpo` command on a tiny local model without pruning (so
    trials 0-5 are COMPLETE and trial 3 is the target-only one), and one PRUNED trial more, recorded as a worker
    would record one stopped at its second evaluation, so that the page has one of each kind to draw."""
    work = tmp_path_factory.mktemp("report-study")
    spec = write_study(work / "tiny.yaml", tiny_model_dir, n_trials=6, pruner="none")
    done = hpo_cli("run", str(spec), cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    url = f"sqlite:///{work / 'hpo.db'}"
    study = optuna.load_study(study_name="tiny", storage=url)
    first = study.trials[0]
    study.add_trial(create_trial(
        state=TrialState.PRUNED, params={**first.params, "target_weight": 0.5}, distributions=first.distributions,
        intermediate_values={1: 0.1, 2: 0.05}, user_attrs={"epochs_run": 1.0, "f1_curve": [[1, 0.5, 0.1],
                                                                                                 [2, 1.0, 0.05]]},
    ))
    return url


@pytest.fixture(scope="module")
def real_study(real_storage) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=real_storage)


@pytest.fixture(scope="module")
def rendered(chromium, real_study, tmp_path_factory):
    """The report written, its DOM after the page's scripts ran, and a screenshot."""
    tmp = tmp_path_factory.mktemp("report")
    report = tmp / "report.html"
    written = write_report(real_study, report)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report, ARTIFACTS / "report.html")

    def browse(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path_factory.mktemp("chromium-profile")
        return browse_page(chromium, report.as_uri(), profile, *args)

    dom = browse("--dump-dom").stdout
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    browse(f"--screenshot={screenshot}", "--window-size=1400,4600")
    return written, report.read_text(), dom, screenshot


class _FigureSvgs(HTMLParser):
    """For each element with a figure id: whether a plotly `main-svg` was drawn inside it."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                      "wbr"})

    def __init__(self, ids) -> None:
        super().__init__()
        self.ids = set(ids)
        self.open: list[tuple[str, int]] = []  # (figure id, depth at which it opened)
        self.depth = 0
        self.svg: dict[str, bool] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and "main-svg" in (attrs.get("class") or "").split():
            for figure, _ in self.open:
                self.svg[figure] = True
        if tag in self.VOID:
            return
        self.depth += 1
        if attrs.get("id") in self.ids:
            self.open.append((attrs["id"], self.depth))
            self.svg.setdefault(attrs["id"], False)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self.open and self.open[-1][1] == self.depth:
            self.open.pop()
        self.depth -= 1


def _render_check(dom: str) -> dict:
    found = re.search(r'<pre id="render-check"[^>]*>(.*?)</pre>', dom, re.S)
    assert found and found.group(1), "the page's check script did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_renders_every_figure_in_a_browser(rendered, real_study):
    written, page, dom, screenshot = rendered
    assert written == list(FIGURE_IDS)
    _assert_self_contained(page)
    parser = _FigureSvgs(FIGURE_IDS)
    parser.feed(dom)
    assert parser.svg == dict.fromkeys(FIGURE_IDS, True), parser.svg
    check = _render_check(dom)
    assert set(check) == set(FIGURE_IDS)
    assert all(entry["svg"] for entry in check.values()), check
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def test_report_figures_match_the_study(rendered, real_study):
    _, page, dom, _ = rendered
    check = _render_check(dom)
    trials = real_study.get_trials()
    counts = Counter(t.state.name for t in trials)

    # one trace per trial that reported a value; pruned ones are marked in the same trace
    assert check["fig-intermediate"]["traces"] == sum(1 for t in trials if t.intermediate_values)
    # the states table as the browser holds it, and the header
    states, numbers, _ = check["fig-states"]["tables"][0]
    assert dict(zip(states, numbers, strict=True)) == {s: counts.get(s, 0) for s in STATES}
    for state in STATES:
        assert f'<span data-state="{state}">{counts.get(state, 0)}</span>' in dom
    assert "no trial was retried" in json.dumps(check["fig-states"]["tables"][1])

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in complete] == [0, 1, 2, 3, 4, 5] and counts["PRUNED"] == 1
    best = max(complete, key=lambda t: t.value)
    assert f'<b id="best-value">{best.value:.4f}</b> (trial {best.number}' in dom
    # the transfer panel states the best transfer and the best target-only value (trial 3, λ = 1)
    transfer = max((t for t in complete if t.number != 3), key=lambda t: (t.value, -t.number))
    assert f"best transfer: {transfer.value:.4f} (trial {transfer.number}," in page
    assert f"best target only: {trials[3].value:.4f} (trial 3)" in page
    assert check["fig-transfer"]["traces"] == 3  # transfer and target only (complete), transfer (pruned)

    summary = compute_summary(real_study)
    assert summary.epochs_run == pytest.approx(sum(t.user_attrs["epochs_run"] for t in trials))
    assert summary.epochs_without_pruning == pytest.approx(
        2 * sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        + sum(t.user_attrs["epochs_run"] for t in trials if t.state == TrialState.FAIL))
    assert summary.headline() in page

    # slices: every one of the five parameters the report looks at is searched by this study file
    assert check["fig-slice"]["traces"] == (5 if complete else 0)

    # the table of trials: one row each, complete ones best first, then the others by number
    (table,) = check["fig-trials"]["tables"]
    ranked = sorted(complete, key=lambda t: (-t.value, t.number))
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert [int(n) for n in table[0]] == [t.number for t in ranked + others]
    assert table[2][0] == f"{ranked[0].value:.4f}" and table[1] == [t.state.name for t in ranked + others]
    # importances from 6 complete trials come with their caveat
    assert "Caution: these rest on only 6 complete trials, fewer than 20" in html.unescape(page)


def test_report_reads_postgresql_like_sqlite(real_study, real_storage, pg_url, tmp_path):
    """The report's queries read PostgreSQL as they read SQLite: the same study copied there gives the same page."""
    optuna.copy_study(from_study_name="tiny", from_storage=real_storage, to_storage=pg_url)
    on_postgres = optuna.load_study(study_name=real_study.study_name, storage=pg_url)
    pages = []
    for study, name in ((real_study, "sqlite.html"), (on_postgres, "postgresql.html")):
        assert write_report(study, tmp_path / name) == list(FIGURE_IDS)
        page = (tmp_path / name).read_text()
        pages.append(re.sub(r"<dt>report written</dt><dd>[^<]*</dd>", "", page))
    assert pages[0] == pages[1]


def test_report_study_loads_by_name_from_the_storage(real_storage, tmp_path):
    path = tmp_path / "out" / "report.html"
    said = report_study("tiny", path, storage=real_storage)
    assert said.startswith(f"wrote {path}: 9 figures for study 'tiny' (")
    assert 'id="fig-states"' in path.read_text()
    with pytest.raises(HpoError, match=r"no study named 'nope' in sqlite:///.*; studies: tiny"):
        report_study("nope", tmp_path / "nope.html", storage=real_storage)
    assert not (tmp_path / "nope.html").exists()


def test_hpo_report_command(real_storage, tmp_path):
    done = hpo_cli("report", "tiny", "-o", str(tmp_path / "r.html"), "--storage", real_storage, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "9 figures for study 'tiny'" in done.stdout and (tmp_path / "r.html").exists()
    missing = hpo_cli("report", "nope", "--storage", real_storage, cwd=tmp_path)
    assert missing.returncode == 1 and "no study named 'nope'" in missing.stderr
