"""The report's arithmetic, apart from its figures: epochs run against what pruning saved, and retry chains."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.results.report.common import fixed_value, fmt, state_of

if TYPE_CHECKING:
    import optuna

__all__ = ["ComputeSummary", "RetryChain", "TrialCompute", "compute_summary", "retry_chains"]


@dataclass(frozen=True)
class TrialCompute:
    number: int
    state: str
    run: float  # epochs of target data the trial saw
    full: float  # epochs it would have seen without pruning

    @property
    def saved(self) -> float:
        return max(0.0, self.full - self.run)


@dataclass(frozen=True)
class ComputeSummary:
    """Epochs run against the epochs a search without pruning would have run, over the finished trials.

    A COMPLETE or PRUNED trial would have run its full epochs (its `epochs` parameter when searched, else the
    study's training epochs from its provenance, else the most epochs any trial ran). A FAIL counts the epochs it
    ran on both sides: it would have failed the same way without pruning. RUNNING and WAITING trials are left out.
    """

    trials: list[TrialCompute] = field(default_factory=list)

    @property
    def epochs_run(self) -> float:
        return sum(row.run for row in self.trials)

    @property
    def epochs_without_pruning(self) -> float:
        return sum(row.full for row in self.trials)

    @property
    def epochs_saved(self) -> float:
        return self.epochs_without_pruning - self.epochs_run

    @property
    def share_run(self) -> float:
        return self.epochs_run / self.epochs_without_pruning if self.epochs_without_pruning else 1.0

    def headline(self) -> str:
        if not self.epochs_without_pruning:
            return "No finished trial recorded the epochs it ran."
        return (f"{fmt(self.epochs_run)} of {fmt(self.epochs_without_pruning)} epochs run "
                f"({self.share_run:.0%}); pruning saved {fmt(self.epochs_saved)} epochs.")


def compute_summary(study: optuna.Study, trials: list[optuna.trial.FrozenTrial] | None = None) -> ComputeSummary:
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    fixed = fixed_value(study, "epochs")
    seen = max((_epochs_run(t, None) for t in finished), default=0.0)
    default_full = float(fixed) if fixed is not None else seen
    rows = []
    for trial in finished:
        full = float(trial.params["epochs"]) if "epochs" in trial.params else default_full
        run = _epochs_run(trial, full)
        rows.append(TrialCompute(trial.number, trial.state.name, run, run if trial.state.name == "FAIL" else full))
    return ComputeSummary(rows)


def _epochs_run(trial: optuna.trial.FrozenTrial, full: float | None) -> float:
    """`epochs_run`; else the last row of `curve` (`f1_curve` in studies made before objectives); else a COMPLETE
    trial ran them all."""
    if "epochs_run" in trial.user_attrs:
        return float(trial.user_attrs["epochs_run"])
    curve = trial.user_attrs.get("curve") or trial.user_attrs.get("f1_curve")
    if curve:
        return float(curve[-1][1])
    return float(full) if full is not None and trial.state.name == "COMPLETE" else 0.0


@dataclass(frozen=True)
class RetryChain:
    first: int  # the trial that was retried
    attempts: list[int]  # trial numbers, the first included, in order
    final_state: str
    reason: str


def retry_chains(trials: list[Any]) -> list[RetryChain]:
    """Trials (FrozenTrials or TrialRows) linked by `retry_of` (a retry names the trial it retries), grouped by the
    first attempt."""
    by_number = {t.number: t for t in trials}

    def root(trial: Any) -> int:
        if "retry_root" in trial.user_attrs:
            return int(trial.user_attrs["retry_root"])
        seen = {trial.number}
        while "retry_of" in trial.user_attrs and int(trial.user_attrs["retry_of"]) in by_number:
            trial = by_number[int(trial.user_attrs["retry_of"])]
            if trial.number in seen:
                break
            seen.add(trial.number)
        return trial.number

    groups: dict[int, list[Any]] = {}
    for trial in trials:
        if "retry_of" in trial.user_attrs:
            groups.setdefault(root(trial), []).append(trial)
    chains = []
    for first, retries in sorted(groups.items()):
        attempts = sorted({first, *(t.number for t in retries)})
        last = by_number.get(attempts[-1])
        chains.append(RetryChain(first, attempts, state_of(last) if last else "?", _reasons(retries)))
    return chains


def _reasons(retries: list[Any]) -> str:
    reasons = [str(t.user_attrs["retry_reason"]) for t in retries if t.user_attrs.get("retry_reason")]
    return "; ".join(dict.fromkeys(reasons)) or "-"


