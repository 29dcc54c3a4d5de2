"""The source task as a search dimension: `source: {choices: [{builtin: ...}, {path: ...}, none]}`.

Each candidate has a key, what a trial stores as its `source` parameter (an Optuna categorical: a short string, the
same on every machine): a built-in dataset's name, `hub:ID` (and `:CONFIG`) for a hub dataset, a file's name for a
local file; `none` is no source at all, so a trial that draws it trains on the target alone (λ = 1, and it counts
for the study's target-only share). A study file with one source, as before, is a search over that one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from hpo.train.config import Strict
from hpo.train.sources import DatasetSpec

__all__ = ["NO_SOURCE", "SOURCE_TAGS", "SourceChoices", "SourceEntry", "source_key"]

NO_SOURCE = "none"


def source_key(dataset: DatasetSpec | None) -> str:
    """What a trial stores for a candidate source (and reports show)."""
    if dataset is None:
        return NO_SOURCE
    if dataset.builtin is not None:
        return dataset.builtin
    if dataset.hub is not None:
        return f"hub:{dataset.hub}" + (f":{dataset.hub_config}" if dataset.hub_config else "")
    return dataset.path.name if dataset.path is not None else NO_SOURCE


class SourceChoices(Strict):
    """Candidate source tasks, one drawn per trial like any categorical."""

    choices: list[DatasetSpec | Literal["none"]] = Field(
        min_length=1, description="Datasets (as `source:` takes one) or `none` (target only)."
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> SourceChoices:
        keys = [source_key(None if choice == NO_SOURCE else choice) for choice in self.choices]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise ValueError(f"two candidate sources share the key {', '.join(twice)} (a built-in's name, hub:ID, "
                             "or a file's name): each must be told apart")
        return self

    def candidates(self) -> dict[str, DatasetSpec | None]:
        """Each candidate by its key; `none` maps to None."""
        return {source_key(None if c == NO_SOURCE else c): (None if c == NO_SOURCE else c) for c in self.choices}


def _source_kind(value: Any) -> str:
    return "source-choices" if isinstance(value, SourceChoices) or (isinstance(value, dict) and "choices" in value) \
        else "one-source"


# The tags name the union's members in pydantic's error locations; hpo/spec/checks.py leaves them out of field paths.
SOURCE_TAGS = ("one-source", "source-choices")
SourceEntry = Annotated[
    Annotated[DatasetSpec, Tag("one-source")] | Annotated[SourceChoices, Tag("source-choices")],
    Discriminator(_source_kind),
]
