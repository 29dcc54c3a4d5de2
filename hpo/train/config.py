"""The flat, typed set of values one fine-tune runs with (nanoGPT style: one config, saved with every result).

`TrainConfig` is both the `training:` section of a study file and what a trial hands to the loop once the
searched fields are filled in. The field constraints below are the one definition of what is legal: the search
space checks its bounds and choices against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ALL_LINEAR", "LAMBDA", "LAMBDA_NAMES", "LEGACY_LAMBDA", "LORA_FIELDS", "NOT_SEARCHABLE", "Strict",
           "TrainConfig", "current_names", "lambda_of", "reject_bool", "target_module_names"]

# λ is named for what it weighs: the target loss. Studies made before the rename stored it as `source_weight`; such
# a study keeps that parameter name (a study never mixes both), so whatever reads λ from stored parameters reads it
# through `lambda_of` / `current_names`.
LAMBDA = "target_weight"
LEGACY_LAMBDA = "source_weight"
LAMBDA_NAMES = (LAMBDA, LEGACY_LAMBDA)


def lambda_of(params: Mapping[str, Any]) -> float | None:
    """λ of a trial's parameters, under either name; None when the trial did not search it."""
    for name in LAMBDA_NAMES:
        if name in params:
            return float(params[name])
    return None


def current_names(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's stored parameters under today's field names (`source_weight` read as `target_weight`)."""
    return {LAMBDA if name == LEGACY_LAMBDA else name: value for name, value in params.items()}


def reject_bool(value: Any, annotation: Any) -> Any:
    """YAML's true/false are not numbers: refuse them wherever the field is not a boolean (pydantic's lax mode
    would read `epochs: true` as 1)."""
    if isinstance(value, bool) and annotation is not bool:
        raise ValueError(f"expected a number or text, got a boolean ({str(value).lower()})")
    return value

PositiveFloat = Annotated[float, Field(gt=0)]
ALL_LINEAR = "all-linear"  # peft's name for every linear layer
NonNegativeFloat = Annotated[float, Field(ge=0)]


class Strict(BaseModel):
    """The base of every model a study file is read into: frozen; unknown keys, booleans where numbers belong and
    non-finite numbers refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: Any) -> Any:
        return reject_bool(value, cls.model_fields[info.field_name].annotation)


class TrainConfig(Strict):
    # What the search is usually about.
    learning_rate: PositiveFloat = Field(1e-4, description="Peak AdamW learning rate of the encoder.")
    target_weight: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="λ: weight of the target loss; 1 - λ weighs the source loss. λ = 1 is target only."
    )
    freeze_depth: Annotated[int, Field(ge=0, le=1000)] = Field(
        0, description="Freeze the embeddings and the bottom k encoder layers (0: nothing frozen)."
    )
    l1: NonNegativeFloat = Field(0.0, description="L1 penalty weight: l1·Σ|θ| over trainable parameters.")
    l2: NonNegativeFloat = Field(0.0, description="L2 penalty weight: l2·Σθ² over trainable parameters.")
    penalty_reference: Literal["zero", "pretrained"] = Field(
        "zero", description="`pretrained`: penalise θ - θ_pretrained (L2-SP); new heads keep the plain penalty."
    )
    weight_decay: NonNegativeFloat = Field(
        0.0, description="AdamW's decoupled weight decay; 0 so that l1/l2 are the whole regulariser."
    )
    head_lr_multiplier: PositiveFloat = Field(10.0, description="Heads learn at learning_rate × this.")
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.1, description="Share of steps with linear warmup; linear decay to 0 follows."
    )
    epochs: Annotated[int, Field(ge=1, le=1000)] = Field(3, description="Passes over the target training split.")
    batch_size: Annotated[int, Field(ge=1, le=65536)] = Field(16, description="Target (and source) examples per step.")
    source_batches_per_step: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="Source batches (batch_size each) per target batch while λ < 1: with a small target, one "
                       "source batch a step shows the source task little (64 documents, batch 16, 3 epochs: 192 "
                       "source examples in all)."
    )
    max_length: Annotated[int, Field(ge=8, le=131072)] = Field(
        128, description="Tokens per text after truncation; at most the model's positions (checked)."
    )

    # What trains, and at which rate (hpo/train/adapters.py).
    adapter: Literal["full", "lora"] = Field(
        "full", description="full: every unfrozen weight trains; lora: they stay frozen and LoRA adapters (peft) "
                            "on the layers above freeze_depth train instead."
    )
    lora_r: Annotated[int, Field(ge=1, le=4096)] = Field(8, description="LoRA rank r of each adapter (adapter: lora).")
    lora_alpha: PositiveFloat = Field(16.0, description="LoRA α: an adapter adds (α/r)·B·A to the weight it adapts.")
    # 0, peft's default: the adapted layers keep their own dropout in training, l1/l2 are the study's regularisers,
    # and a dropout on each adapter's input costs a mask per adapted matrix per step.
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="Dropout on each LoRA adapter's input, in [0, 1)."
    )
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="Modules that get an adapter: all-linear (every linear layer of the adapted layers: "
                                  "attention and MLP), or names matched against the end of a module's path, as a list "
                                  "or one comma-separated string (query,value)."
    )
    layer_lr_decay: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="ξ: layer i of L trains at learning_rate·ξ^(L−i), the embeddings at learning_rate·ξ^L; 1: "
                         "one rate for the whole encoder."
    )
    pooling: Literal["mean", "cls", "last"] | None = Field(
        None, description="How a text's states become one vector: mean, cls (first token) or last (last real token, "
                          "for decoders); none: the model section's pooling."
    )

    # How the run is carried out; fixed for a study.
    evaluations_per_epoch: Annotated[int, Field(ge=1, le=100)] = Field(
        2, description="Validation F1 is computed (and reported to the pruner) this many times an epoch."
    )
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(
        0, description="Seeds data splits, sampling, head initialisation and batch order (0 .. 2**32 - 1, numpy's "
                       "range)."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast where the GPU or CPU computes bf16 natively, fp16 with gradient "
                            "scaling on a GPU without bf16, else fp32 (measured)."
    )
    max_grad_norm: PositiveFloat | None = Field(
        None, description="Clip the gradients' global norm to this before each step (none: no clipping)."
    )
    reuse_activations: bool = Field(
        True, description="Compute the frozen layers' outputs once and reuse them (hpo/train/activations.py)."
    )
    time_limit_s: PositiveFloat | None = Field(
        None, description="A trial running longer than this is stopped and marked FAIL."
    )
    f1_average: Literal["macro", "micro", "weighted"] = "macro"
    gradient_checkpointing: bool = Field(
        False, description="Recompute the trainable layers' activations during the backward pass instead of keeping "
                           "them: less memory, more time."
    )

    @field_validator("lora_target_modules")
    @classmethod
    def _module_names(cls, value: str | list[str]) -> str | list[str]:
        names = target_module_names(value)
        if not names or not all(names):
            raise ValueError(f"name at least one module, and no empty names (got {value!r})")
        if ALL_LINEAR in names and len(names) > 1:
            raise ValueError(f"{ALL_LINEAR} already names every linear layer; give it alone (got {value!r})")
        return value


def target_module_names(value: str | list[str]) -> list[str]:
    """`lora_target_modules` as a list of names (["all-linear"] for all-linear): a string may list several, comma
    separated, so that the field can be searched over strings (Optuna's categorical choices are scalars)."""
    return [name.strip() for name in value.split(",")] if isinstance(value, str) else list(value)


# Fields that define how a run is carried out rather than what is tuned.
NOT_SEARCHABLE = frozenset({"evaluations_per_epoch", "seed", "device", "precision", "time_limit_s", "f1_average",
                            "reuse_activations", "gradient_checkpointing"})
# Fields that mean something only when `adapter` is lora.
LORA_FIELDS = tuple(name for name in TrainConfig.model_fields if name.startswith("lora_"))
