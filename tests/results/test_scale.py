"""A study above 2,000 trials: the bulk generator writes what Optuna reads back, and the report draws the 500 best
and a seeded sample of 1,500 others, says so under each figure of them, and counts every trial."""

from __future__ import annotations

import html
import json
import re

import optuna
import pytest

from benchmarks.big_study import build, generated_trials
from hpo.results.report import write_report
from hpo.results.report.selection import BEST, LIMIT, draw

N = 2_100


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/big.db"


def test_the_generator_writes_what_optuna_reads_back(url):
    build(url, 300, name="g")
    read = optuna.load_study(study_name="g", storage=url).trials
    made = generated_trials(300)
    fields = ("number", "state", "value", "params", "user_attrs", "intermediate_values", "datetime_start",
              "datetime_complete", "distributions")
    assert [tuple(getattr(t, f) for f in fields) for t in read] == [tuple(getattr(t, f) for f in fields) for t in made]
    study = optuna.load_study(study_name="g", storage=url)
    study.tell(study.ask(), 0.5)  # Optuna writes on after the bulk rows: ids and numbers continue
    assert study.trials[-1].number == 300


def test_a_large_study_s_report_draws_the_best_and_a_seeded_sample(tmp_path):
    url = f"sqlite:///{tmp_path}/big.db"
    study = build(url, N)
    study = optuna.load_study(study_name="big", storage=url)
    every = study.trials
    drawn = draw(study)
    numbers = {t.number for t in drawn.trials}
    assert len(numbers) == LIMIT and len(drawn.every) == N
    ranked = sorted((t for t in every if t.state.name == "COMPLETE"), key=lambda t: (-t.value, t.number))
    assert {t.number for t in ranked[:BEST]} <= numbers  # the best are always drawn
    assert {t.number for t in draw(study).trials} == numbers  # seeded: the same study, the same report
    assert drawn.uniform is not None and not drawn.uniform & {t.number for t in ranked[:BEST]}

    path = tmp_path / "big.html"
    write_report(study, path)
    page = path.read_text()
    notes = {k: html.unescape(v) for k, v in re.findall(r'<p class="note" id="(fig-[a-z]+)-note">([^<]*)</p>', page)}
    said = f"Drawn from {LIMIT:,} of the study's {N:,} trials: the {BEST} best complete trials and a seeded sample " \
           f"of {LIMIT - BEST:,} of the others"
    for figure in ("fig-intermediate", "fig-importance", "fig-parallel", "fig-slice", "fig-transfer", "fig-compute",
                   "fig-trials"):
        assert said in notes[figure], figure
    for figure in ("fig-history", "fig-states"):  # these two cover every trial
        assert "Drawn from" not in notes[figure]
    assert f'<span id="trial-count">{N}</span>' in page
    counts = {s: sum(t.state.name == s for t in every) for s in ("COMPLETE", "PRUNED", "FAIL")}
    for state, n in counts.items():
        assert f'<span data-state="{state}">{n}</span>' in page
    assert f'id="best-value">{ranked[0].value:.4f}<' in page
    # importances from the trials drawn regardless of their value: the best alone would squeeze the ranges
    uniform_complete = sum(every[n].state.name == "COMPLETE" for n in drawn.uniform)
    assert f"over {uniform_complete} complete trials" in notes["fig-importance"]
    history = json.loads(re.search(r'"fig-history",\s*(\[.*?\]),\s*\{', page, re.S).group(1))
    assert len(history[0]["x"]) == counts["COMPLETE"]  # every complete trial, not the drawn ones
