"""The quickstart path as a new user runs it, timed: the search, the retrain of its best config, and the transfer
effect; and the retrain's clocks beside its trial's.

What is measured
----------------
In a fresh folder with a fresh storage (this machine's `HPO_CACHE`: corpora, tokens, the bundled MiniLM and
frozen-layer outputs already there are used, as on a user's second run; `--fresh-cache` starts from none):

1. `hpo run studies/quickstart.yaml`: wall time;
2. `hpo export quickstart -o best.yaml` and `hpo train best.yaml --out retrained`: wall time, and the retrain's
   `train_seconds` (optimisation only) and `fit_seconds` (the whole fit) from `metrics.json` beside the best
   trial's clocks of the same names. Both fits run the same config, seed and data through `Workbench.fit`; what
   `hpo train` adds is the process start, the model and data load, saving the classifier and its test
   evaluation (`test_seconds`);
3. `hpo transfer-effect quickstart --seeds 5 -o transfer.html`: wall time, and how its target-only row was tuned
   (the fairness rule: a λ = 1 search with the study's trial budget, the study's own target-only trials counting
   towards it; `transfer.json`'s `target_only` says how many it copied and how many it ran), and the verdict.

The goal it checks: steps 1 and 3 together in ≤ 12 minutes on 2 idle cores. The load average before and after each
step is printed: on a busy machine the times mean little. One run.

    .venv/bin/python -m benchmarks.quickstart_path [--json benchmarks/results-quickstart-path.json] [--fresh-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.hpo_command import run_hpo

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "studies" / "quickstart.yaml"
GOAL_S = 12 * 60


def hpo(work: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `hpo ARGS` in `work`; its wall time, the load average before and after, and its output."""
    load = os.getloadavg()[0]
    done, wall = run_hpo(*args, cwd=work, env=env)
    return {"command": "hpo " + " ".join(args), "wall_s": round(wall, 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)], "stdout": done.stdout}


def clocks(work: Path) -> dict[str, Any]:
    """The best trial's clocks and the retrain's, side by side."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{work / 'hpo.db'}").best_trial
    metrics = json.loads((work / "retrained" / "metrics.json").read_text())
    trial = {name: best.user_attrs.get(name) for name in ("train_seconds", "fit_seconds")}
    retrain = {name: metrics.get(name) for name in ("train_seconds", "fit_seconds", "test_seconds")}
    return {"trial": best.number, "params": best.params, "trial_clocks": trial, "retrain_clocks": retrain,
            "retrain_over_trial": {name: round(retrain[name] / trial[name], 2) for name in trial
                                   if trial[name] and retrain.get(name)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--fresh-cache", action="store_true", help="an empty HPO_CACHE: the first run on a machine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpo-quickstart-path-") as folder:
        work = Path(folder)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("HPO_STORAGE", None)
        if args.fresh_cache:
            env["HPO_CACHE"] = str(work / "cache")
        steps = {"run": hpo(work, env, "run", str(STUDY))}
        print(f"run: {steps['run']['wall_s']:.0f} s (load {steps['run']['load_average']})", flush=True)
        hpo(work, env, "export", "quickstart", "-o", "best.yaml")
        steps["train"] = hpo(work, env, "train", "best.yaml", "--out", "retrained")
        timed = clocks(work)
        print(f"train: {steps['train']['wall_s']:.0f} s; trial {timed['trial']} clocks {timed['trial_clocks']}, "
              f"retrain {timed['retrain_clocks']}, retrain / trial {timed['retrain_over_trial']}", flush=True)
        steps["transfer_effect"] = hpo(work, env, "transfer-effect", "quickstart", "--seeds", "5",
                                       "-o", "transfer.html")
        effect = json.loads((work / "transfer.json").read_text())
        target_only = effect["target_only"]
        print(f"transfer-effect --seeds 5: {steps['transfer_effect']['wall_s']:.0f} s "
              f"(load {steps['transfer_effect']['load_average']}; target-only row: {target_only['copied_from_study']} "
              f"trials copied from the study, {target_only['searched']} searched); gain {effect['gain']['mean']}, "
              f"{effect['verdict']}")
    total = steps["run"]["wall_s"] + steps["transfer_effect"]["wall_s"]
    print(f"run + transfer-effect: {total / 60:.1f} min against the goal of {GOAL_S / 60:.0f} min: "
          f"{'met' if total <= GOAL_S else 'MISSED'}")
    if args.json:
        record = {"steps": {k: {f: v for f, v in s.items() if f != "stdout"} for k, s in steps.items()},
                  "clocks": timed, "run_plus_transfer_effect_s": round(total, 1), "goal_s": GOAL_S,
                  "target_only": target_only, "rows": effect["rows"], "gain": effect["gain"],
                  "verdict": effect["verdict"]}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
