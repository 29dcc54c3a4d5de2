"""The Python API (`hpo.run`, `hpo.load`, `hpo.retrain`, `hpo.evaluate`, `hpo.predict`): the README's example run as
written on a tiny model, and every workflow's function giving what its command gives on the same study."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import yaml
from rich.console import Console

import hpo
from hpo.results.records import TRIAL_FIELDS
from tests.builders import REPO, cli, write_study

START, END = "<!-- api-example -->", "<!-- /api-example -->"
# The README's example until the README carries it between the markers above; then the README's text is what runs.
EXAMPLE = '''\
import hpo

# Run a study until its budget is spent: a study file's path, or a dict of the same fields. Silent unless
# progress=True (the live display and summary of `hpo run`). Storage as the CLI resolves it: sqlite:///hpo.db here.
result = hpo.run("studies/quickstart.yaml")
best = result.best(1)[0]                       # typed records, as `hpo best quickstart -f json` prints them
print(f"best: trial {best.number}, val F1 {best.value:.4f}, {best.params}")
print(result.to_dataframe()[["number", "state", "value", "epochs_run"]])   # pandas, one row per trial

# Later, or in another process: the stored study by name.
result = hpo.load("quickstart")
result.export("best.yaml")                     # the best trial as a runnable study file (`hpo export`)

trained = hpo.retrain("best.yaml", out="model")  # retrain it, save a Hugging Face classifier, test it (`hpo train`)
print(f"test macro F1 {trained.test['f1']['macro']:.4f}")
metrics = hpo.evaluate("model")                # the saved model on the test split again (`hpo evaluate`)
texts = ["Crude oil prices rose sharply in early trading", "The company reported higher quarterly profit"]
for text, prediction in zip(texts, hpo.predict("model", texts)):
    print(f"{prediction.label:>10}  p={prediction.probabilities[prediction.label]:.2f}  {text}")

# What the CLI prints as a one-line error is an exception here, naming the field.
try:
    hpo.run({"name": "broken", "search_space": {"learning_rate": {"low": -1e-5, "high": 1e-3}}})
except hpo.SpecError as error:
    print(error)
'''


def readme_example() -> str | None:
    """The python block between the markers in README.md, or None while the README has none."""
    text = (REPO / "README.md").read_text()
    if START not in text:
        return None
    block = text.split(START, 1)[1].split(END, 1)[0]
    return block.split("```python\n", 1)[1].rsplit("```", 1)[0]


@contextlib.contextmanager
def inside(directory: Path):
    """The working directory and a storage resolved as a user's would be (no HPO_STORAGE from the test's shell)."""
    from hpo.settings import settings

    saved, env = os.getcwd(), dict(os.environ)
    os.environ.pop("HPO_STORAGE", None)
    settings.cache_clear()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(saved)
        os.environ.clear()
        os.environ.update(env)
        settings.cache_clear()


@pytest.fixture(scope="module")
def example(tmp_path_factory, tiny_model_dir):
    """The README's example, run as written in a directory whose studies/quickstart.yaml is a tiny study (the real
    quickstart fine-tunes MiniLM for minutes): its namespace, what it printed, and how long it took."""
    work = tmp_path_factory.mktemp("api-example")
    (work / "studies").mkdir()
    write_study(work / "studies" / "quickstart.yaml", tiny_model_dir, name="quickstart", n_trials=3, epochs=1)
    namespace: dict = {}
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with inside(work), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exec(compile(readme_example() or EXAMPLE, "README.md (api-example)", "exec"), namespace)
    return {"dir": work, "ns": namespace, "out": out.getvalue(), "err": err.getvalue(),
            "seconds": time.monotonic() - started}


def cli_json(*args: str, cwd: Path):
    done = cli(*args, "-f", "json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_holds_the_example_this_file_runs():
    assert readme_example() is not None, f"README.md has no {START} block: paste tests/test_api.py's EXAMPLE there"
    assert readme_example() == EXAMPLE


def test_the_readme_example_runs_end_to_end_within_a_minute(example):
    ns, out = example["ns"], example["out"]
    assert example["seconds"] < 60, f"{example['seconds']:.0f} s"
    assert isinstance(ns["result"], hpo.StudyResult) and len(ns["result"].trials) == 3
    assert isinstance(ns["best"], hpo.TrialRecord) and ns["best"].state == "COMPLETE"
    assert isinstance(ns["trained"], hpo.Retrained) and isinstance(ns["metrics"], hpo.TestMetrics)
    assert (example["dir"] / "model" / "metrics.json").exists() and (example["dir"] / "best.yaml").exists()
    assert f"best: trial {ns['best'].number}, val F1 {ns['best'].value:.4f}" in out
    assert "[search_space -> learning_rate -> low] input should be greater than 0" in out
    assert len([line for line in out.splitlines() if "  p=" in line]) == 2
    assert example["err"] == ""  # no progress asked: nothing printed but what the example prints


def test_trials_and_best_are_the_records_the_cli_prints(example):
    work, result = example["dir"], example["ns"]["result"]
    assert [asdict(t) for t in result.trials] == cli_json("trials", "quickstart", cwd=work)
    assert [asdict(t) for t in result.best(2)] == cli_json("best", "quickstart", "--top", "2", cwd=work)
    assert hpo.load("quickstart", storage=f"sqlite:///{work / 'hpo.db'}") == result
    assert tuple(f.name for f in fields(hpo.TrialRecord)) == TRIAL_FIELDS  # one schema: the CLI's


def test_status_is_what_hpo_status_prints(example):
    work, result = example["dir"], example["ns"]["result"]
    status = cli_json("status", "quickstart", cwd=work)
    assert json.loads(json.dumps(result.status(), default=str)) == status
    assert status["best"] == asdict(result.best(1)[0])


def test_exports_are_the_files_hpo_export_writes(example):
    work, result = example["dir"], example["ns"]["result"]

    def without_clock(path: Path) -> dict:  # the one field that differs: when it was exported
        exported = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
        exported.get("exported_from", {}).pop("exported_at", None)
        return exported

    for args, name in ((["--top", "2"], "top.yaml"), (["--trial", "0"], "t0.yaml"),
                       (["--format", "training-args"], "args.json")):
        assert cli("export", "quickstart", "-o", str(work / f"cli-{name}"), *args, cwd=work).returncode == 0
        options = {"--top": ("top", int), "--trial": ("trial", int), "--format": ("format", str)}
        keyword, kind = options[args[0]]
        done = result.export(work / f"api-{name}", **{keyword: kind(args[1])})
        assert f"to {work / f'api-{name}'}" in done.message
        assert without_clock(work / f"api-{name}") == without_clock(work / f"cli-{name}"), name


def test_the_dataframe_holds_every_trial_and_parameter(example):
    result = example["ns"]["result"]
    frame = result.to_dataframe()
    assert list(frame["number"]) == [t.number for t in result.trials]
    assert list(frame["value"]) == [t.value for t in result.trials]
    for name in result.trials[0].params:
        assert list(frame[f"params_{name}"]) == [t.params[name] for t in result.trials]


def test_train_evaluate_and_predict_give_what_the_commands_give(example):
    work, ns = example["dir"], example["ns"]
    assert cli("train", "best.yaml", "--out", "cli-model", cwd=work).returncode == 0
    by_cli = json.loads((work / "cli-model" / "metrics.json").read_text())
    assert by_cli["test"] == ns["trained"].test and by_cli["validation"] == asdict(ns["trained"].validation)

    assert cli("evaluate", "model", cwd=work).returncode == 0
    assert json.loads((work / "model" / "test_metrics.json").read_text()) == ns["metrics"].to_dict()

    (work / "texts.txt").write_text("\n".join(ns["texts"]) + "\n")
    assert cli("predict", "model", "texts.txt", "-o", "labels.json", cwd=work).returncode == 0
    rows = json.loads((work / "labels.json").read_text())
    predictions = hpo.predict(work / "model", ns["texts"])
    assert [row["label"] for row in rows] == [p.label for p in predictions]
    for row, prediction in zip(rows, predictions, strict=True):
        assert {k[2:]: v for k, v in row.items() if k.startswith("p_")} == pytest.approx(prediction.probabilities)


def test_a_dict_study_runs_silently_and_a_console_shows_the_summary(example, capfd):
    spec = yaml.safe_load((example["dir"] / "studies" / "quickstart.yaml").read_text())
    url = f"sqlite:///{example['dir'] / 'dict.db'}"
    result = hpo.run({**spec, "name": "from-dict", "n_trials": 1}, storage=url)
    assert capfd.readouterr() == ("", "")
    assert result.name == "from-dict" and result.budget == 1 and len(result.trials) == 1
    shown = io.StringIO()
    again = hpo.run({**spec, "name": "from-dict"}, storage=url, n_trials=1, progress=Console(file=shown, width=500))
    assert again.message is not None and "is finished: 1 of 1 trials done" in again.message
    assert again.message in shown.getvalue()


def test_a_bad_dict_is_refused_with_the_problems_a_file_gets(tmp_path):
    study = {"name": "bad", "model": {"id": "bundled:all-MiniLM-L6-v2"}, "source": {"builtin": "20newsgroups"},
             "target": {"builtin": "reuters"}, "n_trials": 2,
             "search_space": {"learning_rate": {"low": -1e-5, "high": 1e-3}}}
    with pytest.raises(hpo.SpecError) as from_dict:
        hpo.run(study)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(hpo.SpecError) as from_file:
        hpo.run(tmp_path / "bad.yaml")
    assert from_dict.value.problems == from_file.value.problems
    assert {path for path, _ in from_dict.value.problems} == {"target -> builtin",
                                                              "search_space -> learning_rate -> low"}
    assert str(from_dict.value).startswith("study dict: 2 problems")


@pytest.mark.parametrize("call, said", [
    (lambda: hpo.run(42), "give a study file's path or a dict"),
    (lambda: hpo.run({"name": "x", "model": {"id": print}}), "not writable as a study file"),
    (lambda: hpo.run("absent.yaml", n_trials=0), "n_trials must be a whole number of at least 1 (got 0)"),
    (lambda: hpo.load("../etc"), "is not a study name"),
    (lambda: hpo.retrain("best.yaml", out="m", train_on="all"), "train_on must be one of train, train+validation"),
    (lambda: hpo.predict("model", "one text"), "give a list of strings, not a str"),
    (lambda: hpo.evaluate("absent-dir"), "absent-dir: no such directory"),
    (lambda: hpo.transfer_effect("tiny", output="-"), "transfer_effect writes two files"),
])
def test_bad_arguments_are_hpo_errors_saying_what_is_wrong(tmp_path, monkeypatch, call, said):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hpo.HpoError) as raised:
        call()
    assert said in str(raised.value)


def test_result_methods_check_their_arguments(example):
    result = example["ns"]["result"]
    with pytest.raises(hpo.HpoError, match=r"k must be a whole number of at least 1 \(got 0\)"):
        result.best(0)
    with pytest.raises(hpo.HpoError, match="format must be one of yaml, training-args"):
        result.export(example["dir"] / "x.yaml", format="csv")


def test_import_hpo_stays_light_and_load_never_imports_torch(tmp_path):
    probe = ("import sys\nimport hpo\nlight = [m for m in ('optuna', 'torch', 'pandas') if m in sys.modules]\n"
             "hpo.load\nheavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
             "print(light, heavy, sorted(set(hpo.__all__) - set(dir(hpo))))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[] [] []", done.stderr[-2000:]
