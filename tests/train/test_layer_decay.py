"""Layer-wise learning-rate decay ξ: layer i of L trains at lr·ξ^(L−i), the embeddings at lr·ξ^L, the heads at
lr·head_lr_multiplier; frozen layers have no group; ξ = 1 is the two groups of before; adapters take their layer's
rate. Read from the optimiser of real runs, and seen in what one real step moves."""

from __future__ import annotations

import pytest
import torch

from hpo.train.adapters import add_lora, parameter_groups
from hpo.train.config import TrainConfig
from hpo.train.loop import train
from hpo.train.model import TransferModel, encoder_layers
from tests.builders import one_batch, tiny_encoder

LR, HEADS = 1e-3, 10.0


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    from hpo.settings import settings

    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "cache"))
    settings.cache_clear()


@pytest.fixture
def optimizers(monkeypatch) -> list[torch.optim.Optimizer]:
    """Every AdamW the loop makes, to read its groups after the run."""
    made: list[torch.optim.Optimizer] = []

    class Recorded(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", Recorded)
    return made


def model_at(depth: int, decay: float, adapter: str = "full", **changes) -> tuple[TransferModel, TrainConfig]:
    config = TrainConfig(epochs=1, batch_size=8, freeze_depth=depth, learning_rate=LR, head_lr_multiplier=HEADS,
                         layer_lr_decay=decay, adapter=adapter, target_weight=1.0, warmup_ratio=0.0, precision="fp32",
                         device="cpu", **changes)
    torch.manual_seed(1)
    model = TransferModel(tiny_encoder("bert"), n_target=3, n_source=2, pooling="mean")
    model.freeze(depth)
    if adapter == "lora":
        add_lora(model, config)
    return model, config


def run(model: TransferModel, config: TrainConfig) -> None:
    data = one_batch()
    train(config, model, data, data, None, pad_id=0, on_eval=lambda e: None)


def ids(params) -> set[int]:
    return {id(p) for p in params}


def assert_groups(optimizer: torch.optim.Optimizer, expected: list[tuple[set[int], float]]) -> None:
    """The optimiser's groups hold exactly these parameters, in this order, at these base rates (`initial_lr`: the
    rate the schedule scales)."""
    assert [ids(group["params"]) for group in optimizer.param_groups] == [params for params, _ in expected]
    assert [group["initial_lr"] for group in optimizer.param_groups] == pytest.approx([lr for _, lr in expected])


def expected_groups(model: TransferModel, depth: int, decay: float) -> list[tuple[set[int], float]]:
    """Written from the definition: the embeddings (when trainable), each trainable layer i, then the heads."""
    layers, top = encoder_layers(model.encoder), 4
    trainable = [(ids(p for p in model.encoder.embeddings.parameters() if p.requires_grad), LR * decay**top)]
    trainable += [(ids(p for p in layers[i - 1].parameters() if p.requires_grad), LR * decay ** (top - i))
                  for i in range(1, top + 1)]
    return [group for group in trainable if group[0]] + [(ids(model.head_parameters()), LR * HEADS)]


@pytest.mark.parametrize("depth", [0, 2])
def test_each_trainable_layer_trains_at_lr_times_decay_to_its_distance_from_the_top(depth, optimizers):
    model, config = model_at(depth, 0.5)
    run(model, config)
    (optimizer,) = optimizers
    assert_groups(optimizer, expected_groups(model, depth, 0.5))
    assert len(optimizer.param_groups) == (4 - depth) + (depth == 0) + 1  # none for what is frozen


def test_a_decay_of_1_gives_the_two_groups_of_before(optimizers):
    model, config = model_at(1, 1.0)
    run(model, config)
    (optimizer,) = optimizers
    got = [(group["params"], group["initial_lr"]) for group in optimizer.param_groups]
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    assert len(got) == 2
    assert all(a is b for a, b in zip(got[0][0], encoder, strict=True)) and got[0][1] == LR
    assert all(a is b for a, b in zip(got[1][0], model.head_parameters(), strict=True)) and got[1][1] == LR * HEADS


def test_adapters_train_at_their_layer_s_rate(optimizers):
    model, config = model_at(2, 0.5, adapter="lora")
    run(model, config)
    (optimizer,) = optimizers
    layers = encoder_layers(model.encoder)
    adapters = [ids(p for name, p in layers[i].named_parameters() if "lora_" in name) for i in (2, 3)]
    assert all(adapters)
    assert_groups(optimizer, [(adapters[0], LR * 0.5), (adapters[1], LR), (ids(model.head_parameters()), LR * HEADS)])


def test_one_step_moves_each_layer_by_its_own_rate():
    """Adam's first step moves every weight with a gradient by its rate (|update| = lr·|g|/(|g| + ε)), so the
    largest move in each layer is that layer's rate."""
    model, config = model_at(0, 0.5)
    before = [p.detach().clone() for p in model.parameters()]
    run(model, config)  # one batch: one step, at the schedule's factor 1 (no warmup)
    moved = {id(p): (p.detach() - b).abs().max().item() for p, b in zip(model.parameters(), before, strict=True)}
    layers = encoder_layers(model.encoder)
    largest = [max(moved[id(p)] for p in model.encoder.embeddings.parameters())]
    largest += [max(moved[id(p)] for p in layer.parameters()) for layer in layers]
    assert largest == pytest.approx([LR * 0.5 ** (4 - i) for i in range(5)], rel=1e-3)


def test_parameter_groups_leave_no_trainable_parameter_out():
    for decay in (1.0, 0.7):
        model, config = model_at(1, decay)
        grouped = [id(p) for group in parameter_groups(model, config) for p in group["params"]]
        assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
