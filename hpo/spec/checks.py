"""The second pass over a study file: what needs two fields at once (search-space bounds and choices against the
training field they tune, the sampler against the space), and turning pydantic's errors into field-path lines."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hpo.spec.models import ENTRY_TAGS, SEARCHABLE, Choice, Range, SearchEntry, StudySpec
from hpo.spec.sources import SOURCE_TAGS
from hpo.train.config import LORA_FIELDS, NOT_SEARCHABLE, TrainConfig

__all__ = ["adapter_problems", "canonical_json", "check_search_space", "describe", "search_space_problems_alone"]


def canonical_json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def search_space_problems_alone(raw: dict[str, Any]) -> list[tuple[str, str]]:
    sampler = raw.get("sampler")
    sampler_name = sampler.get("name") if isinstance(sampler, dict) else sampler
    try:
        space = TypeAdapter(dict[str, SearchEntry]).validate_python(raw.get("search_space") or {})
    except ValidationError:
        return []
    try:
        training: TrainConfig | None = TrainConfig.model_validate(raw.get("training") or {})
    except ValidationError:
        training = None  # its own problems are reported already
    return check_search_space(space, sampler_name, training=training)[1]


def check_search_space(
    search_space: dict[str, Any], sampler_name: str | None, *, training: TrainConfig | None = None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Check each entry against the training field it tunes, and, given the training section, the LoRA fields
    against `adapter`; return entries coerced to the field's type."""
    problems: list[tuple[str, str]] = []
    typed: dict[str, Any] = {}
    for name, entry in search_space.items():
        where = f"search_space -> {name}"
        if name not in TrainConfig.model_fields:
            problems.append((where, f"unknown field; searchable fields: {', '.join(SEARCHABLE)}"))
            continue
        if name in NOT_SEARCHABLE:
            problems.append((where, "is fixed for a study; set it under training instead"))
            continue
        field_check = _field_adapter(name)
        if isinstance(entry, Range):
            typed[name], entry_problems = _check_range(name, entry, field_check)
        elif isinstance(entry, Choice):
            values = [_validated(field_check, choice) for choice in entry.choices]
            entry_problems = [(f"choices[{i}]", err) for i, (_, err) in enumerate(values) if err]
            entry_problems += [(f"choices[{i}]", _NOT_SCALAR) for i, (value, err) in enumerate(values)
                               if not err and not isinstance(value, _SCALARS)]
            typed[name] = Choice(choices=[value for value, _ in values])
            if len({canonical_json(v) for v, _ in values}) != len(values):
                entry_problems.append(("choices", "lists a value twice"))
        else:
            value, err = _validated(field_check, entry)
            typed[name], entry_problems = value, ([("", err)] if err else [])
        problems += [(f"{where} -> {sub}" if sub else where, msg) for sub, msg in entry_problems]
    if sampler_name == "cmaes":
        categorical = [name for name, entry in typed.items() if isinstance(entry, Choice)]
        if categorical:
            problems.append(
                ("sampler -> name", f"cmaes cannot search categorical fields ({', '.join(categorical)}); "
                 "use tpe, gp, random or qmc, or give them ranges")
            )
    if training is not None:
        problems += adapter_problems(training, typed)
    return typed, problems


_SCALARS = (str, int, float, bool, type(None))  # what Optuna stores as a categorical choice
_NOT_SCALAR = "a choice must be a number or text (Optuna's categorical choices); write a list of names as one " \
              "comma-separated string, e.g. query,value"


def adapter_problems(training: TrainConfig, search_space: dict[str, Any]) -> list[tuple[str, str]]:
    """A LoRA field given where `adapter` can only be full, naming both fields: searched, or fixed (in training or
    the search space) away from its default. A default is not "given": a stored study file writes every default,
    and an export fixes every searched field of its trial. With adapter searched over choices that hold lora, the
    LoRA fields apply to those trials and are fine."""
    adapter = search_space.get("adapter", training.adapter)
    if isinstance(adapter, Range):  # refused on its own (adapter takes choices)
        return []
    adapters = adapter.choices if isinstance(adapter, Choice) else [adapter]
    if set(adapters) != {"full"}:  # lora among them (fine), or a bad value (refused on its own)
        return []
    adapter_path = "search_space -> adapter" if "adapter" in search_space else "training -> adapter"
    given = []
    for name in LORA_FIELDS:
        entry = search_space.get(name, getattr(training, name))
        if isinstance(entry, Range | Choice) or entry != TrainConfig.model_fields[name].default:
            given.append(f"search_space -> {name}" if name in search_space else f"training -> {name}")
    said = "offers only full" if isinstance(adapter, Choice) else "is full (full fine-tuning, the default)"
    return [(where, f"is a LoRA setting, but {adapter_path} {said}: set adapter: lora, search adapter over "
                    f"choices: [full, lora], or leave {where.rsplit(' -> ', 1)[1]} out") for where in given]


def _check_range(name: str, entry: Range, field_check: TypeAdapter) -> tuple[Range, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    is_int = TrainConfig.model_fields[name].annotation is int
    kind = "int" if is_int else "float"
    if TrainConfig.model_fields[name].annotation not in (int, float):
        return entry, [("", f"{name} takes one of a set of values: write choices: [...]")]
    bounds = {}
    for key in ("low", "high"):
        value = getattr(entry, key)
        if is_int and not float(value).is_integer():
            problems.append((key, f"{name} is an int field; got {value}"))
            continue
        bounds[key], err = _validated(field_check, int(value) if is_int else float(value))
        if err:
            problems.append((key, err))
    if len(bounds) == 2 and bounds["low"] >= bounds["high"]:
        problems.append(("", f"low ({bounds['low']}) must be below high ({bounds['high']}); "
                             "for a fixed value write the value itself"))
    if entry.log and entry.step is not None:
        problems.append(("step", f"a {kind} range cannot have both log and step"))
    if entry.log and bounds.get("low", 1) <= 0:
        problems.append(("log", "a log range needs low > 0"))
    if entry.step is not None and entry.step <= 0:
        problems.append(("step", "must be > 0"))
    elif is_int and entry.step is not None and not float(entry.step).is_integer():
        problems.append(("step", f"{name} is an int field; step must be a whole number (got {entry.step})"))
    if entry.step is not None and entry.step > 0 and len(bounds) == 2 and bounds["low"] < bounds["high"]:
        problems += _step_problems(bounds["low"], bounds["high"], entry.step)
    if entry.target_only_share and name != "target_weight":
        problems.append(("target_only_share", "only target_weight has target-only trials"))
    if entry.target_only_share and bounds.get("high") != 1:
        problems.append(("target_only_share", "needs high: 1.0 so that λ = 1 lies inside the range"))
    step = entry.step
    if is_int:
        step = int(step) if step is not None else (None if entry.log else 1)
    typed = entry.model_copy(update={**bounds, "step": step}) if not problems else entry
    return typed, problems


MAX_STEPS = 1_000_000  # values a stepped range may hold: more is a continuous range written as a grid


def _step_problems(low: float, high: float, step: float) -> list[tuple[str, str]]:
    """A step must divide the range, as Optuna's distributions require (Optuna would silently cut `high`, or fail
    in every trial on a step so small that the division is impossible), into at most MAX_STEPS values."""
    import decimal

    try:
        span, unit = decimal.Decimal(str(high)) - decimal.Decimal(str(low)), decimal.Decimal(str(step))
        count, rest = divmod(span, unit)
    except (decimal.InvalidOperation, ArithmeticError):
        return [("step", f"{step} cannot step through {low} .. {high}")]
    if count > MAX_STEPS:
        return [("step", f"{step} makes {count:.3g} values out of {low} .. {high}, more than {MAX_STEPS:,}; "
                         "leave step out for a continuous range")]
    if rest != 0:
        return [("step", f"{step} does not divide the range {low} .. {high} ({span}); make high - low a multiple "
                         "of step")]
    return []


def _field_adapter(name: str) -> TypeAdapter:
    field = TrainConfig.model_fields[name]
    annotation = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
    return TypeAdapter(annotation, config=ConfigDict(allow_inf_nan=False))


def _validated(adapter: TypeAdapter, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) and adapter.core_schema.get("type") != "bool":  # YAML true/false: not numbers
        return value, f"expected a number or text, got a boolean ({str(value).lower()})"
    try:
        return adapter.validate_python(value), None
    except ValidationError as exc:
        err = exc.errors()[0]
        return value, f"{err['msg'][0].lower()}{err['msg'][1:]} (got {value!r})"



_SECRET_FIELDS = {("storage",)}
_UNION_MEMBERS = {"int", "float", "str", "bool", "constrained-int", "constrained-float"}


def describe(err: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(str(part) for part in err["loc"] if part not in (*ENTRY_TAGS, *SOURCE_TAGS))
    loc = tuple(p for p in loc if not p.startswith(("function-", "tagged-union")) and p not in _UNION_MEMBERS)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1]) if loc[0] != "search_space" else \
            (Choice if "choice-entry" in err["loc"] else Range)
        valid = f"; valid fields: {', '.join(parent.model_fields)}" if parent else ""
        return " -> ".join(loc), f"unknown field{valid}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    else:
        message = message[0].lower() + message[1:]
    if kind not in ("missing", "value_error") and loc not in _SECRET_FIELDS and "input" in err:
        message += f" (got {err['input']!r})"
    return " -> ".join(loc), message


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = StudySpec
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        members = getattr(annotation, "__args__", ())  # a union's members, each maybe Annotated with its tag
        candidates = [annotation, *members, *(getattr(member, "__origin__", None) for member in members)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model
