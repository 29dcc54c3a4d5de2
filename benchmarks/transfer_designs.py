"""Does transfer pay? Two designs, declared here before they were run, run in full and reported whichever way.

Declared designs (fixed before the first run; every one is run and reported, none is dropped)
-------------------------------------------------------------------------------------------
Target (both designs): `amazon-snippets`, 128 labelled documents (`max_samples: 128`, stratified and seeded), 32
of them the validation split (documents, not a fraction), the rest (96) to train on; the test split (645 texts) is
read only by `hpo transfer-effect`. Model: the bundled MiniLM. Search: 12 trials (TPE, 4 startup trials,
Hyperband with reduction factor 2, a quarter of the trials target only), over learning rate, λ, freeze depth 0-4
and `source_batches_per_step` 1/2/4; 4 epochs, max length 64.

1. primary, `studies/sentiment-low-resource.yaml`: source `movie-snippets` (2,048 movie-review sentences): the
   related task. Hypothesis: the transfer gain (best transfer config minus the best target-only config found with
   the same budget, paired by seed, test macro-F1) has a 95% t interval wholly above 0.
2. control, `studies/unrelated-source.yaml`: source `trec` (2,048 questions, 6 types): an unrelated task.
   Hypothesis: the primary's gain minus the control's gain, paired by seed, has a 95% t interval above 0.

Seeds: `hpo transfer-effect --seeds 10` (the study's training seed 0 .. 9) for each design. The two designs'
target-only rows are separate searches (each study's own λ = 1 search), so the control's difference pairs the two
gains by seed.

    .venv/bin/python -m benchmarks.transfer_designs [--out DIR] [--seeds 10]

Writes DIR/designs.db (the studies), DIR/NAME.html and DIR/NAME.json (`hpo transfer-effect`'s page and JSON) and
DIR/transfer_designs.json (the table below). `--quick` runs 2 trials and 2 seeds: a smoke test, its figures mean
nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from hpo.results.transfer.stats import mean_ci

REPO = Path(__file__).resolve().parents[1]
DESIGNS = {"primary": "sentiment-low-resource", "control": "unrelated-source"}


def _hpo(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hpo", *args], cwd=REPO, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"hpo {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def run_design(name: str, out: Path, seeds: int, quick: bool) -> dict[str, Any]:
    """`hpo run` of the shipped study file, then `hpo transfer-effect`: the JSON it wrote, and the wall times."""
    study = REPO / "studies" / f"{name}.yaml"
    if quick:
        raw = yaml.safe_load(study.read_text())
        raw.update(n_trials=2, training={**raw["training"], "epochs": 1})
        study = out / f"{name}.yaml"
        study.write_text(yaml.safe_dump(raw, sort_keys=False))
    storage = f"sqlite:///{out / 'designs.db'}"
    started = time.perf_counter()
    _hpo("run", str(study), "--storage", storage)
    searched = time.perf_counter()
    _hpo("transfer-effect", name, "--seeds", str(seeds), "--storage", storage, "-o", str(out / f"{name}.html"))
    result = json.loads((out / f"{name}.json").read_text())
    return {"result": result, "search_s": searched - started, "transfer_effect_s": time.perf_counter() - searched}


def gains(result: dict[str, Any]) -> list[float]:
    """Transfer minus target only, per seed (test F1)."""
    rows = result["rows"]
    return [t - o for t, o in zip(rows["transfer"]["f1"], rows["target only"]["f1"], strict=True)]


def summary(done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for design, run in done.items():
        rows = run["result"]["rows"]
        table[design] = {
            "study": DESIGNS[design],
            "rows": {name: {"f1_mean": row["f1_mean"], "f1_ci": row["f1_ci"]} for name, row in rows.items()},
            "gain": dict(zip(("mean", "ci"), _ci(gains(run["result"])), strict=True)),
            "search_s": round(run["search_s"], 1), "transfer_effect_s": round(run["transfer_effect_s"], 1),
        }
    difference = [p - c for p, c in zip(gains(done["primary"]["result"]), gains(done["control"]["result"]),
                                         strict=True)]
    table["primary_minus_control"] = dict(zip(("mean", "ci"), _ci(difference), strict=True))
    return table


def _ci(values: list[float]) -> tuple[float, list[float]]:
    mean, low, high = mean_ci(values)
    return mean, [low, high]


def show(table: dict[str, Any]) -> None:
    for design in DESIGNS:
        entry = table[design]
        print(f"\n{design}: {entry['study']} (search {entry['search_s']:.0f} s, transfer-effect "
              f"{entry['transfer_effect_s']:.0f} s)")
        for name, row in entry["rows"].items():
            low, high = row["f1_ci"]
            print(f"  {name:<28} test F1 {row['f1_mean']:.4f}  95% CI [{low:.4f}, {high:.4f}]")
        gain, (low, high) = entry["gain"], entry["gain"]["ci"]
        print(f"  transfer gain (paired)       {gain['mean']:+.4f}  95% CI [{low:+.4f}, {high:+.4f}]")
    diff = table["primary_minus_control"]
    print(f"\nprimary gain - control gain (paired by seed): {diff['mean']:+.4f}  95% CI "
          f"[{diff['ci'][0]:+.4f}, {diff['ci'][1]:+.4f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the studies, pages and figures (default: a temp dir)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of hpo transfer-effect (declared: 10)")
    parser.add_argument("--quick", action="store_true", help="2 trials, 1 epoch: a smoke test")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer-designs-"))
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    for design, name in DESIGNS.items():
        print(f"{design}: hpo run studies/{name}.yaml, then hpo transfer-effect --seeds {args.seeds}", flush=True)
        done[design] = run_design(name, out, args.seeds, args.quick)
    table = summary(done)
    show(table)
    (out / "transfer_designs.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"\nwrote {out / 'transfer_designs.json'}")


if __name__ == "__main__":
    main()
