"""Does a search find the related source among unrelated ones, at no cost in quality? Declared before it was run.

Declared design (fixed before the first run; every repeat is reported)
----------------------------------------------------------------------
Target, model, training and search: those of `studies/sentiment-low-resource.yaml` (128 Amazon snippets, 32 held
out for validation, MiniLM, 12 trials of TPE + Hyperband, a quarter target only). Two studies per repeat, the same
trial budget (12):
  single  the shipped study: one source, `movie-snippets` (the related task);
  search  `source: {choices: [movie-snippets, trec, bbc-news]}` (1,600 documents each): the related task and two
          unrelated ones (question types, news topics), the sampler choosing per trial.
Amended once: the design first said 2,048 documents a source, but bbc-news has 1,695 usable rows, so every trial
drawing it failed on a data error (`max_samples` above the rows there are); the first repeat was stopped and all
of it rerun at 1,600 for every candidate. The single-source study keeps the shipped file's 2,048 movie snippets.
Repeats: 3 (the training seed 0, 1, 2; each study a fresh storage). Goals (issue 20): in the searched study the best
trial's source is `movie-snippets`, and its best validation F1 is within 0.01 of the single-source study's.
Validation F1 on 32 documents moves in steps of about 0.03: a difference under one step is noise.

    .venv/bin/python -m benchmarks.source_search [--repeats 3] [--out benchmarks/results-source-search.json]

Runs through the Python API (`hpo.run`, `hpo.load`), as a notebook would. Results go to --out after each study.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import hpo

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = [{"builtin": name, "max_samples": 1600} for name in ("movie-snippets", "trec", "bbc-news")]


def study(kind: str, seed: int) -> dict[str, Any]:
    raw = yaml.safe_load((REPO / "studies" / "sentiment-low-resource.yaml").read_text())
    raw["name"] = f"{kind}-{seed}"
    raw["training"] = {**raw["training"], "seed": seed}
    if kind == "search":
        raw["source"] = {"choices": CANDIDATES}
    return raw


def run(kind: str, seed: int, work: Path) -> dict[str, Any]:
    storage = f"sqlite:///{work / f'{kind}-{seed}.db'}"
    started = time.monotonic()
    result = hpo.run(study(kind, seed), storage=storage)
    best = result.best(1)[0]
    by_source: dict[str, float] = {}
    for trial in result.trials:
        if trial.state == "COMPLETE" and trial.value is not None:
            key = str(trial.params.get("source", "movie-snippets"))
            by_source[key] = max(by_source.get(key, 0.0), trial.value)
    return {"best_val_f1": best.value, "best_source": best.params.get("source", "movie-snippets"),
            "best_by_source": by_source, "drawn": _drawn(result), "seconds": round(time.monotonic() - started, 1)}


def _drawn(result: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in result.trials:
        key = str(trial.params.get("source", "movie-snippets"))
        counts[key] = counts.get(key, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results-source-search.json")
    args = parser.parse_args()
    done: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"repeats": {}}
    with tempfile.TemporaryDirectory(prefix="source-search-") as tmp:
        for seed in range(args.repeats):
            row = done["repeats"].setdefault(str(seed), {})
            for kind in ("single", "search"):
                if kind not in row:
                    row[kind] = run(kind, seed, Path(tmp))
                    args.out.write_text(json.dumps(done, indent=2))
            single, search = row["single"], row["search"]
            print(f"seed {seed}: single {single['best_val_f1']:.4f}  search {search['best_val_f1']:.4f} "
                  f"(best source {search['best_source']}; drawn {search['drawn']}; best by source "
                  f"{ {k: round(v, 4) for k, v in search['best_by_source'].items()} })", flush=True)
    rows = list(done["repeats"].values())
    related = sum(r["search"]["best_source"] == "movie-snippets" for r in rows)
    within = sum(r["search"]["best_val_f1"] >= r["single"]["best_val_f1"] - 0.01 for r in rows)
    print(f"related source best in {related} of {len(rows)}; search within 0.01 of single in {within} of {len(rows)}")


if __name__ == "__main__":
    main()
