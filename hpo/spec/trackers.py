"""The study file's `trackers:` section: where each trial is also recorded as a run (MLflow, Weights & Biases).

A tracking URI obeys the storage URL's rule: no password or token in the study file (refused here, as `storage:`
is), masked wherever it is shown, and MLFLOW_TRACKING_URI (which may hold one) wins over the file. The tracker
packages are optional extras; `tracker_problems` names a missing one before anything is stored or trained.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Annotated, Literal

from pydantic import Field, field_validator

from hpo.errors import StorageError
from hpo.settings import StorageURL
from hpo.train.config import Strict

__all__ = ["TRACKING_URI_VARIABLE", "MlflowSpec", "TrackersSpec", "WandbSpec", "mask_tracking_uri",
           "parse_tracking_uri", "tracker_problems"]

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"

# What each tracker imports (module: distribution); the extra of the same name installs them. MLflow's per-trial
# runs are written by optuna-integration's MLflowCallback (hpo/search/trackers/_mlflow.py), so it is in the mlflow
# extra.
_PACKAGES = {"mlflow": {"mlflow": "mlflow-skinny", "optuna_integration": "optuna-integration"},
             "wandb": {"wandb": "wandb"}}


class MlflowSpec(Strict):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI without a secret, e.g. sqlite:///mlflow.db or http://host:5000 "
                          "(MLFLOW_TRACKING_URI, which may hold one, wins).")
    experiment: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="MLflow experiment the study's runs go to; the study's name when left out.")

    @field_validator("tracking_uri")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parsed = parse_tracking_uri(value)
        except StorageError:
            raise ValueError("has an '@' after its user:password@ part (not shown: it may hold a password); "
                             "write an '@' as %40, and put a URL with a password in MLFLOW_TRACKING_URI") from None
        if parsed is not None and parsed.secrets:
            raise ValueError("must not hold a password or other secret (user:password@, ?token=, ...); put the URI "
                             f"in {TRACKING_URI_VARIABLE} instead")
        return value


class WandbSpec(Strict):
    project: Annotated[str, Field(min_length=1)] = Field(description="W&B project the trial runs go to.")
    entity: str | None = Field(None, description="W&B team or user; your default entity when left out.")
    mode: Literal["online", "offline"] = Field(
        "online", description="offline: runs are written only under WANDB_DIR (else the working directory) in "
                              "wandb/; `wandb sync` uploads them later.")


class TrackersSpec(Strict):
    mlflow: MlflowSpec | None = Field(None, description="One MLflow parent run per study, a child run per trial.")
    wandb: WandbSpec | None = Field(None, description="One W&B run per trial, grouped by the study's name.")

    def named(self) -> list[str]:
        return [name for name in _PACKAGES if getattr(self, name) is not None]

    def tracking_uri(self) -> str | None:
        """MLflow's tracking URI: MLFLOW_TRACKING_URI, then the study file's (None: MLflow's own default)."""
        return os.environ.get(TRACKING_URI_VARIABLE) or (self.mlflow.tracking_uri if self.mlflow else None)


def parse_tracking_uri(uri: str) -> StorageURL | None:
    """A URL-shaped tracking URI parsed as a storage URL is (its secrets found, its display masked); None for a
    local path, which holds none. StorageError for a password with a raw '@', which would be shown as the host."""
    if "://" not in uri:
        return None
    try:
        return StorageURL.parse(uri)
    except StorageError:
        if "@" in uri:
            raise
        return None  # a scheme SQLAlchemy does not read, without a userinfo part: nothing to mask


def mask_tracking_uri(uri: str) -> str:
    """The display form of a tracking URI: every secret masked; an unreadable one with an '@' not shown."""
    try:
        parsed = parse_tracking_uri(uri)
    except StorageError:
        return "<tracking URI not shown: it has a raw '@'>"
    return parsed.display if parsed is not None else uri


def tracker_problems(trackers: TrackersSpec | None) -> list[tuple[str, str]]:
    """(field path, message) for each tracker the study names whose package is not installed: checked with the
    study file's other checks, before the study is created or any trial runs."""
    problems = []
    for name in trackers.named() if trackers else []:
        missing = [package for module, package in _PACKAGES[name].items() if not _installed(module)]
        if missing:
            problems.append((f"trackers -> {name}", f"{' and '.join(missing)} not installed; install the extra: "
                                                    f"pip install 'transfer-hpo[{name}]'"))
    return problems


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already (optuna_integration's lazy module then has no __spec__)
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses the name, or a half-imported module
        return False
