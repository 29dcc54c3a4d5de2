"""Freezing: layer discovery on BERT, RoBERTa, DistilBERT and MiniLM-style encoders; one real optimisation
step leaves frozen weights bit-identical, moves the others, and builds no autograd graph below them."""

from __future__ import annotations

import pytest
import torch

from hpo.errors import HpoError
from hpo.train.config import TrainConfig
from hpo.train.loop import train
from hpo.train.model import TransferModel, encoder_layers
from tests.builders import one_batch, tiny_encoder


@pytest.mark.parametrize("kind", ["bert", "minilm", "roberta", "distilbert"])
def test_layer_discovery_finds_every_encoder_layer(kind):
    encoder = tiny_encoder(kind)
    layers = encoder_layers(encoder)
    assert len(layers) == 4
    assert all(type(layer).__name__.endswith(("Layer", "TransformerBlock")) for layer in layers)


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("depth", [0, 2, 4])
def test_one_step_keeps_frozen_weights_and_moves_the_rest(kind, depth):
    model = TransferModel(tiny_encoder(kind), n_target=3, n_source=2, pooling="mean")
    model.freeze(depth)  # as Workbench.new_model does: train() takes the model frozen
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    layers = encoder_layers(model.encoder)
    frozen_prefixes = ["encoder.embeddings."] + [
        f"encoder.{_path_of(model.encoder, layers[i])}." for i in range(depth)
    ] if depth else []

    grad_outputs: dict[str, bool] = {}
    modules = {"embeddings": model.encoder.embeddings}
    modules.update({f"layer{i}": layer for i, layer in enumerate(layers)})
    for label, module in modules.items():
        module.register_forward_hook(lambda _m, _i, out, label=label: grad_outputs.__setitem__(
            label, (out[0] if isinstance(out, tuple) else out).grad_fn is not None))

    batch = one_batch()  # exactly one batch: one optimisation step
    config = TrainConfig(epochs=1, batch_size=8, freeze_depth=depth, learning_rate=1e-3, target_weight=1.0,
                         warmup_ratio=0.0, precision="fp32", device="cpu")
    train(config, model, batch, batch, None, pad_id=0, on_eval=lambda e: None)

    for name, param in model.named_parameters():
        frozen = any(name.startswith(prefix) for prefix in frozen_prefixes)
        if frozen:
            assert torch.equal(param.detach(), before[name]), f"frozen {name} changed"
            assert not param.requires_grad
        elif name.startswith(("encoder.", "target_head.")):
            assert not torch.equal(param.detach(), before[name]), f"trainable {name} did not move"
    # the training step's forward (hooks keep the last call: evaluation runs under inference_mode, so
    # look at the recorded training pass by re-running one training forward)
    grad_outputs.clear()
    model.train()
    ids = torch.tensor([[7, 8, 9, 10]])
    model(ids, torch.ones_like(ids))
    for i in range(len(layers)):
        assert grad_outputs[f"layer{i}"] is (i >= depth), f"layer {i} graph at depth {depth}"
    assert grad_outputs["embeddings"] is (depth == 0)


def _path_of(root: torch.nn.Module, target: torch.nn.Module) -> str:
    return next(name for name, module in root.named_modules() if module is target)


def test_frozen_modules_stay_in_eval_mode_while_training():
    model = TransferModel(tiny_encoder("bert"), n_target=3, n_source=2, pooling="mean")
    model.freeze(2)
    model.train()
    layers = encoder_layers(model.encoder)
    assert not model.encoder.embeddings.training and not layers[0].training and not layers[1].training
    assert layers[2].training and layers[3].training


def test_freeze_depth_beyond_the_model_is_refused():
    model = TransferModel(tiny_encoder("distilbert"), n_target=3, n_source=2, pooling="cls")
    with pytest.raises(HpoError, match="freeze_depth 5 exceeds the encoder's 4 layers"):
        model.freeze(5)
