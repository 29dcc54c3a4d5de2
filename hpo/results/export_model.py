"""`hpo export NAME --model DIR`: the best trial's (or trial N's) model as `keep_models` kept it, copied out: no
retrain, no data read. It is the trial's own best-step model, so its logits are the trial's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hpo.errors import HpoError, OutputError
from hpo.results.export import Exported, best_trials, trial_by_number
from hpo.search.kept import KEPT_DIR_ATTR, folder_number, kept_folder
from hpo.train.metrics import objective_of

__all__ = ["export_model"]


def export_model(name: str, out: Path, *, trial: int | None, storage: str | None) -> Exported:
    """Copy the kept model of the best trial (or `trial`) into `out`: a new or empty folder, written whole under a
    temporary name and renamed, so a failed copy leaves nothing half-written."""
    from hpo.storage import load_study

    out = Path(out)
    if str(out) == "-":
        raise HpoError("--model -: a model is a directory of files, which standard output cannot hold; give a "
                       "directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: already exists and is not an empty directory; give a new one")
    study, _ = load_study(name, storage)
    stored = study.user_attrs.get(KEPT_DIR_ATTR)
    if stored is None:
        raise HpoError(f"study {name!r} kept no models (its study file has no keep_models); retrain the best "
                       f"config instead: hpo export {name} -o best.yaml && hpo train best.yaml --out {out}")
    chosen = best_trials(study)[0] if trial is None else trial_by_number(study, trial)
    folder = kept_folder(Path(stored), chosen.number)
    if not (folder / "config.json").is_file():
        kept = sorted(number for p in Path(stored).iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (number := folder_number(p)) is not None) if Path(stored).is_dir() else []
        raise HpoError(f"trial {chosen.number} of study {name!r} has no kept model in {stored} (kept: "
                       f"{', '.join(map(str, kept)) or 'none'}); keep_models keeps the best K trials only")
    _copy(folder, out)
    label = objective_of(study.metric_names).label
    return Exported(f"exported the model of trial {chosen.number} ({label} {chosen.value:.4f}) of study {name!r} "
                    f"to {out} (kept at its best evaluation; no retrain)")


def _copy(folder: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(folder, partial)
        if out.exists():
            out.rmdir()  # empty: checked above
        partial.rename(out)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise OutputError(f"{out}: cannot write the model: {exc.strerror or exc}") from None
