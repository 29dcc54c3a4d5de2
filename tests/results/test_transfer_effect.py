"""`hpo transfer-effect`: the statistics on given numbers, and two real tiny studies measured end to end (the
study's own target-only trials, and the target-only search it runs when it has too few)."""

from __future__ import annotations

import io
import json
import math

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from rich.console import Console

from hpo.errors import HpoError
from hpo.results.transfer import (
    ROWS,
    is_negative_transfer,
    mean_ci,
    normalise_label,
    paired_gain,
    transfer_effect,
    verdict,
    write_outputs,
)
from hpo.results.transfer.page import gain_line
from hpo.search.space import is_target_only
from hpo.storage import load_study, provenance_of
from tests.builders import hpo_cli, study_from, write_study

# -- statistics on given numbers -----------------------------------------------------------------------------


def test_mean_ci_is_students_t_with_n_minus_1_degrees_of_freedom():
    # mean 3, s = √2.5, t(0.975, 4) = 2.7764451…: half width 2.7764451 · √2.5 / √5 = 1.9632432
    mean, low, high = mean_ci([1, 2, 3, 4, 5])
    assert mean == pytest.approx(3.0)
    assert low == pytest.approx(3 - 1.9632432, abs=1e-6)
    assert high == pytest.approx(3 + 1.9632432, abs=1e-6)
    # two values: t(0.975, 1) = 12.7062047, s = 0.0707107: half width 12.7062047 · 0.0707107 / √2 = 0.6353102
    mean, low, high = mean_ci([0.8, 0.9])
    assert (mean, low, high) == pytest.approx((0.85, 0.85 - 0.6353102, 0.85 + 0.6353102), abs=1e-6)


def test_mean_ci_of_identical_values_has_width_zero():
    assert mean_ci([0.42, 0.42, 0.42, 0.42]) == pytest.approx((0.42, 0.42, 0.42))


def test_mean_ci_of_one_value_is_undefined():
    mean, low, high = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_gain_uses_the_per_seed_differences():
    # Unpaired these would overlap widely; paired, every seed gains exactly 0.1.
    assert paired_gain([0.1, 0.5, 0.9], [0.0, 0.4, 0.8]) == pytest.approx((0.1, 0.1, 0.1))
    # differences -0.05, -0.04, -0.06: s = 0.01, t(0.975, 2) = 4.3026527; half = 4.3026527 · 0.01 / √3 = 0.0248414
    mean, low, high = paired_gain([0.80, 0.82, 0.78], [0.85, 0.86, 0.84])
    assert (mean, low, high) == pytest.approx((-0.05, -0.0748414, -0.0251586), abs=1e-6)
    with pytest.raises(ValueError):
        paired_gain([0.1, 0.2], [0.1])


def test_negative_transfer_needs_the_whole_interval_below_zero():
    assert is_negative_transfer(paired_gain([0.80, 0.82, 0.78], [0.85, 0.86, 0.84])[2])
    # mean gain below 0 but the interval reaches above it: not flagged
    _, _, high = paired_gain([0.80, 0.86, 0.78], [0.85, 0.84, 0.84])
    assert high > 0 and not is_negative_transfer(high)
    assert not is_negative_transfer(0.0)
    assert not is_negative_transfer(0.03)
    assert is_negative_transfer(-1e-9)


def test_one_seed_flags_nothing():
    mean, low, high = paired_gain([0.5], [0.9])
    assert mean == pytest.approx(-0.4) and math.isnan(low) and math.isnan(high)
    assert not is_negative_transfer(high)


def test_label_names_are_lightly_normalised():
    assert normalise_label("money-fx") == "money fx"
    assert normalise_label("comp.sys.mac.hardware") == "comp sys mac hardware"
    assert normalise_label("talk_politics/guns") == "talk politics guns"
    assert normalise_label("earn") == "earn"


def _result(n: int, gain_ci: tuple[float, float] = (-0.2, -0.05), f1_ci: tuple[float, float] = (0.4, 0.6)) -> dict:
    row = {"f1": [0.5] * n, "accuracy": [0.6] * n, "f1_mean": 0.5, "f1_ci": list(f1_ci) if n > 1 else [None, None],
           "accuracy_mean": 0.6, "accuracy_ci": [None, None], "trial": None, "config": None, "note": "a <note>"}
    ci = list(gain_ci) if n > 1 else [None, None]
    return {"study": "s<1>", "metric": "test macro F1", "test": {"dataset": "d", "documents": 10, "classes": 2},
            "seeds": list(range(n)), "ci_method": "Student's t", "rows": dict.fromkeys(ROWS, row),
            "gain": {"definition": "transfer - target only", "per_seed": [-0.1] * n, "mean": -0.1, "ci": ci},
            "verdict": verdict(*ci), "verdict_rule": "by the interval", "negative_transfer": is_negative_transfer(
                ci[1] if ci[1] is not None else float("nan"))}


@pytest.mark.parametrize(("ci", "said"), [((-2.98, 2.74), "inconclusive"), ((0.01, 0.05), "positive"),
                                          ((-0.05, -0.01), "NEGATIVE TRANSFER")])
def test_the_verdict_reads_the_whole_interval(ci, said, tmp_path):
    result = _result(5, gain_ci=ci)
    assert result["verdict"] == said
    line = gain_line(result)
    assert said in line
    assert not [other for other in ("positive", "NEGATIVE TRANSFER", "inconclusive") if other != said and other in line]
    write_outputs(result, tmp_path / "t.html")
    page = (tmp_path / "t.html").read_text()
    assert f'id="verdict">{said}' in page
    assert json.loads((tmp_path / "t.json").read_text())["verdict"] == said


def test_the_plot_keeps_f1_within_0_and_1_and_says_when_a_ci_was_clipped(tmp_path):
    from hpo.results.transfer.page import _figure

    wide = _result(3, f1_ci=(-2.0, 3.0))
    figure = _figure(wide)
    bars = figure.data[0]
    assert all(m - low == pytest.approx(0.0) and m + high == pytest.approx(1.0)
               for m, low, high in zip(bars.y, bars.error_y.arrayminus, bars.error_y.array, strict=True))
    assert tuple(figure.layout.yaxis.range) == (0, 1.02)
    write_outputs(wide, tmp_path / "wide.html")
    assert 'id="clipped"' in (tmp_path / "wide.html").read_text()
    write_outputs(_result(3), tmp_path / "narrow.html")
    assert 'id="clipped"' not in (tmp_path / "narrow.html").read_text()


def test_outputs_are_a_self_contained_page_and_json(tmp_path):
    write_outputs(_result(3), tmp_path / "out" / "t.html")
    page = (tmp_path / "out" / "t.html").read_text()
    assert "<script src=" not in page and "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inside
    assert "NEGATIVE TRANSFER" in page and "s&lt;1&gt;" in page and "a &lt;note&gt;" in page
    assert all(f'data-row="{row}"' in page for row in ROWS)
    assert json.loads((tmp_path / "out" / "t.json").read_text())["negative_transfer"] is True
    write_outputs(_result(1), tmp_path / "one.html")
    assert "undefined (n = 1)" in (tmp_path / "one.html").read_text()
    assert json.loads((tmp_path / "one.json").read_text())["gain"]["ci"] == [None, None]


def test_an_unknown_study_lists_the_studies(tmp_path):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    optuna.create_study(study_name="present", storage=url)
    with pytest.raises(HpoError, match=r"no study named 'absent'.*studies: present"):
        load_study("absent", url)
    study, got = load_study("present", url)
    assert study.study_name == "present" and got.url == url and got.display == url


# -- end to end on real tiny studies -------------------------------------------------------------------------


def _run_study(work, model_dir, *, name, n_trials, share):
    # one epoch, no pruning: every trial completes, so the study's trials are all candidates
    spec = write_study(work / f"{name}.yaml", model_dir, name=name, n_trials=n_trials, epochs=1,
                       pruner="{name: none}")
    study_from(spec, spec, {"search_space": {"target_weight": {"target_only_share": share}}})
    done = hpo_cli("run", str(spec), cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    url = f"sqlite:///{work / 'hpo.db'}"
    return optuna.load_study(study_name=name, storage=url), url


def _measure(study, url, output, seeds):
    buffer = io.StringIO()
    result = transfer_effect(study, seeds=seeds, output=output, storage=url,
                             console=Console(file=buffer, width=220))
    return result, buffer.getvalue()


def test_transfer_effect_end_to_end(tmp_path, tiny_model_dir):
    # a target-only share of 0.5 makes trials 1 and 3 of 4 target only: they pay half the target-only search
    study, url = _run_study(tmp_path, tiny_model_dir, name="tiny", n_trials=4, share=0.5)
    own = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if is_target_only(t)]
    assert [t.number for t in own] == [1, 3]

    result, shown = _measure(study, url, tmp_path / "out" / "transfer.html", seeds=2)

    assert list(result["rows"]) == list(ROWS)
    assert result["seeds"] == [0, 1]
    for name, row in result["rows"].items():
        assert len(row["f1"]) == len(row["accuracy"]) == 2, name
        assert all(0 <= v <= 1 for v in row["f1"] + row["accuracy"]), name
        low, high = row["f1_ci"]
        assert low is not None and high is not None and low <= row["f1_mean"] <= high, name
    zero = result["rows"]["zero-shot"]
    assert zero["f1"][0] == zero["f1"][1] and zero["f1_ci"] == [zero["f1_mean"]] * 2  # deterministic: width 0
    assert "money fx" in zero["config"]["label_texts"]
    documents = result["test"]["documents"]  # an encoder: the embedding zero-shot, on every test text by default
    assert result["zero_shot"] == {"method": "embedding", "texts": documents, "of": documents, "limit": None,
                                   "prompt_style": None, "prompt": None}

    # which configs: the best of a λ = 1 search with the study's budget (its own 2 target-only trials copied in as
    # the first two, 2 more searched), the study's best λ < 1 trial, a frozen probe of the former
    trials = {t.number: t for t in study.get_trials()}
    target_only, transfer = result["rows"]["target only"], result["rows"]["transfer"]
    assert {k: v for k, v in result["target_only"].items() if k != "rule"} == {
        "study": "tiny-target-only", "budget": 4, "copied_from_study": 2, "searched": 2}
    searched = optuna.load_study(study_name="tiny-target-only", storage=url)
    done = [t for t in searched.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 4 and sorted(t.user_attrs.get("copied_from") for t in done[:2]) == ["tiny:1", "tiny:3"]
    best = max((t for t in done if t.state == TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
    assert target_only["trial"] == {**target_only["trial"], "study": "tiny-target-only", "trial": best.number}
    assert target_only["config"]["target_weight"] == 1.0
    assert trials[transfer["trial"]["trial"]].params["target_weight"] < 1.0
    assert transfer["config"]["target_weight"] < 1.0
    probe = result["rows"]["linear probe"]
    assert probe["config"]["freeze_depth"] == 2 and probe["config"]["target_weight"] == 1.0  # the tiny BERT's layers
    assert probe["config"]["learning_rate"] == target_only["config"]["learning_rate"]

    # the first seed is the study's own seed: that fit repeats the search trial step for step
    assert transfer["value"][0] == pytest.approx(trials[transfer["trial"]["trial"]].value, abs=1e-6)
    assert target_only["value"][0] == pytest.approx(best.value, abs=1e-6)
    assert zero["value"] is None

    gain = result["gain"]
    expected = [t - o for t, o in zip(transfer["f1"], target_only["f1"], strict=True)]
    assert gain["per_seed"] == pytest.approx(expected, abs=1e-5)
    assert gain["ci"][0] <= gain["mean"] <= gain["ci"][1]
    assert result["negative_transfer"] == (gain["ci"][1] < 0)
    assert "Student's t" in result["ci_method"]

    for text in ("zero-shot", "linear probe", "target only", "transfer gain", "95% CI", "Student's t"):
        assert text in shown, text
    page = (tmp_path / "out" / "transfer.html").read_text()
    assert "Plotly.newPlot" in page and 'id="transfer-table"' in page and 'id="gain"' in page
    stored = json.loads((tmp_path / "out" / "transfer.json").read_text())
    assert stored["rows"]["transfer"]["f1"] == result["rows"]["transfer"]["f1"]
    assert stored["negative_transfer"] == result["negative_transfer"]


def test_a_study_without_target_only_trials_searches_the_whole_budget_at_lambda_1(tmp_path, tiny_model_dir):
    study, url = _run_study(tmp_path, tiny_model_dir, name="few", n_trials=3, share=0.0)
    assert not [t for t in study.get_trials() if is_target_only(t)]

    result, shown = _measure(study, url, tmp_path / "few.html", seeds=1)

    searched = optuna.load_study(study_name="few-target-only", storage=url)
    trials = searched.get_trials()
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 3  # the same budget
    stored_spec = yaml.safe_load(provenance_of(searched)["spec_text"])
    assert stored_spec["search_space"]["target_weight"] == 1.0  # fixed: every trial at λ = 1
    assert all(t.params.get("target_weight", 1.0) == 1.0 for t in trials)
    assert searched.user_attrs["target_only_of"] == "few"
    assert "target-only search" in shown

    assert result["target_only"]["study"] == "few-target-only" and result["target_only"]["searched"] == 3
    assert result["target_only"]["copied_from_study"] == 0
    assert result["rows"]["target only"]["trial"]["study"] == "few-target-only"
    assert result["rows"]["target only"]["config"]["target_weight"] == 1.0
    assert result["rows"]["transfer"]["trial"]["study"] == "few"
    # one seed: the intervals are undefined and nothing is flagged
    assert result["gain"]["ci"] == [None, None] and result["negative_transfer"] is False
    assert result["verdict"] == "inconclusive" and "one seed gives no interval" in shown
    assert json.loads((tmp_path / "few.json").read_text())["rows"]["zero-shot"]["f1_ci"] == [None, None]
