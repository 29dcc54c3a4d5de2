"""The quickstart search with full fine-tuning against the same search with LoRA, side by side in one run.

What is measured
----------------
`hpo run` of studies/quickstart.yaml (its model, data, sampler, pruner and trial budget) twice, one after the
other on this machine:

1. full: the study file as shipped (every unfrozen weight trains);
2. lora: the same file with `adapter: lora` fixed (peft's defaults otherwise: r 8, α 16, every linear layer of the
   layers above freeze_depth) and the learning-rate range 10× higher, 5e-4 .. 5e-3 instead of 5e-5 .. 5e-4 (the
   usual rule: LoRA trains at about 10× full fine-tuning's rate, since each step moves a small rank-r product whose
   B starts at zero), with `head_lr_multiplier: 1`, so that the heads search the same rates (5e-4 .. 5e-3) as under
   full fine-tuning.

Each run gets a cache of its own for the frozen layers' outputs (the data and tokens are shared): neither search
reads what the other built, so both wall times include building them. Printed for each: the best validation
macro-F1, the trainable parameters of the best trial and the median over its trials (they vary with the searched
freeze depth), the number of trials and pruned trials, and the wall time of the whole `hpo run`; then lora / full.
One run of each: the sampler's seed differs per process (hpo.search.worker.worker_seed), so F1 differences of a
few thousandths are noise; rerun, or run benchmarks/layer_decay.py's way with several seeds.

    .venv/bin/python -m benchmarks.lora_vs_full [--json lora_vs_full.json]

`--quick` runs 2 trials of one epoch on tiny data as a smoke test; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.hpo_command import run_hpo

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "studies" / "quickstart.yaml"
LORA_RATES = {"low": 5.0e-4, "high": 5.0e-3, "log": True}  # 10× the quickstart's 5e-5 .. 5e-4


@dataclass(frozen=True)
class Search:
    """What one `hpo run` found, and what it cost."""

    best_f1: float
    best_params: dict[str, Any]
    trainable_params: int | None  # of the best trial
    median_trainable_params: float | None  # over the trials that recorded it
    trials: int
    pruned: int
    wall_s: float


def quickstart(quick: bool = False) -> dict[str, Any]:
    """The quickstart study file as a mapping; with `quick`, tiny (2 trials of one epoch on 64 + 96 documents)."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    if quick:
        raw.update(n_trials=2, source={"builtin": "20newsgroups", "max_samples": 64},
                   target={"builtin": "reuters-r8", "max_samples": 96})
        raw["training"] = {**raw["training"], "epochs": 1, "max_length": 32}
    return raw


def with_lora(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with LoRA fixed, the learning-rate range 10× higher and the heads at the same rates as before."""
    return {**raw, "training": {**raw["training"], "adapter": "lora", "head_lr_multiplier": 1},
            "search_space": {**raw["search_space"], "learning_rate": LORA_RATES}}


def _cache_without_activations(folder: Path) -> Path:
    """A cache dir sharing this machine's corpora, tokens and models, with an empty activations folder of its own."""
    from hpo.settings import cache_dir

    own = folder / "cache"
    own.mkdir()
    shared = cache_dir()
    for entry in shared.iterdir() if shared.exists() else ():
        if entry.name != "activations":
            (own / entry.name).symlink_to(entry)
    return own


def run_search(raw: dict[str, Any], name: str) -> Search:
    """`hpo run` of the study `raw` (named `name`) in a fresh folder and storage; what it found, and its wall time."""
    import optuna

    with tempfile.TemporaryDirectory(prefix=f"hpo-{name}-") as folder:
        work = Path(folder)
        (work / f"{name}.yaml").write_text(yaml.safe_dump({**raw, "name": name}, sort_keys=False))
        env = {**os.environ, "HPO_CACHE": str(_cache_without_activations(work)), "PYTHONWARNINGS": "ignore"}
        env.pop("HPO_STORAGE", None)
        _, wall = run_hpo("run", f"{name}.yaml", cwd=work, env=env)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{work / 'hpo.db'}")
        trials = study.get_trials(deepcopy=False)
        counts = [t.user_attrs["trainable_params"] for t in trials if "trainable_params" in t.user_attrs]
        best = study.best_trial
    return Search(best_f1=float(best.value), best_params=best.params,
                  trainable_params=best.user_attrs.get("trainable_params"),
                  median_trainable_params=statistics.median(counts) if counts else None, trials=len(trials),
                  pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in trials), wall_s=wall)


def _millions(count: float | None) -> str:
    return "-" if count is None else f"{count / 1e6:.3f} M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, figures meaningless")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    raw = quickstart(args.quick)
    results = {}
    print(f"{'':<6} {'best val F1':>11} {'trainable (best)':>17} {'(median)':>11} {'trials':>7} {'pruned':>7} "
          f"{'wall s':>8}", flush=True)
    for name, study in (("full", raw), ("lora", with_lora(raw))):
        found = results[name] = run_search(study, f"lora-vs-full-{name}")
        print(f"{name:<6} {found.best_f1:>11.4f} {_millions(found.trainable_params):>17} "
              f"{_millions(found.median_trainable_params):>11} {found.trials:>7} {found.pruned:>7} "
              f"{found.wall_s:>8.1f}", flush=True)
    full, lora = results["full"], results["lora"]
    params = (lora.trainable_params / full.trainable_params) if full.trainable_params and lora.trainable_params \
        else float("nan")
    print(f"lora / full: best val F1 {lora.best_f1 / full.best_f1:.3f}×, trainable parameters of the best trial "
          f"{params:.3f}×, wall time {lora.wall_s / full.wall_s:.2f}×")
    for name, found in results.items():
        print(f"{name} best trial: {json.dumps(found.best_params)}")
    if args.json:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
