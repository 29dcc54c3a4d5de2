"""`hpo prepare`: put everything a study's workers need into the cache they share, so that no worker reaches
for a package registry or a model hub: the corpora, the model files (hub models via `snapshot_download`), and
the tokenised datasets for every max length the study can use. File locks make concurrent prepares safe."""

from __future__ import annotations

from pathlib import Path

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
    done = [f"cache: {cache_dir()}"]
    done.append(f"model: {spec.model.id} -> {resolve_model_path(spec.model.id, download=True)}")
    bench = open_workbench(spec, str(study_file))
    data = bench.data
    done.append(f"data: source {spec.source.label} ({len(data.source)} docs), target {spec.target.label} "
                f"({len(data.target_train)} train + {len(data.target_val)} validation)")
    lengths = _max_lengths(spec)
    for length in lengths:
        for split in ("source", "train", "val"):
            bench.encoded(split, length)
    done.append(f"tokenised: max length {', '.join(map(str, lengths))}" if lengths else
                "tokenised: nothing (max_length is searched over a range; workers tokenise on first use)")
    return done


def _max_lengths(spec: StudySpec) -> list[int]:
    entry = spec.search_space.get("max_length", spec.training.max_length)
    if isinstance(entry, Range):
        return []
    return sorted(entry.choices) if isinstance(entry, Choice) else [int(entry)]
