"""`hpo dashboard` serves optuna-dashboard on the study's storage, on 127.0.0.1; a real browser sees the study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.builders import REPO, browse_page, free_port, hpo_cli, page_text, write_study

ARTIFACTS = REPO / "tests" / "artifacts"


def test_dashboard_lists_the_study_with_its_trials(tmp_path, tiny_model_dir, chromium):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=3)
    assert hpo_cli("run", str(spec), cwd=tmp_path).returncode == 0
    port = free_port()
    env = {**os.environ, "HPO_STORAGE": f"sqlite:///{tmp_path / 'hpo.db'}"}
    server = subprocess.Popen([sys.executable, "-m", "hpo", "dashboard", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        api = _get_json(f"{base}/api/studies", server)
        (summary,) = api["study_summaries"]
        assert summary["study_name"] == "tiny"
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}?after=0", server)
        assert len(detail["trials"]) == 3
        assert detail["objective_names"] == ["val_f1"]

        listing = page_text(browse_page(chromium, f"{base}/dashboard", tmp_path / "p1", "--dump-dom").stdout)
        assert "1. tiny" in listing
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page = f"{base}/dashboard/studies/{summary['study_id']}"
        shown = browse_page(chromium, page, tmp_path / "p2", "--dump-dom", "--window-size=1400,1200")
        study_page = page_text(shown.stdout)
        best = max((t for t in detail["trials"] if t["state"] == "Complete"), key=lambda t: t["values"][0])
        assert "tiny (id=" in study_page and "val_f1" in study_page
        assert f"Best Trial (number={best['number']})" in study_page
        browse_page(chromium, page, tmp_path / "p3", f"--screenshot={ARTIFACTS / 'dashboard.png'}",
                    "--window-size=1400,1200")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "http://127.0.0.1:" in server.stdout.read()  # listens on loopback unless told otherwise


def _get_json(url: str, server: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read() if server.stdout else ''
                raise AssertionError(f"dashboard did not answer: {output}") from None
            time.sleep(0.3)


def test_dashboard_help_documents_host_and_port():
    done = subprocess.run([sys.executable, "-m", "hpo", "dashboard", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).parent, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    assert "--host" in done.stdout and "127.0.0.1" in done.stdout and "--port" in done.stdout
