"""`keep_models: K`: the K best COMPLETE trials' models, each at its best evaluation, kept as they finish.

A trial whose best value would enter the study's top K saves its model (the saved-classifier format `hpo train`
writes: `pipeline()`, `hpo predict` and `hpo evaluate` load it) into `DIR/trial-N` before it reports its value, and
after every trial a worker deletes the folders of finished trials the storage no longer ranks in the top K. So the
storage decides, whatever worker ran what: a worker writes only its own trial's folder and deletes only folders of
trials that are no longer running and not among the K best. While workers run there are at most K + workers
folders (each worker's trial saved but not yet told); when every worker is done, exactly K.

The folder is resolved once, when the study is created, and stored with the study (`kept_models_dir`), so every
worker and `hpo export NAME --model OUT` find the same one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.files import output_dir
from hpo.settings import cache_dir
from hpo.spec import StudySpec, dump_spec
from hpo.storage import best_numbers, frozen_trials, trial_rows

if TYPE_CHECKING:
    import optuna
    import torch

    from hpo.train.config import TrainConfig
    from hpo.train.loop import Evaluation
    from hpo.train.model import TransferModel
    from hpo.workbench import Workbench

__all__ = ["KEPT_DIR_ATTR", "KeptModels", "folder_number", "kept_folder"]

KEPT_DIR_ATTR = "kept_models_dir"
PREFIX = "trial-"
log = logging.getLogger("hpo")


def kept_folder(directory: Path, number: int) -> Path:
    return directory / f"{PREFIX}{number}"


def folder_number(path: Path) -> int | None:
    """The trial number of a kept folder, `trial-N`, or of one being written, `.trial-N.PID.partial`; None for
    anything else."""
    name = path.name.lstrip(".").split(".")[0]
    return int(name[len(PREFIX):]) if name.startswith(PREFIX) and name[len(PREFIX):].isdigit() else None


class KeptModels:
    """The study's kept models: which to save, the saving, and the clearing of those pushed out of the top K."""

    def __init__(self, spec: StudySpec, study: optuna.Study, bench: Workbench) -> None:
        assert spec.keep_models is not None
        self.spec, self.study, self.bench, self.top = spec, study, bench, spec.keep_models.top
        stored = study.user_attrs.get(KEPT_DIR_ATTR)
        if stored is None:
            stored = str(spec.keep_models.dir or cache_dir() / "kept" / spec.name)
            study.set_user_attr(KEPT_DIR_ATTR, stored)
        self.directory = output_dir(Path(stored))
        self._best: Evaluation | None = None
        self._weights: dict[str, torch.Tensor] = {}

    # -- during a trial -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._best, self._weights = None, {}

    def evaluated(self, evaluation: Evaluation, model: TransferModel) -> None:
        """Remember the trainable weights at each new best evaluation (on the CPU: a GPU's memory stays the
        trial's). Frozen weights never change, so the model's own are the best step's."""
        objective = self.bench.objective
        if self._best is not None and not objective.better(evaluation.value, self._best.value):
            return
        self._best = evaluation
        self._weights = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
                         if p.requires_grad}

    def save(self, trial: optuna.Trial, model: TransferModel, config: TrainConfig, source: str) -> None:
        """Save the trial's best-step model if its value would enter the current top K; atomically (a folder
        written under a temporary name, then renamed)."""
        if self._best is None or not self._would_rank(self._best.value):
            return
        from hpo.classifier.saved import save_classifier  # imports transformers: only a search that keeps models

        model.load_state_dict(self._weights, strict=False)
        final = kept_folder(self.directory, trial.number)
        partial = self.directory / f".{final.name}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        corpus = self.bench.source(source)
        spec = self.spec.fixed_for(trial.params, f"{self.spec.name}-trial{trial.number}")
        save_classifier(model, self.bench.bundle.tokenizer, partial,
                        label_names=self.bench.data.target_train.label_names,
                        source_label_names=corpus.label_names if corpus is not None else (), config=config,
                        study_text=dump_spec(spec, comment=f"trial {trial.number} of study {self.spec.name!r}, "
                                                           "kept by keep_models"))
        (partial / "trial.json").write_text(json.dumps(self._record(trial), indent=2))
        shutil.rmtree(final, ignore_errors=True)  # a retry of this number, or a trial a crash left behind
        partial.rename(final)

    def _record(self, trial: optuna.Trial) -> dict[str, Any]:
        best = self._best
        assert best is not None
        return {"study": self.spec.name, "trial": trial.number, "metric": self.bench.objective.metric,
                "value": best.value, "best_evaluation": best.number, "best_epoch": best.epoch,
                "params": dict(trial.params)}

    def _would_rank(self, value: float) -> bool:
        ranked = best_numbers(self.study, self.top)
        if len(ranked) < self.top:
            return True
        (last,) = frozen_trials(self.study, ranked[-1:])
        return last.value is None or self.bench.objective.better(value, last.value)

    # -- after a trial --------------------------------------------------------------------------------------

    def clear(self) -> list[int]:
        """Delete the folders of finished trials outside the top K (and partial folders no running trial owns);
        returns the numbers deleted."""
        keep = set(best_numbers(self.study, self.top))
        folders = {}
        for path in self.directory.iterdir():
            if path.is_dir() and (number := folder_number(path)) is not None:
                folders.setdefault(number, []).append(path)
        if not folders:
            return []
        running = {row.number for row in trial_rows(self.study, states=("RUNNING",), params=False, attrs=())}
        deleted = []
        for number, paths in sorted(folders.items()):
            for path in paths:
                partial = path.name.startswith(".")
                if number in running or (number in keep and not partial):
                    continue
                shutil.rmtree(path, ignore_errors=True)
                if not partial:
                    deleted.append(number)
        if deleted:
            log.info("kept models: deleted %s (outside the %d best)", ", ".join(map(str, deleted)), self.top)
        return deleted
