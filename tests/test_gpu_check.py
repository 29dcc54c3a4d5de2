"""The GPU check is ready for a lent machine: its carry fits the 60 MiB the device tool takes, and its code
paths (loop and Trainer fits, a LoRA tiny-Llama fit, packed trial processes of both kinds) run end to end as a CPU
miniature."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders import REPO


def test_the_carry_fits_what_travels_to_the_gpu_machine():
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "prepare", "--dry-run"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    carry = next(line for line in done.stdout.splitlines() if line.startswith("carry"))
    assert float(carry.split()[1]) <= 60


def test_the_cpu_miniature_runs_every_part(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "run", "--cpu-miniature", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    (fit,) = figures["fits"]
    assert fit["loop"]["samples_per_s"] > 0 and fit["Trainer"]["samples_per_s"] > 0
    assert 0 <= fit["loop"]["test_macro_f1"] <= 1 and 0 <= fit["Trainer"]["test_macro_f1"] <= 1
    assert set(figures["packed"]) == {"1", "2"} and all(rate > 0 for rate in figures["packed"].values())
    assert set(figures["packed_lora"]) == {"1", "2"} and all(rate > 0 for rate in figures["packed_lora"].values())
    lora = figures["lora_llama"]
    assert lora["samples_per_s"] > 0 and 0 < lora["trainable_params"] < 1_000_000 and lora["precision"] == "fp32"
    assert figures["oom"] == "skipped: no CUDA device"
