"""Which trained configs the transfer effect compares: the study's best transfer config (λ < 1), and the best
target-only config (λ = 1) found with the same budget.

The fairness rule: the target-only row must be tuned with the study's own trial budget, as the transfer row was (a
config tuned together with λ < 1 would favour transfer; the best of a few target-only trials against the best of
many transfer ones would too). So the target-only config is the best of `NAME-target-only`, a search of the study's
own space with λ fixed to 1 and the study's budget of trials. The study's own target-only trials (those its
`target_only_share` reserved) are λ = 1 trials of that same space, so they are copied in as its first trials and
count towards its budget: the reserved share is spent once, and only the rest of the budget is searched anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError
from hpo.search.space import SOURCE, is_target_only
from hpo.spec import StudySpec, dump_spec
from hpo.spec.sources import NO_SOURCE, SourceChoices
from hpo.train.config import LAMBDA, LAMBDA_NAMES

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

__all__ = ["Picked", "TargetOnlySearch", "target_only_choice", "target_only_search", "transfer_choice",
           "transfer_choices"]

COPIED = "copied_from"  # the user attribute of a trial copied into the target-only search: "STUDY:NUMBER"


@dataclass(frozen=True)
class Picked:
    """A trial whose parameters a trained row uses, and where it came from."""

    trial: optuna.trial.FrozenTrial
    study: str
    note: str

    def record(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial.number, "value": self.trial.value,
                "params": dict(self.trial.params), "note": self.note}


@dataclass(frozen=True)
class TargetOnlySearch:
    """How the target-only row's config was found: the search, its budget, and how much of it the study's own
    target-only trials paid."""

    study: str
    budget: int | None
    copied: int  # the study's own target-only trials (complete or pruned) copied in as its first trials
    ran: int  # trials the search ran itself

    def record(self) -> dict[str, Any]:
        return {"study": self.study, "budget": self.budget, "copied_from_study": self.copied,
                "searched": self.ran, "rule": "the best of a λ = 1 search of the study's own space with the study's "
                                              "trial budget; the study's own target-only trials count towards it"}


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number))


def transfer_choice(study: optuna.Study, spec: StudySpec) -> Picked:
    """The study's best transfer config (λ < 1, with a source), whichever source it drew."""
    return transfer_choices(study, spec)[0]


def transfer_choices(study: optuna.Study, spec: StudySpec) -> list[Picked]:
    """The best transfer config of each source the study drew, the best overall first (one for a study with one
    source)."""
    complete = _complete(study)
    transfer = [t for t in complete if not is_target_only(t) and spec.trial_config(t.params).target_weight < 1.0]
    if not transfer:
        raise HpoError(f"study {study.study_name!r} has no completed trial with λ < 1 (target_weight below 1): "
                       "there is no transfer to measure")
    note = "the study's best trial" if complete[0].number == transfer[0].number else \
        f"the best trial with λ < 1 (the study's best, trial {complete[0].number}, is target only)"
    picks = [Picked(transfer[0], study.study_name, note)]
    if spec.searches_source:
        seen = {spec.trial_source(transfer[0].params)}
        for trial in transfer[1:]:
            key = spec.trial_source(trial.params)
            if key not in seen:
                seen.add(key)
                picks.append(Picked(trial, study.study_name, f"the best trial with source {key}"))
    return picks


def target_only_choice(study: optuna.Study, spec: StudySpec, storage: str,
                       console: Console) -> tuple[Picked, TargetOnlySearch]:
    """The best config of the target-only search (run, or continued up to its budget, here)."""
    searched, how = target_only_search(study, spec, storage, console)
    complete = _complete(searched)
    if not complete:
        raise HpoError(f"the target-only search {searched.study_name!r} has no completed trial")
    best = complete[0]
    origin = f" (trial {best.user_attrs[COPIED]}, copied)" if COPIED in best.user_attrs else ""
    note = (f"the best of {how.copied + how.ran} λ = 1 trials with the study's budget: {how.copied} of the study's "
            f"own, {how.ran} searched{origin}")
    return Picked(best, searched.study_name, note), how


def target_only_search(study: optuna.Study, spec: StudySpec, storage: str,
                       console: Console) -> tuple[optuna.Study, TargetOnlySearch]:
    """Run (or continue, up to its budget) the study `NAME-target-only` in the same storage: the study's own spec
    with λ fixed to 1 and the study's trial budget, its first trials the study's own target-only ones."""
    import optuna

    from hpo.search.worker import run_and_report
    from hpo.storage import count_states

    name = f"{study.study_name}-target-only"
    budget = study.user_attrs.get("n_trials") or spec.n_trials
    searched_spec = spec.model_copy(update={
        "name": name, "search_space": {**spec.search_space, LAMBDA: 1.0}, "n_trials": budget,
        "storage": None, "exported_from": None,
        # λ = 1 trains on no source: a study that searches its source searches none here
        **({"source": SourceChoices(choices=[NO_SOURCE])} if spec.searches_source else {}),
    })
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created": the search says what it is
    target = optuna.create_study(study_name=name, storage=storage, direction=spec.direction, load_if_exists=True)
    copied = _copy_own_target_only_trials(study, target)
    console.print(f"[bold]target-only search[/]: study {name!r}, λ fixed to 1, {budget or 'no'} trial budget "
                  f"(as {study.study_name!r}), {copied} of them the study's own target-only trials", highlight=False)
    text = dump_spec(searched_spec, comment=f"{name}: study {study.study_name!r} with λ fixed to 1, "
                                            "by hpo transfer-effect")
    result = run_and_report(searched_spec, text, source=f"study {name!r}", console=console, storage=storage)
    result.study.set_user_attr("target_only_of", study.study_name)
    counts = count_states(result.study)
    ran = counts["COMPLETE"] + counts["PRUNED"] - copied
    return result.study, TargetOnlySearch(name, budget, copied, ran)


def _copy_own_target_only_trials(study: optuna.Study, target: optuna.Study) -> int:
    """Copy the study's complete and pruned target-only trials into `target` once (λ left out: it is fixed there);
    returns how many `target` holds."""
    import optuna
    from optuna.trial import TrialState

    held = {t.user_attrs[COPIED] for t in target.get_trials(deepcopy=False) if COPIED in t.user_attrs}
    own = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
           if is_target_only(t)]
    for trial in own:
        key = f"{study.study_name}:{trial.number}"
        if key in held:
            continue
        target.add_trial(optuna.trial.create_trial(
            state=trial.state, value=trial.value if trial.state == TrialState.COMPLETE else None,
            params={k: v for k, v in trial.params.items() if k not in (*LAMBDA_NAMES, SOURCE)},
            distributions={k: v for k, v in trial.distributions.items() if k not in (*LAMBDA_NAMES, SOURCE)},
            intermediate_values=dict(trial.intermediate_values),
            user_attrs={**trial.user_attrs, COPIED: key},
        ))
        held.add(key)
    return len(held)
