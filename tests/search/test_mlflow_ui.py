"""The MLflow UI, pointed at the store a tracked study wrote, shows one parent run and a child run per trial with
its step curve: a real study, the real `mlflow server` (the full package, in a venv of its own: its dependencies
clash with kubernetes' in ours) and headless Chromium, as the dashboard test does."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from hpo.search.worker import run_study
from hpo.spec import load_study_file
from tests.builders import REPO, browse_page, free_port, page_text, study_from, wait_for, write_study
from tests.ci import unavailable

ARTIFACTS = REPO / "tests" / "artifacts"
# The UI draws its charts after the page has settled: run every compositor stage and give it virtual time.
RENDER = ("--run-all-compositor-stages-before-draw", "--window-size=1400,1000")
RENDER_MS = 90000


@pytest.fixture(scope="session")
def mlflow_server_bin(tmp_path_factory) -> Path:
    """`mlflow` of the full package at the version of our mlflow-skinny (a server refuses a store written by a newer
    one), installed once into a cache venv."""
    version = importlib.metadata.version("mlflow-skinny")
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "transfer-hpo-tests" / f"mlflow-{version}"
    server = venv / "bin" / "mlflow"
    if not server.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"mlflow=={version}"], capture_output=True,
                             text=True, timeout=900) if made.returncode == 0 else made
        if pip.returncode != 0:
            unavailable(f"could not install mlflow=={version} for the UI: {(pip.stdout + pip.stderr)[-1500:]}")
    return server


def _page(chromium: str, url: str, profile: Path, *args: str) -> str:
    return page_text(browse_page(chromium, url, profile, *RENDER, *args, budget_ms=RENDER_MS).stdout)


def _api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_the_mlflow_ui_shows_the_parent_and_a_child_run_per_trial_with_its_step_curve(
        tmp_path, tiny_model_dir, chromium, mlflow_server_bin):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base_file = write_study(tmp_path / "base.yaml", tiny_model_dir, epochs=1, n_trials=3, pruner="none")
    spec, text = load_study_file(study_from(base_file, tmp_path / "tiny.yaml",
                                            {"trackers": {"mlflow": {"tracking_uri": uri, "experiment": "transfer"}}}))
    run_study(spec, text, source="tiny.yaml", storage=f"sqlite:///{tmp_path / 'hpo.db'}",
              console=Console(file=io.StringIO()))

    port = free_port()
    server = subprocess.Popen([str(mlflow_server_bin), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> dict | None:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                return _api(base, "experiments/get-by-name?experiment_name=transfer")
            except OSError:
                return None

        experiment = wait_for(answers, 180, "the MLflow server")["experiment"]["experiment_id"]
        runs = _api(base, "runs/search", {"experiment_ids": [experiment]})["runs"]
        children = {r["info"]["run_name"]: r["info"]["run_id"] for r in runs
                    if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))}
        assert sorted(children) == ["0", "1", "2"] and len(runs) == 4  # a child is named by its trial number

        listing = _page(chromium, f"{base}/#/experiments/{experiment}/runs", tmp_path / "p1", "--dump-dom")
        assert "tiny" in listing and "4 matching runs" in listing, listing[:2000]
        child = f"{base}/#/experiments/{experiment}/runs/{children['1']}/model-metrics"
        chart = _page(chromium, child, tmp_path / "p2", "--dump-dom")
        # The chart drawn: its title, the step axis and the run's trace in the legend.
        assert re.search(r"val_f1 .*\bStep\b.* 1 \(val_f1\)", chart), chart[:3000]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        _page(chromium, child, tmp_path / "p3", f"--screenshot={ARTIFACTS / 'mlflow-child-run.png'}")
        assert (ARTIFACTS / "mlflow-child-run.png").stat().st_size > 20_000
    finally:
        server.terminate()
        server.wait(timeout=30)
