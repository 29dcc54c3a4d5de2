"""Small things tests build: tiny encoders, token batches, study files, the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpo.train.tokens import Encoded

REPO = Path(__file__).resolve().parents[1]


class SilentReporter:
    """The objective's progress reporter, for tests that watch the study instead."""

    def trial_started(self, *args): ...
    def step(self, *args): ...
    def evaluated(self, *args): ...


def tiny_encoder(kind: str) -> torch.nn.Module:
    from transformers import AutoModel, BertConfig, DistilBertConfig, RobertaConfig

    torch.manual_seed(0)
    configs = {
        "bert": BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64),
        # MiniLM-L6 is a BERT with a 384-wide hidden layer and 12 heads; this keeps its shape ratios
        "minilm": BertConfig(vocab_size=200, hidden_size=48, num_hidden_layers=4, num_attention_heads=12,
                             intermediate_size=192, max_position_embeddings=64),
        "roberta": RobertaConfig(vocab_size=200, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=70, pad_token_id=1),
        "distilbert": DistilBertConfig(vocab_size=200, dim=32, n_layers=4, n_heads=2, hidden_dim=64,
                                       max_position_embeddings=64),
    }
    encoder = AutoModel.from_config(configs[kind])
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def one_batch(n: int = 8, width: int = 12, n_classes: int = 3) -> Encoded:
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, width, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(5, 200, size=int(offsets[-1])).astype(np.int32)
    return Encoded(ids, offsets, np.arange(n) % n_classes)


def write_study(
    path: Path, model_dir: Path, *, name: str = "tiny", n_trials: int = 4, extra: str = "", epochs: int = 2,
    target_samples: int = 160, pruner: str = "{name: median, n_startup_trials: 2}",
) -> Path:
    """A small real study: R8 from 20 Newsgroups, subsampled, on a tiny local model."""
    path.write_text(f"""
name: {name}
model: {{id: {model_dir}}}
source: {{builtin: 20newsgroups, max_samples: 96}}
target: {{builtin: reuters-r8, max_samples: {target_samples}}}
validation_size: 48
training: {{epochs: {epochs}, batch_size: 16, max_length: 32, evaluations_per_epoch: 2, learning_rate: 1.0e-3}}
search_space:
  learning_rate: {{low: 1.0e-4, high: 3.0e-3, log: true}}
  target_weight: {{low: 0.3, high: 1.0, target_only_share: 0.25}}
  freeze_depth: {{low: 0, high: 2}}
  l1: {{choices: [0.0, 1.0e-6]}}
  l2: {{choices: [0.0, 1.0e-4]}}
sampler: {{name: tpe, n_startup_trials: 2}}
pruner: {pruner}
n_trials: {n_trials}
{extra}
""")
    return path


FAST_HEARTBEAT = {"HPO_HEARTBEAT_S": "1", "HPO_GRACE_S": "5"}


def _environment(env: dict[str, str] | None, barrier: Path | None = None) -> dict[str, str]:
    environment = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore", **barrier_env(barrier), **(env or {})}
    if "HPO_STORAGE" not in (env or {}):
        environment.pop("HPO_STORAGE", None)
    return environment


def start_hpo(*args: str, cwd: Path, log: Path | None = None, env: dict[str, str] | None = None,
              barrier: Path | None = None) -> subprocess.Popen:
    """The real `hpo` command in the background, as a user starts it, output to `log` (or a pipe); with
    `barrier`, its first reported trial stops mid-way until released (tests/barrier_site)."""
    out = log.open("w") if log is not None else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "hpo", *args], cwd=cwd, env=_environment(env, barrier),
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def start_worker(spec: Path, url: str, cwd: Path, log: Path, *, barrier: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`hpo run SPEC --storage URL` in the background with fast heartbeats (`start_hpo`)."""
    return start_hpo("run", str(spec), "--storage", url, cwd=cwd, log=log, env={**FAST_HEARTBEAT, **(env or {})},
                     barrier=barrier)


def barrier_env(barrier: Path | None, holders: int = 1) -> dict[str, str]:
    """The environment that puts the first reported trial of the first `holders` workers behind `barrier`
    (tests/barrier_site)."""
    if barrier is None:
        return {}
    barrier.mkdir(parents=True, exist_ok=True)
    site = str(REPO / "tests" / "barrier_site")
    return {"HPO_TEST_BARRIER": str(barrier), "HPO_TEST_BARRIER_HOLDERS": str(holders),
            "PYTHONPATH": os.pathsep.join([site, *filter(None, [os.environ.get("PYTHONPATH")])])}


def reach_barriers(barrier: Path, process: subprocess.Popen, holders: int, log: Path | None = None,
                   timeout: float = 180) -> list[dict]:
    """Wait until `holders` workers of `process` stand at the barrier; returns what each wrote (pid, trial)."""
    import json

    files = [barrier / ("reached" if k == 0 else f"reached-{k}") for k in range(holders)]
    deadline = time.monotonic() + timeout
    while not all(f.exists() for f in files):
        if process.poll() is not None or time.monotonic() > deadline:
            shown = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{sum(f.exists() for f in files)} of {holders} workers reached the barrier:\n"
                                 f"{shown}")
        time.sleep(0.05)
    return [json.loads(f.read_text()) for f in files]


def reach_barrier(barrier: Path, process: subprocess.Popen, log: Path | None = None, timeout: float = 180) -> dict:
    """Wait until a worker of `process` stands at its barrier; returns what it wrote (pid, trial number)."""
    return reach_barriers(barrier, process, 1, log, timeout)[0]


DELETE = object()  # an override that removes the key


def study_from(source: Path, path: Path, overrides: dict) -> Path:
    """A copy of the study file `source` at `path` with `overrides` merged in: nested mappings are merged key by
    key, any other value replaces the old one, DELETE removes the key. Structured, so no test edits YAML text."""
    import yaml

    def merge(into: dict, changes: dict) -> dict:
        for key, value in changes.items():
            if value is DELETE:
                into.pop(key, None)
            elif isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value
        return into

    raw = yaml.safe_load(Path(source).read_text())
    path.write_text(yaml.safe_dump(merge(raw, overrides), sort_keys=False))
    return path


def figure_data(page: str, figure_id: str) -> list[dict]:
    """The traces of a plotly figure in an HTML page written by plotly's `to_html(div_id=figure_id)`."""
    import json

    start = page.index(f'"{figure_id}",', page.index("Plotly.newPlot(", page.index(f'id="{figure_id}"')))
    traces, _ = json.JSONDecoder().raw_decode(page[start + len(figure_id) + 3:].lstrip())
    return traces


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """The real `hpo` entry point (`hpo.cli.main`, its error handling included) in this process, in `cwd`: for
    the many refusals that need no worker process. An exception that escapes it fails the test, as a traceback
    would show the user."""
    import contextlib
    import io

    from hpo.cli import main
    from hpo.settings import settings

    out, err = io.StringIO(), io.StringIO()
    saved = os.getcwd(), sys.argv, dict(os.environ)
    os.environ.pop("HPO_STORAGE", None)
    os.environ.update(env or {})
    settings.cache_clear()
    os.chdir(cwd)
    sys.argv = ["hpo", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
        settings.cache_clear()
    return CliResult(code, out.getvalue(), err.getvalue())


def hpo_cli(*args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None):
    """Run the real `hpo` command in a subprocess, as a user would, and wait for it."""
    return subprocess.run([sys.executable, "-m", "hpo", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_environment(env))


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  # offline: any fetch by host name fails; pages on 127.0.0.1 still load
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def browse_page(chromium: str, url: str, profile: Path, *args: str,
                budget_ms: int = 10000) -> subprocess.CompletedProcess:
    """Load `url` in headless Chromium after its scripts ran for `budget_ms` of virtual time (`--dump-dom`,
    `--screenshot=...` in args)."""
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}",
                           f"--user-data-dir={profile}", *args, url], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def page_text(dom: str) -> str:
    """The visible text of a dumped DOM: scripts and styles dropped, tags stripped, whitespace folded."""
    import re

    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, detail: Callable[[], str] = str) -> object:
    """Poll `predicate` until it returns something truthy; a KeyError means the study does not exist yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except KeyError:
            found = None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
