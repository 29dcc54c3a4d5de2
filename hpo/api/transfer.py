"""`hpo.transfer_effect`: what the source task bought, from Python, through the function `hpo transfer-effect`
calls (`hpo.results.transfer.transfer_effect`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.api._console import Progress, console_for
from hpo.errors import HpoError
from hpo.results.transfer import transfer_effect as measure
from hpo.spec import check_study_name
from hpo.storage import load_study

__all__ = ["TransferEffect", "transfer_effect"]


@dataclass(frozen=True)
class TransferEffect:
    """The four rows (zero-shot, linear probe, target only, transfer) on the target's test split and the transfer
    gain; `record` is the JSON file written beside the page, whole."""

    study: str
    metric: str  # e.g. "test macro F1"
    verdict: str  # positive, NEGATIVE TRANSFER or inconclusive
    negative_transfer: bool
    gain: float | None  # transfer - target only, mean over seeds (None when undefined)
    gain_ci: tuple[float | None, float | None]  # its 95% t interval
    f1_means: dict[str, float | None]  # row -> mean test F1 over the seeds
    page: Path  # the HTML page; the JSON is beside it, same stem
    record: dict[str, Any]

    @classmethod
    def from_record(cls, record: dict[str, Any], page: Path) -> TransferEffect:
        gain = record["gain"]
        return cls(study=record["study"], metric=record["metric"], verdict=record["verdict"],
                   negative_transfer=record["negative_transfer"], gain=gain["mean"], gain_ci=tuple(gain["ci"]),
                   f1_means={name: row["f1_mean"] for name, row in record["rows"].items()}, page=page, record=record)


def transfer_effect(name: str, *, storage: str | None = None, seeds: int = 5,
                    output: str | os.PathLike[str] = "transfer.html", zero_shot_limit: int | None = None,
                    progress: Progress = None) -> TransferEffect:
    """`hpo transfer-effect NAME`: each row over `seeds` seeds, paired by seed, with 95% CIs and the verdict;
    writes `output` (HTML) and the same stem with .json, as the command does. May run a target-only search first
    (stored beside the study), as the command does."""
    page = Path(output)
    if str(page) == "-":  # as the command refuses it: two files cannot go to standard output
        raise HpoError("output -: transfer_effect writes two files, an HTML page and the JSON beside it; give the "
                       "page's name")
    study, target = load_study(check_study_name(name), storage)
    record = measure(study, seeds=seeds, output=page, storage=target.url, console=console_for(progress),
                     zero_shot_limit=zero_shot_limit)
    return TransferEffect.from_record(record, page)
