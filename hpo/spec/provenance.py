"""The record a study keeps of what it was created from (`hpo run` writes it, hpo/search/provenance.py): the study
file's text and hash, the spec resolved, the search space, model, data fingerprint, package versions and commit.
Read back validated, here, by everything that needs it (re-run checks, exports, reports, `stored_spec`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from hpo.train.config import current_names

if TYPE_CHECKING:
    import optuna

__all__ = ["Provenance", "stored_provenance"]


class Provenance(BaseModel):
    """A study's provenance record. Fields added later are optional, so records of older studies still read."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    created_at: str
    spec_text: str
    spec_resolved: str | None = None  # dump_spec of the spec, absolute paths (absent in studies made before)
    spec_sha256: str
    search_space: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"fixed": {}, "searched": {}})
    model: dict[str, Any]
    data: dict[str, Any]
    packages: dict[str, str | None] = Field(default_factory=dict)
    git_commit: str | None = None

    def fixed(self, name: str) -> Any:
        """A training value the study fixed (did not search), under today's field names."""
        return current_names(self.search_space.get("fixed", {})).get(name)

    def record(self) -> dict[str, Any]:
        """What the storage keeps (JSON)."""
        return self.model_dump(mode="json")


def stored_provenance(study: optuna.Study, *, forced: bool = False) -> Provenance | None:
    """The study's provenance (or what a forced re-run continued it with), or None for a study `hpo run` did not
    create."""
    from hpo.storage import provenance_of

    record = provenance_of(study, forced=forced)
    return Provenance.model_validate(record) if record is not None else None
