"""The search space the time-to-quality benchmark records and replays: what a transfer study searches on the
quickstart task, continuous where the field is. Used by the recorder (record_table.py), the surrogate (its feature
scale) and every strategy (how a trial suggests a configuration, and a grid's three values per axis)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["AXES", "SPACE", "features", "from_unit", "grid_values", "suggest"]

# axis -> (low, high, kind): "log" and "linear" are floats, "int" takes every whole value of [low, high].
SPACE: dict[str, tuple[float, float, str]] = {
    "learning_rate": (5e-5, 5e-4, "log"),
    "target_weight": (0.3, 1.0, "linear"),
    "freeze_depth": (0, 6, "int"),
    "l2": (1e-7, 1e-4, "log"),
    "l1": (1e-9, 1e-6, "log"),
    "warmup_ratio": (0.0, 0.3, "linear"),
}
AXES = tuple(SPACE)


def from_unit(point: list[float] | tuple[float, ...]) -> dict[str, Any]:
    """A point of the unit cube as a configuration of SPACE."""
    config: dict[str, Any] = {}
    for u, (axis, (low, high, kind)) in zip(point, SPACE.items(), strict=True):
        if kind == "log":
            config[axis] = float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        elif kind == "int":
            config[axis] = int(min(high, low + math.floor(u * (high - low + 1))))
        else:
            config[axis] = float(low + u * (high - low))
    return config


def features(config: dict[str, Any]) -> list[float]:
    """A configuration on the scale a model of it should see: log axes as logs, the others as they are."""
    return [math.log10(config[a]) if SPACE[a][2] == "log" else float(config[a]) for a in AXES]


def grid_values() -> dict[str, list[Any]]:
    """Three values per axis, as a user writes a grid: low, middle, high (log-spaced on a log axis)."""
    values: dict[str, list[Any]] = {}
    for axis, (low, high, kind) in SPACE.items():
        if kind == "log":
            values[axis] = [low, math.sqrt(low * high), high]
        elif kind == "int":
            values[axis] = [int(low), int((low + high) // 2), int(high)]
        else:
            values[axis] = [low, (low + high) / 2, high]
    return values


def suggest(trial: Any, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """A configuration from an Optuna trial over the continuous space (`fixed` axes left out of the search)."""
    fixed = fixed or {}
    config: dict[str, Any] = {}
    for axis, (low, high, kind) in SPACE.items():
        if axis in fixed:
            config[axis] = fixed[axis]
        elif kind == "int":
            config[axis] = trial.suggest_int(axis, int(low), int(high))
        else:
            config[axis] = trial.suggest_float(axis, low, high, log=kind == "log")
    return config
