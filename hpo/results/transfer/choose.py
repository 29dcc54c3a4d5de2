"""Which trained configs the transfer effect compares: the study's best transfer config (λ < 1), and the best
target-only config (λ = 1) found with the study's own budget: the study's own target-only trials when it has at
least MIN_TARGET_ONLY_TRIALS complete ones, else a search of its own. A config tuned together with λ < 1 would
favour transfer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError
from hpo.search.space import is_target_only
from hpo.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

__all__ = ["MIN_TARGET_ONLY_TRIALS", "Picked", "target_only_choice", "target_only_search", "transfer_choice"]

MIN_TARGET_ONLY_TRIALS = 3


@dataclass(frozen=True)
class Picked:
    """A trial whose parameters a trained row uses, and where it came from."""

    trial: optuna.trial.FrozenTrial
    study: str
    note: str

    def record(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial.number, "value": self.trial.value,
                "params": dict(self.trial.params), "note": self.note}


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number))


def transfer_choice(study: optuna.Study, spec: StudySpec) -> Picked:
    complete = _complete(study)
    transfer = [t for t in complete if not is_target_only(t) and spec.trial_config(t.params).target_weight < 1.0]
    if not transfer:
        raise HpoError(f"study {study.study_name!r} has no completed trial with λ < 1 (target_weight below 1): "
                       "there is no transfer to measure")
    note = "the study's best trial" if complete[0].number == transfer[0].number else \
        f"the best trial with λ < 1 (the study's best, trial {complete[0].number}, is target only)"
    return Picked(transfer[0], study.study_name, note)


def target_only_choice(study: optuna.Study, spec: StudySpec, storage: str, console: Console) -> Picked:
    own = [t for t in _complete(study) if is_target_only(t)]
    if len(own) >= MIN_TARGET_ONLY_TRIALS:
        return Picked(own[0], study.study_name, f"the best of the study's {len(own)} complete target-only trials")
    searched = target_only_search(study, spec, storage, console)
    complete = _complete(searched)
    if not complete:
        raise HpoError(f"the target-only search {searched.study_name!r} has no completed trial")
    why = f"the study has {len(own)} complete target-only trial(s), fewer than {MIN_TARGET_ONLY_TRIALS}"
    return Picked(complete[0], searched.study_name, f"the best of a target-only search with the study's budget ({why})")


def target_only_search(study: optuna.Study, spec: StudySpec, storage: str, console: Console) -> optuna.Study:
    """Run (or continue, up to its budget) the study `NAME-target-only` in the same storage: the study's own spec
    with λ fixed to 1 and the study's trial budget. Returns that study."""
    from hpo.search.worker import run_and_report
    from hpo.spec import dump_spec

    name = f"{study.study_name}-target-only"
    budget = study.user_attrs.get("n_trials") or spec.n_trials
    searched = spec.model_copy(update={
        "name": name, "search_space": {**spec.search_space, "target_weight": 1.0}, "n_trials": budget,
        "storage": None, "exported_from": None,
    })
    console.print(f"[bold]target-only search[/]: study {name!r}, λ fixed to 1, {budget or 'no'} trial budget "
                  f"(as {study.study_name!r})", highlight=False)
    text = dump_spec(searched, comment=f"{name}: study {study.study_name!r} with λ fixed to 1, by hpo transfer-effect")
    result = run_and_report(searched, text, source=f"study {name!r}", console=console, storage=storage)
    result.study.set_user_attr("target_only_of", study.study_name)
    return result.study
