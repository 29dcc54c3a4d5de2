"""`hpo.run` and `hpo.load`: a study run or read from Python, as a `StudyResult` of typed trial records.

`run` validates a study file, or a dict of its fields, exactly as `hpo run` does (a dict is written as the YAML
text a file would hold and read by the same strict reader and pydantic models, so a bad dict raises the same
`SpecError` naming the field), then runs it through the CLI's own worker (`run_and_report`). The records, the best
trials, the status and the exports come from the functions `hpo trials`, `hpo best`, `hpo status` and `hpo export`
call, so the API and the CLI give the same answers on the same study.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import yaml

from hpo.api._console import Progress, console_for
from hpo.errors import HpoError, SpecError
from hpo.results.export import Exported, export_study
from hpo.results.export_model import export_model
from hpo.results.records import TRIAL_FIELDS, ExportFormat, trial_records
from hpo.results.status import status_record
from hpo.search.worker import run_and_report
from hpo.settings import StorageURL, resolve_storage
from hpo.spec import StudySpec, check_study_name, load_study_file, parse_spec
from hpo.spec.reader import parse_yaml
from hpo.storage import best_numbers, load_study

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["StudyResult", "TrialRecord", "load", "run"]

DICT_SOURCE = "study dict"  # how a dict study is named in messages, where a file would be named by its path


@dataclass(frozen=True)
class TrialRecord:
    """One trial as `hpo trials -f json` prints it (the fields are `hpo.results.records.TRIAL_FIELDS`)."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    value: float | None  # the study's objective (val F1 unless another); a pruned trial's last evaluation
    params: dict[str, Any]
    epochs_run: float | None
    duration_s: float | None
    worker: str | None  # hostname:pid
    failure_reason: str | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialRecord:
        """A CLI record as a typed one; its JSON-safe "nan"/"inf" strings back to the floats they stand for."""
        value = record["value"]
        return cls(**{**record, "value": float(value) if isinstance(value, str) else value})


@dataclass(frozen=True)
class StudyResult:
    """A stored study: its trials as they were when it was loaded (`trials`), and what the CLI's study commands
    show of it, read from the storage when asked (`best`, `status`, `export`)."""

    name: str
    storage: str  # the storage URL with every secret masked
    budget: int | None  # the study's total of COMPLETE + PRUNED trials
    trials: tuple[TrialRecord, ...]
    message: str | None = None  # from `run`: why nothing ran, when nothing did (a finished study, a passed deadline)
    _url: str = field(default="", repr=False, compare=False)  # secrets included: for connecting only
    _study: optuna.Study | None = field(default=None, repr=False, compare=False)

    def best(self, k: int = 1) -> tuple[TrialRecord, ...]:
        """The k best complete trials, best first: `hpo best NAME --top k`."""
        _at_least_one(k, "k")
        numbers = best_numbers(self._study, k)
        if not numbers:
            raise HpoError(f"study {self.name!r} has no complete trial yet")
        return tuple(TrialRecord.from_record(r) for r in trial_records(self._study, numbers=numbers))

    def status(self) -> dict[str, Any]:
        """What `hpo status NAME -f json` prints: counts, budget, best trial, running trials, workers, retries."""
        return status_record(self.name, self._url)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trial: the record's fields, each parameter in a `params_<name>` column (as Optuna's
        `trials_dataframe` names them)."""
        import pandas as pd

        columns = [name for name in TRIAL_FIELDS if name != "params"]
        rows = [{**{k: v for k, v in asdict(t).items() if k != "params"},
                 **{f"params_{k}": v for k, v in t.params.items()}} for t in self.trials]
        return pd.DataFrame(rows, columns=[*columns, *sorted({c for row in rows for c in row} - set(columns))])

    def export(self, path: str | os.PathLike[str], *, top: int | None = None, format: str = "yaml",
               trial: int | None = None) -> Exported:
        """`hpo export NAME -o PATH [--top K] [--format yaml|training-args] [--trial N]`: the best trial (or trial
        N) as a runnable study file, the k best configs, or TrainingArguments JSON. `path` "-" returns the text
        in `.stdout` instead of writing it."""
        if top is not None:
            _at_least_one(top, "top")
        chosen = _export_format(format)
        return export_study(self.name, Path(path), top=top, output_format=chosen, trial=trial, storage=self._url)

    def export_model(self, out: str | os.PathLike[str], *, trial: int | None = None) -> Exported:
        """`hpo export NAME --model OUT [--trial N]`: the best trial's (or trial N's) model as `keep_models` kept
        it, at its best evaluation, copied into the new folder `out`: no retrain, no data read."""
        return export_model(self.name, Path(out), trial=trial, storage=self._url)


def run(study: str | os.PathLike[str] | Mapping[str, Any], *, storage: str | None = None, n_trials: int | None = None,
        progress: Progress = None, force: bool = False, enqueue: str | os.PathLike[str] | None = None) -> StudyResult:
    """`hpo run`: trials of `study` (a study file's path, or a dict of its fields) until its budget is spent or its
    deadline passes; returns the study as stored. Storage, budget, re-run checks and `force`/`enqueue` work as
    the command's options do. Silent unless `progress` (True: the live display and summary on the terminal)."""
    if n_trials is not None:
        _at_least_one(n_trials, "n_trials")
    spec, text, source = _spec_of(study)
    done = run_and_report(spec, text, source=source, console=console_for(progress), storage=storage,
                          n_trials=n_trials, force=force, enqueue=Path(enqueue) if enqueue is not None else None)
    return _result(done.study, resolve_storage(storage, spec.storage), done.message)


def load(name: str, *, storage: str | None = None) -> StudyResult:
    """A stored study by name, from `storage` (else HPO_STORAGE, else sqlite:///hpo.db, as every command reads
    it); a StorageError listing the studies there when there is no such study."""
    study, target = load_study(check_study_name(name), storage)
    return _result(study, target)


def _result(study: optuna.Study, target: StorageURL, message: str | None = None) -> StudyResult:
    target = _anchored(target)
    return StudyResult(name=study.study_name, storage=target.display, budget=study.user_attrs.get("n_trials"),
                       trials=tuple(TrialRecord.from_record(r) for r in trial_records(study)), message=message,
                       _url=target.url, _study=study)


def _anchored(target: StorageURL) -> StorageURL:
    """A relative SQLite file fixed to the directory it was opened from: a result's later reads (`status`,
    `export`) open the storage again, and must find the same file after the caller changes directory."""
    file = target.sqlite_file
    if file is None or file.is_absolute():
        return target
    from sqlalchemy.engine import make_url

    url = make_url(target.url).set(database=str(file.absolute()))
    return StorageURL.parse(url.render_as_string(hide_password=False))


def _spec_of(study: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[StudySpec, str, str]:
    """The validated spec, the text the study stores as its provenance, and the name messages give the source."""
    if isinstance(study, Mapping):
        text = _yaml_text(study)
        # relative paths in a dict are relative to the working directory, as a file's are to its own directory
        return parse_spec(parse_yaml(text, DICT_SOURCE), source=DICT_SOURCE, base_dir=Path.cwd()), text, DICT_SOURCE
    if isinstance(study, str | os.PathLike):
        spec, text = load_study_file(study)
        return spec, text, str(study)
    raise HpoError(f"study: give a study file's path or a dict of its fields, not a {type(study).__name__}")


class _StudyDumper(yaml.SafeDumper):
    """Safe YAML that also writes paths, as a user building a study dict with pathlib would expect."""


_StudyDumper.add_multi_representer(PurePath, lambda dumper, path: dumper.represent_str(os.fspath(path)))


def _yaml_text(study: Mapping[str, Any]) -> str:
    try:
        return yaml.dump(dict(study), Dumper=_StudyDumper, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:  # an object YAML cannot hold (a function, a set…): what a file could not say
        raise SpecError(DICT_SOURCE, [("", f"not writable as a study file: {exc}")]) from None


def _export_format(value: str) -> ExportFormat:
    try:
        return ExportFormat(value)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise HpoError(f"format must be one of {choices} (got {value!r})") from None


def _at_least_one(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HpoError(f"{name} must be a whole number of at least 1 (got {value!r})")
