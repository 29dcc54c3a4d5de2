"""Whole-study reads in a few SQL queries each, for the commands that list, summarise and draw studies.

Optuna's `study.trials` builds every trial with all its attributes and values, query by query: 14 s for a
10,000-trial study here, and `hpo studies` did that for every study. These read the rows they need from Optuna's own
tables in one query per table (trials, values, params, user attributes, intermediate values), filtered in SQL, and
turn them into plain records or into FrozenTrials for the report. Written by hand because Optuna has no bulk read.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import optuna
from sqlalchemy import bindparam, text

from hpo.storage.queries import backend_of, engine_of, fetch

__all__ = ["StudySummary", "TrialRow", "best_numbers", "curves", "frozen_trials", "study_summaries", "trial_numbers",
           "trial_rows"]


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: float | None
    datetime_start: datetime | None
    datetime_complete: datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    trial_id: int = -1
    distributions: dict[str, str] = field(default_factory=dict)  # param -> Optuna's distribution JSON


@dataclass(frozen=True)
class StudySummary:
    name: str
    counts: Counter[str]
    budget: int | None
    best_value: float | None
    created: datetime | None


# User attributes renamed since studies were first stored: the stored (old) name -> today's. Read under today's
# names, so no reader above the storage knows the old ones.
RENAMED_ATTRS = {"epochs_completed": "epochs_run", "best_step": "best_evaluation"}
_OLD_NAMES = {new: old for old, new in RENAMED_ATTRS.items()}


def current_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """A trial's user attributes under today's names (a value stored under both names: today's wins)."""
    renamed = {RENAMED_ATTRS.get(key, key): value for key, value in attrs.items() if key in RENAMED_ATTRS}
    return {**renamed, **{key: value for key, value in attrs.items() if key not in RENAMED_ATTRS}}


@lru_cache(maxsize=4096)
def _distribution(text_: str) -> optuna.distributions.BaseDistribution:
    return optuna.distributions.json_to_distribution(text_)


def _value(value: float | None, kind: str | None) -> float | None:
    return {"INF_POS": float("inf"), "INF_NEG": float("-inf")}.get(str(kind), value)


def _study_id(study: optuna.Study) -> int:
    return backend_of(study).get_study_id_from_name(study.study_name)


def _in_memory(study: optuna.Study, states: tuple[str, ...] | None = None,
               numbers: list[int] | None = None) -> list[optuna.trial.FrozenTrial] | None:
    """An in-memory study's trials (filtered as `_select` filters), or None for a study in a database."""
    if engine_of(study) is not None:
        return None
    wanted = set(numbers) if numbers is not None else None
    return [t for t in study.get_trials(deepcopy=False)
            if (states is None or t.state.name in states) and (wanted is None or t.number in wanted)]


def _select(study: optuna.Study, query: str, states: tuple[str, ...] | None = None,
            numbers: list[int] | None = None, keys: tuple[str, ...] | None = None, **values: Any) -> list[Any]:
    """Rows of `query` (over `trials t`, joined to the table it reads) for the study, filtered by state, number and
    (`a.key`) attribute name; `{where}` in the query takes the filters."""
    filters = {"states": (" AND t.state IN :states", states), "numbers": (" AND t.number IN :numbers", numbers),
               "keys": (" AND a.key IN :keys", keys)}
    used = {name: list(given) for name, (_, given) in filters.items() if given is not None}
    if any(not given for given in used.values()):
        return []  # an empty filter matches nothing (and `IN ()` is not SQL)
    statement = text(query.replace("{where}", "".join(filters[name][0] for name in used)))
    statement = statement.bindparams(*(bindparam(name, expanding=True) for name in used))
    return fetch(engine_of(study), statement, study=_study_id(study), **used, **values)


def trial_rows(study: optuna.Study, *, states: tuple[str, ...] | None = None, numbers: list[int] | None = None,
               attrs: tuple[str, ...] | None = None, params: bool = True) -> list[TrialRow]:
    """The study's trials (those in `states`, or with `numbers`), ordered by number, with their value, params
    (unless `params` is false) and user attributes (only `attrs`, if given)."""
    if (memory := _in_memory(study, states, numbers)) is not None:
        return [TrialRow(t.number, t.state.name, t.value, t.datetime_start, t.datetime_complete,
                         dict(t.params) if params else {},
                         {k: v for k, v in current_attrs(t.user_attrs).items() if attrs is None or k in attrs},
                         t._trial_id,
                         {k: optuna.distributions.distribution_to_json(d) for k, d in t.distributions.items()}
                         if params else {}) for t in memory]
    trials = _select(study, "SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete "
                            "FROM trials t WHERE t.study_id = :study{where} ORDER BY t.number", states, numbers)
    values = dict((tid, _value(v, kind)) for tid, v, kind in _select(
        study, "SELECT v.trial_id, v.value, v.value_type FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id "
               "WHERE t.study_id = :study AND v.objective = 0{where}", states, numbers))
    chosen: dict[int, dict[str, Any]] = defaultdict(dict)
    kinds: dict[int, dict[str, str]] = defaultdict(dict)
    for tid, name, internal, dist in _select(
            study, "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p "
                   "JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :study{where} ORDER BY p.param_id",
            states, numbers) \
            if params else ():
        chosen[tid][name] = _distribution(dist).to_external_repr(internal)
        kinds[tid][name] = dist
    user: dict[int, dict[str, Any]] = defaultdict(dict)
    stored_names = None if attrs is None else (*attrs, *(_OLD_NAMES[a] for a in attrs if a in _OLD_NAMES))
    for tid, key, value in _select(
            study, "SELECT a.trial_id, a.key, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = "
                   "a.trial_id WHERE t.study_id = :study{where}", states, numbers, stored_names):
        user[tid][key] = json.loads(value)
    return [TrialRow(number, str(state), values.get(tid), _when(start), _when(complete), chosen[tid],
                     current_attrs(user[tid]), tid, kinds[tid]) for tid, number, state, start, complete in trials]


def _when(value: Any) -> datetime | None:
    """SQLite hands back datetimes as text; PostgreSQL as datetimes (naive local time, as Optuna stores them)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def curves(study: optuna.Study, numbers: list[int]) -> dict[int, dict[int, float]]:
    """Each trial's intermediate values (its validation F1 per evaluation), by trial number."""
    if (memory := _in_memory(study, numbers=numbers)) is not None:
        return {t.number: dict(t.intermediate_values) for t in memory if t.intermediate_values}
    found: dict[int, dict[int, float]] = defaultdict(dict)
    for number, step, value, kind in _select(
            study, "SELECT t.number, i.step, i.intermediate_value, i.intermediate_value_type FROM "
                   "trial_intermediate_values i JOIN trials t ON t.trial_id = i.trial_id WHERE t.study_id = :study"
                   "{where}", numbers=numbers):
        found[number][step] = {"INF_POS": float("inf"), "INF_NEG": float("-inf"), "NAN": float("nan")}.get(
            str(kind), value)
    return found


def best_numbers(study: optuna.Study, k: int) -> list[int]:
    """The numbers of the k best COMPLETE trials, best first (ties: the earlier trial)."""
    if (memory := _in_memory(study, states=("COMPLETE",))) is not None:
        sign = 1 if study.direction.name == "MINIMIZE" else -1
        ranked = sorted((t for t in memory if t.value is not None), key=lambda t: (sign * t.value, t.number))
        return [t.number for t in ranked[:k]]
    order = "DESC" if study.direction.name == "MAXIMIZE" else "ASC"
    rows = _select(study, "SELECT t.number FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id WHERE "
                          f"t.study_id = :study AND t.state = 'COMPLETE' AND v.objective = 0 AND v.value IS NOT NULL"
                          f"{{where}} ORDER BY v.value {order}, t.number LIMIT :k", k=k)
    return [number for (number,) in rows]


def trial_numbers(study: optuna.Study) -> list[int]:
    if (memory := _in_memory(study)) is not None:
        return [t.number for t in memory]
    return [number for (number,) in _select(study, "SELECT t.number FROM trials t WHERE t.study_id = :study{where} "
                                                   "ORDER BY t.number")]


def frozen_trials(study: optuna.Study, numbers: list[int]) -> list[optuna.trial.FrozenTrial]:
    """The trials `numbers` as Optuna's FrozenTrials (values, params, user attributes, intermediate values), for
    drawing them: a report of a large study draws a selection of its trials in an in-memory study."""
    from optuna.trial import FrozenTrial, TrialState

    if (memory := _in_memory(study, numbers=numbers)) is not None:
        return memory
    rows = trial_rows(study, numbers=numbers)
    steps = curves(study, numbers)
    return [FrozenTrial(number=r.number, state=TrialState[r.state], value=r.value, values=None,
                        datetime_start=r.datetime_start, datetime_complete=r.datetime_complete, params=r.params,
                        distributions={k: _distribution(v) for k, v in r.distributions.items()},
                        user_attrs=r.user_attrs, system_attrs={}, intermediate_values=steps.get(r.number, {}),
                        trial_id=r.trial_id) for r in rows]


def study_summaries(storage: Any) -> list[StudySummary]:
    """Every study in the storage with its trial counts per state, budget, best value and creation time, in four
    queries whatever the number of trials."""
    engine = storage.engine
    studies = fetch(engine, text("SELECT s.study_id, s.study_name, d.direction FROM studies s LEFT JOIN "
                                 "study_directions d ON d.study_id = s.study_id AND d.objective = 0"))
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for sid, state, n in fetch(engine, text("SELECT study_id, state, count(*) FROM trials GROUP BY study_id, state")):
        counts[sid][str(state)] = int(n)
    best = {sid: (high, low) for sid, high, low in fetch(engine, text(
        "SELECT t.study_id, max(v.value), min(v.value) FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id "
        "WHERE t.state = 'COMPLETE' AND v.objective = 0 GROUP BY t.study_id"))}
    attrs: dict[int, dict[str, Any]] = defaultdict(dict)
    for sid, key, value in fetch(engine, text("SELECT study_id, key, value_json FROM study_user_attributes "
                                              "WHERE key IN ('n_trials', 'created_at', 'provenance')")):
        attrs[sid][key] = json.loads(value)
    summaries = []
    for sid, name, direction in studies:
        high, low = best.get(sid, (None, None))
        old = attrs[sid].get("provenance")  # studies made before kept the whole record here
        created = attrs[sid].get("created_at") or (old.get("created_at") if isinstance(old, dict) else None)
        summaries.append(StudySummary(name, counts[sid], attrs[sid].get("n_trials"),
                                      low if str(direction) == "MINIMIZE" else high,
                                      datetime.fromisoformat(created) if created else None))
    return summaries
