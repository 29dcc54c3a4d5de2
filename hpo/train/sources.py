"""Where a fine-tune's model and data come from: the `model:`, `source:` and `target:` sections of a study file.

Defined here, beside `TrainConfig`, because the training code loads from them; `hpo.spec` composes them into a
study file. Validated once (pydantic, unknown keys refused, booleans and non-finite numbers refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from hpo.train.bundled import BUNDLES
from hpo.train.config import Strict
from hpo.train.corpora import BUILTIN

__all__ = ["BUILTIN_DATASETS", "BUNDLED_MODELS", "DEFAULT_POOLING", "DatasetSpec", "ModelSpec"]

BUILTIN_DATASETS = tuple(BUILTIN)  # the registry in hpo.train.corpora: origin, licence, split sizes
BUNDLED_MODELS = tuple(BUNDLES)  # what `bundled:NAME` may name: every model bundled.py knows how to make

# Mean pooling for every family, decoder-only models included: frozen SmolLM2-135M features with a logistic
# regression on R8 measured macro-F1 0.79 mean-pooled against 0.49 from the last token. `last` is there for a model
# to be saved as a stock `*ForSequenceClassification` class.
DEFAULT_POOLING = "mean"


class ModelSpec(Strict):
    id: str = Field(description="Hub id, local directory, or `bundled:NAME` (offline): "
                                f"{', '.join(BUNDLED_MODELS)}.")
    pooling: Literal["mean", "cls", "last"] = Field(
        DEFAULT_POOLING, description="`mean` over the tokens (the default, decoder-only models included), the "
                                     "first token's state (`cls`), or the last real token's (`last`, as transformers' "
                                     "*ForSequenceClassification scores it, through a bias-free head)."
    )
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="Load the weights in float32 or bfloat16.")
    trust_remote_code: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @field_validator("id")
    @classmethod
    def _known_bundle(cls, value: str) -> str:
        if value.startswith("bundled:") and value.removeprefix("bundled:") not in BUNDLED_MODELS:
            raise ValueError(f"unknown bundled model {value!r}; bundled: {', '.join(BUNDLED_MODELS)}")
        return value


class DatasetSpec(Strict):
    """Exactly one of `builtin`, `path` or `hub` says where the data comes from."""

    builtin: str | None = Field(
        None, description=f"A built-in dataset with a fixed train/test split, fetched once into the cache: one of "
                          f"{', '.join(BUILTIN_DATASETS)}."
    )
    path: Path | None = Field(None, description="Local CSV, JSON/JSONL or Parquet file (training data).")
    test_path: Path | None = Field(None, description="Local file holding the test split, if any.")
    validation_path: Path | None = Field(
        None, description="Target only: a local file holding your own validation split (else validation_size "
                          "carves one from the training split)."
    )
    hub: str | None = Field(None, description="A Hugging Face dataset id, loaded with `datasets`.")
    hub_config: str | None = None
    train_split: str = "train"
    test_split: str | None = "test"
    validation_split: str | None = Field(None, description="Target only: the hub dataset's validation split.")
    text_column: str = "text"
    label_column: str = "label"
    max_samples: Annotated[int, Field(ge=2)] | None = Field(
        None, description="Stratified, seeded subsample of the training split."
    )

    @field_validator("builtin")
    @classmethod
    def _known_builtin(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_DATASETS:
            raise ValueError(f"unknown dataset {value!r}; built-in datasets: {', '.join(BUILTIN_DATASETS)}")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> DatasetSpec:
        given = [key for key in ("builtin", "path", "hub") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of builtin, path or hub (got {', '.join(given) or 'none'})")
        for key in ("test_path", "validation_path"):
            if getattr(self, key) is not None and self.path is None:
                raise ValueError(f"{key} goes with path")
        if self.validation_split is not None and self.hub is None:
            raise ValueError("validation_split goes with hub")
        return self

    @property
    def has_validation(self) -> bool:
        """The dataset brings its own validation split (validation_path or validation_split)."""
        return self.validation_path is not None or self.validation_split is not None

    @property
    def has_test(self) -> bool:
        """The dataset has a test split to evaluate on (built-in ones all do)."""
        return self.builtin is not None or self.test_path is not None or (self.hub is not None
                                                                          and self.test_split is not None)

    @property
    def label(self) -> str:
        return self.builtin or self.hub or str(self.path)

    @property
    def validation_label(self) -> str:
        return str(self.validation_path) if self.validation_path is not None else f"{self.label} (validation split)"

    @property
    def test_label(self) -> str:
        """What the test split is called in messages and outputs: its own file, not the training file."""
        if self.path is not None:
            return str(self.test_path) if self.test_path is not None else f"{self.path} (no test_path)"
        return f"{self.label} (test split)"
