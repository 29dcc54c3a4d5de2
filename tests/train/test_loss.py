"""The loss: λ·CE_t + (1-λ)·CE_s + l1·Σ|θ-θ₀| + l2·Σ(θ-θ₀)², checked by hand on one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpo.train.config import TrainConfig
from hpo.train.loop import train
from hpo.train.loss import penalty, transfer_loss
from hpo.train.model import TransferModel
from hpo.train.tokens import Encoded
from tests.builders import one_batch, tiny_encoder


def _batch_tensors(data: Encoded):
    from hpo.train.loop import collate

    return collate(data, np.arange(len(data)), 0, torch.device("cpu"))


@pytest.mark.parametrize("reference", ["zero", "pretrained"])
def test_loss_matches_a_hand_computation(reference):
    model = TransferModel(tiny_encoder("bert"), n_target=3, n_source=2, pooling="mean")
    model.freeze(1)
    pretrained = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
    with torch.no_grad():  # move the weights away from "pretrained" so L2-SP differs from plain L2
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    t_ids, t_mask, t_labels = _batch_tensors(one_batch(n_classes=3))
    s_ids, s_mask, s_labels = _batch_tensors(one_batch(n=6, n_classes=2))
    lam, l1, l2 = 0.7, 1e-4, 1e-3

    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    heads = model.head_parameters()
    refs: list = [None] * (len(enc) + len(heads))
    if reference == "pretrained":
        trainable = [name for name, p in model.encoder.named_parameters() if p.requires_grad]
        refs = [pretrained[name] for name in trainable] + [None] * len(heads)
    ce_t = F.cross_entropy(model(t_ids, t_mask, "target"), t_labels)
    ce_s = F.cross_entropy(model(s_ids, s_mask, "source"), s_labels)
    got = transfer_loss(ce_t, ce_s, lam, penalty(enc + heads, refs, l1, l2))

    # by hand, from scratch: logits, log-softmax, mean over the batch
    def ce(logits, labels):
        return -(logits.log_softmax(-1)[torch.arange(len(labels)), labels]).mean()

    with torch.no_grad():
        pooled_t = model.pool(t_ids, t_mask)
        pooled_s = model.pool(s_ids, s_mask)
        hand_ce_t = ce(pooled_t @ model.target_head.weight.T + model.target_head.bias, t_labels)
        hand_ce_s = ce(pooled_s @ model.source_head.weight.T + model.source_head.bias, s_labels)
        abs_sum = sq_sum = 0.0
        for name, p in model.encoder.named_parameters():
            if p.requires_grad:
                d = p - pretrained[name] if reference == "pretrained" else p
                abs_sum += d.abs().sum().item()
                sq_sum += (d**2).sum().item()
        for p in heads:  # heads have no pretrained weights: always the plain penalty
            abs_sum += p.abs().sum().item()
            sq_sum += (p**2).sum().item()
    expected = lam * hand_ce_t + (1 - lam) * hand_ce_s + l1 * abs_sum + l2 * sq_sum
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_zero_penalty_weights_compute_nothing():
    assert penalty([torch.ones(3)], [None], 0.0, 0.0) is None
    loss = transfer_loss(torch.tensor(2.0), None, 1.0, None)
    assert loss.item() == 2.0


@pytest.mark.parametrize(("lam", "expect_source"), [(1.0, False), (0.5, True)])
def test_target_only_runs_no_source_forward(lam, expect_source):
    model = TransferModel(tiny_encoder("bert"), n_target=3, n_source=2, pooling="mean")
    source_calls = []
    model.source_head.register_forward_hook(lambda *_: source_calls.append(1))
    data = one_batch(n=16)
    config = TrainConfig(epochs=1, batch_size=8, target_weight=lam, precision="fp32", device="cpu")
    train(config, model, data, data, one_batch(n=16, n_classes=2), pad_id=0, on_eval=lambda e: None)
    assert (len(source_calls) > 0) is expect_source
    if expect_source:
        assert len(source_calls) == 2  # one source batch per target step
