"""The source task as a search dimension: each trial draws one candidate (stored as its `source` parameter), `none`
trains on the target alone (λ = 1, a target-only trial), a candidate no trial draws is never loaded, and each
source's tokenised and frozen-layer caches serve every trial that draws it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from tests.builders import DELETE, cli, hpo_cli, study_from, write_study


def _csv(path: Path, labels: list[str]) -> Path:
    pd.DataFrame({"text": [f"document {i} on {label} matters" for i, label in enumerate(labels)],
                  "label": labels}).to_csv(path, index=False)
    return path


def _study(tmp_path: Path, model_dir: Path, *, share: float = 0.0, n_trials: int = 3) -> Path:
    _csv(tmp_path / "a.csv", ["x", "y", "z"] * 30)
    (tmp_path / "broken.csv").write_text('text,label\n"never closed,\n')  # loading it would fail
    spec = write_study(tmp_path / "s.yaml", model_dir, n_trials=n_trials, epochs=1, pruner="{name: none}")
    study_from(spec, spec, {"source": DELETE})
    return study_from(spec, spec, {
        "source": {"choices": [{"path": "a.csv"}, {"path": "broken.csv"}, "none"]},
        "search_space": {"freeze_depth": 1, "target_weight": {"low": 0.3, "high": 1.0, "target_only_share": share}},
    })


def _enqueue(tmp_path: Path, sources: list[str]) -> Path:
    import yaml

    queued = tmp_path / "queued.yaml"
    origin = {"study": "x", "spec_sha256": "0" * 64, "data": {}, "model": {}, "packages": {},
              "exported_at": "2026-01-01T00:00:00+00:00"}
    queued.write_text(yaml.safe_dump({"exported_from": origin, "configs": [
        {"params": {"source": s, "learning_rate": 1e-3, "target_weight": 0.5}} for s in sources]}))
    return queued


def test_trials_draw_a_source_none_is_target_only_and_a_source_never_drawn_never_loads(tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir)
    queued = _enqueue(tmp_path, ["a.csv", "none", "a.csv"])
    # a cache of its own: the first trial must build the frozen-layer outputs, whatever earlier runs left behind
    own_cache = {"HPO_CACHE": str(tmp_path / "cache")}
    done = hpo_cli("run", str(spec), "--enqueue", str(queued), cwd=tmp_path, env=own_cache)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.params["source"] for t in trials] == ["a.csv", "none", "a.csv"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    none = trials[1]
    assert none.user_attrs.get("target_only") is True and "target_weight" not in none.params
    # the second a.csv trial found the first one's frozen-layer outputs of that source: nothing to compute
    first, again = trials[0].user_attrs["reuse"], trials[2].user_attrs["reuse"]
    assert first["misses"] > 0 and again["misses"] == 0 and again["hits"] > 0
    # broken.csv was never drawn, so never read (reading it fails: validate, which checks every candidate, says so)
    checked = cli("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 1
    assert "[source -> choices -> 1]" in checked.stderr and "broken.csv" in checked.stderr


def test_the_reserved_target_only_trials_are_the_none_source(tmp_path, tiny_model_dir):
    spec = _study(tmp_path, tiny_model_dir, share=0.5, n_trials=4)
    study_from(spec, spec, {"source": DELETE})
    study_from(spec, spec, {"source": {"choices": [{"path": "a.csv"}, "none"]}, "sampler": {"name": "random"}})
    done = hpo_cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    drawn = [t.params["source"] for t in sorted(study.trials, key=lambda t: t.number)]
    # the share is kept at every point of the study, whatever the sampler drew: after k trials, ⌊k/2⌋ are none
    assert all(drawn[:k].count("none") >= k // 2 for k in range(1, 5)), drawn
    assert all(t.user_attrs.get("target_only") for t in study.trials if t.params["source"] == "none")


def test_status_and_the_report_show_the_best_value_of_each_source(tmp_path, tiny_model_dir):
    import json

    spec = _study(tmp_path, tiny_model_dir)
    done = hpo_cli("run", str(spec), "--enqueue", str(_enqueue(tmp_path, ["a.csv", "none", "a.csv"])), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    status = json.loads(hpo_cli("status", "tiny", "-f", "json", cwd=tmp_path).stdout)
    expected = []
    for key in ("a.csv", "none"):
        mine = [t for t in study.trials if t.params["source"] == key]
        best = max(mine, key=lambda t: t.value)
        expected.append({"source": key, "complete": len(mine), "pruned": 0, "best": best.value,
                         "best_trial": best.number})
    assert status["sources"] == expected
    shown = " ".join(hpo_cli("status", "tiny", cwd=tmp_path).stdout.split())
    assert "sources" in shown and f"{expected[0]['best']:.4f}" in shown

    reported = hpo_cli("report", "tiny", "-o", "report.html", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert 'id="fig-sources"' in page
    assert f"a.csv: {expected[0]['best']:.4f} (trial {expected[0]['best_trial']})" in page


def test_transfer_effect_measures_the_best_config_of_each_source(tmp_path, tiny_model_dir):
    import io

    from rich.console import Console

    from hpo.results.transfer import transfer_effect

    _csv(tmp_path / "b.csv", ["p", "q"] * 40)
    spec = _study(tmp_path, tiny_model_dir, n_trials=4)
    study_from(spec, spec, {"source": DELETE})
    study_from(spec, spec, {"source": {"choices": [{"path": "a.csv"}, {"path": "b.csv"}, "none"]}})
    queued = _enqueue(tmp_path, ["a.csv", "b.csv", "none", "a.csv"])
    done = hpo_cli("run", str(spec), "--enqueue", str(queued), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    study = optuna.load_study(study_name="tiny", storage=url)
    out = io.StringIO()
    result = transfer_effect(study, seeds=2, output=tmp_path / "t.html", storage=url,
                             console=Console(file=out, width=200))
    by_source = {item["source"]: item for item in result["sources"]}
    assert set(by_source) == {"a.csv", "b.csv"}  # none is the target-only row, not a transfer
    best = max((t for t in study.trials if t.params["source"] != "none"), key=lambda t: t.value)
    primary = by_source[best.params["source"]]
    other = by_source[({"a.csv", "b.csv"} - {best.params["source"]}).pop()]
    assert primary["row"] == "transfer" and other["row"] == f"transfer · {other['source']}"
    assert len(result["rows"][other["row"]]["f1"]) == 2
    assert result["rows"]["transfer"]["trial"]["trial"] == best.number
    # the target-only row comes from a λ = 1 search that trains on no source at all
    searched = optuna.load_study(study_name="tiny-target-only", storage=url)
    assert all("source" not in t.params or t.params["source"] == "none" for t in searched.trials)
    page = (tmp_path / "t.html").read_text()
    assert 'id="source-table"' in page and 'data-source="b.csv"' in page
    assert "source a.csv: gain" in out.getvalue() and "source b.csv: gain" in out.getvalue()
