"""Frozen-layer activations computed once and reused: the same numbers as without reuse (every covered family,
encoders and decoder-only models, k = 1 and k = all layers), really reused (the bottom layers never run in a cached
trial), keyed on what they depend on, built once by concurrent workers, evicted under a cap; and fp16 with gradient
scaling, and clipping."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hpo.train.loop import _Stepper, evaluate, train
from hpo.train.model import TransferModel, encoder_layers
from hpo.train.tokens import encode, tokenizer_fingerprint
from tests.builders import REPO
from tests.train.decoders import DECODERS, tiny_decoder
from tests.train.fits import config, encoded, fit, frozen_model, r8_corpus, tiny_encoder


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    from hpo.settings import settings

    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "cache"))
    settings.cache_clear()


@pytest.fixture(scope="module")
def data(minilm_tokenizer):
    return r8_corpus(minilm_tokenizer)


def _logits(model: TransferModel, data, reuse) -> torch.Tensor:
    """Validation logits of every row, through the cached states when `reuse` is given."""
    from hpo.train.loop import _Inputs

    _, val = encoded(data)
    inputs = _Inputs(val, 0, torch.device("cpu"), reuse)
    model.eval()
    with torch.inference_mode():
        kwargs, _ = inputs(np.arange(len(val)))
        return model(**kwargs)


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "electra", "mpnet", "distilbert", *DECODERS])
@pytest.mark.parametrize("depth", [1, 3])  # one layer, and every layer (the pooled vector)
def test_reused_states_give_the_logits_and_curve_of_a_full_forward(family, depth, data):
    from hpo.train.activations import Reuse

    encoder = tiny_decoder(family, data[1].vocab_size) if family in DECODERS else tiny_encoder(family, data[1])
    _, plain_run = fit(encoder, data, depth, reuse=False)
    cached, cached_run = fit(encoder, data, depth, reuse=True)
    assert isinstance(cached_run.reuse_record(), dict) and cached_run.reuse_record()["depth"] == depth
    assert [e.f1 for e in cached_run.curve] == [e.f1 for e in plain_run.curve]  # identical F1 curves
    reuse = Reuse(cached, depth, pad_id=0, device=torch.device("cpu"), autocast=None)
    without, with_reuse = _logits(cached, data, None), _logits(cached, data, reuse)  # the same weights, both ways
    bound = (without - with_reuse).abs().max().item()
    # Measured: 0 (bit-identical) for every family and depth but MPNet at k = 1, 1.2e-5 (its curve is identical).
    assert bound <= (5e-5 if family == "mpnet" else 1e-5), f"{family} k={depth}: logits differ by {bound:.2e}"


def test_the_bottom_layers_never_run_in_a_cached_trial(data):
    encoder = tiny_encoder("bert", data[1])
    fit(encoder, data, 2)  # builds the cache
    model = frozen_model(encoder, 2)
    calls = {"bottom": 0, "top": 0}
    layers = encoder_layers(model.encoder)
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda *_, at="bottom" if i < 2 else "top": calls.__setitem__(at, calls[at] + 1))
    model.encoder.embeddings.register_forward_hook(lambda *_: calls.__setitem__("bottom", calls["bottom"] + 1))
    train_data, val_data = encoded(data)
    result = train(config(2), model, train_data, val_data, None, pad_id=0, on_eval=lambda e: None)
    batches = 2 * 10 + 4 * 2  # 2 epochs of 10 training batches, 4 evaluations of 80 rows in batches of 64
    assert calls["bottom"] == 0 and calls["top"] == batches
    stats = result.reuse_record()
    assert stats["misses"] == 0 and stats["hits"] == batches and stats["bytes"] > 0


def test_a_change_to_what_the_states_depend_on_is_a_miss(data, minilm_tokenizer):
    encoder = tiny_encoder("bert", data[1])
    assert fit(encoder, data, 2)[1].reuse_record()["misses"] > 0
    assert fit(encoder, data, 2)[1].reuse_record()["misses"] == 0  # the same: all hits
    changed = copy.deepcopy(encoder)
    with torch.no_grad():
        encoder_layers(changed)[1].output.dense.weight[0, 0] += 1e-3  # a frozen layer's weight
    assert fit(changed, data, 2)[1].reuse_record()["misses"] > 0
    with torch.no_grad():
        encoder_layers(changed)[2].output.dense.weight[0, 0] += 1e-3  # above the frozen layers: no change
    assert fit(changed, data, 2)[1].reuse_record()["misses"] == 0
    train_data, val_data = encoded(data, max_length=40)  # another max length
    model = frozen_model(encoder, 2)
    result = train(config(2, max_length=40), model, train_data, val_data, None, pad_id=0, on_eval=lambda e: None)
    assert result.reuse_record()["misses"] > 0
    corpus, _ = data
    assert encode(minilm_tokenizer, "another-tokenizer", corpus["train"], 48).key != encoded(data)[0].key
    # the key of a tokenizer does not drift once it has tokenised (its backend keeps the last truncation setting)
    before = tokenizer_fingerprint(copy.deepcopy(minilm_tokenizer))
    minilm_tokenizer(["a text"] * 2, truncation=True, max_length=7, padding=True)
    assert tokenizer_fingerprint(minilm_tokenizer) == before


def test_a_shallower_cache_starts_a_deeper_trial_and_never_the_reverse(data):
    encoder = tiny_encoder("bert", data[1])
    fit(encoder, data, 1)
    deeper = fit(encoder, data, 3)[1].reuse_record()
    assert deeper["built_from"] == [1, 1]  # train and validation states built from the depth-1 entries
    shallower = fit(encoder, data, 2)[1].reuse_record()
    assert shallower["built_from"] == [1, 1]  # from depth 1 again: depth 3's states cannot give depth 2's


def test_an_unknown_family_runs_without_reuse_and_says_why(data):
    from hpo.train.activations import reuse_off_reason

    encoder = tiny_encoder("deberta-v2", data[1])
    _, result = fit(encoder, data, 1)
    assert result.reuse_record() == "off (family deberta-v2 not covered (covered: bert, distilbert, electra, gpt2, " \
                                    "llama, mistral, mpnet, phi3, qwen2, roberta, xlm-roberta))"
    assert reuse_off_reason(frozen_model(tiny_encoder("bert", data[1]), 0), 0) == "nothing frozen (freeze_depth 0)"


def test_two_processes_building_the_same_states_build_them_once(tmp_path):
    script = textwrap.dedent("""
        import json, sys, numpy as np, torch
        from transformers import BertConfig, BertModel
        from hpo.train.activations import Reuse
        from hpo.train.model import TransferModel
        from hpo.train.tokens import Encoded
        torch.manual_seed(0)
        encoder = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64), add_pooling_layer=False)
        model = TransferModel(encoder, 2, 2, "mean"); model.freeze(1)
        rng = np.random.default_rng(0)
        lengths = rng.integers(5, 60, 3000)
        data = Encoded(rng.integers(1, 100, lengths.sum()).astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]),
                       np.zeros(3000, dtype=np.int64), "shared-data")
        open(sys.argv[1], "w").write("ready")
        reuse = Reuse(model, 1, pad_id=0, device=torch.device("cpu"), autocast=None)
        reuse.states(data, np.arange(4))
        print(json.dumps(reuse.stats.record()))
    """)
    env = {"HPO_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"ready-{i}")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outs]
    import json

    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(s["misses"] > 0 for s in stats) == [False, True]  # one built, the other waited and read
    assert len(list((tmp_path / "cache" / "activations").glob("*/meta.json"))) == 1


def test_least_recently_used_states_are_evicted_under_the_cap(data, monkeypatch):
    from hpo.settings import settings

    encoder = tiny_encoder("bert", data[1])
    fit(encoder, data, 1)
    root = settings().cache / "activations"
    entries = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(entries) == 2  # train and validation states at depth 1
    monkeypatch.setenv("HPO_ACTIVATION_CACHE_GB", str(1e-9))  # a cap below any entry: only the newest stays
    settings.cache_clear()
    fit(encoder, data, 2)
    left = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(left) == 1 and left[0] not in entries


def test_fp16_autocasts_linear_layers_and_its_scaler_backs_off_after_an_inf():
    linear = torch.nn.Linear(4, 4)
    seen = []
    linear.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    optimizer = torch.optim.AdamW(linear.parameters(), lr=1e-3)
    stepper = _Stepper(config(0, precision="fp16"), list(linear.parameters()), torch.device("cpu"), torch.float16,
                       optimizer, total_steps=10)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = linear(torch.randn(2, 4)).float().pow(2).sum()
    assert seen == [torch.float16]
    before = stepper.scaler.get_scale()
    hook = linear.weight.register_hook(lambda grad: grad * float("inf"))  # an overflow in the backward pass
    weights = linear.weight.detach().clone()
    stepper(loss)
    hook.remove()
    assert stepper.scaler.get_scale() < before
    assert torch.equal(linear.weight.detach(), weights)  # the step with inf gradients was skipped


def test_clipping_bounds_the_gradient_norm():
    linear = torch.nn.Linear(16, 16)
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.0)
    stepper = _Stepper(config(0, max_grad_norm=0.5), list(linear.parameters()), torch.device("cpu"), None,
                       optimizer, total_steps=10)
    stepper(linear(torch.randn(8, 16) * 100).pow(2).sum())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in linear.parameters()])).item()
    assert norm == pytest.approx(0.5, rel=1e-4)


def test_a_nan_loss_fails_the_run():
    from hpo.train.loop import NonFiniteLoss

    linear = torch.nn.Linear(2, 2)
    stepper = _Stepper(config(0), list(linear.parameters()), torch.device("cpu"), None,
                       torch.optim.SGD(linear.parameters(), lr=0.1), total_steps=10)
    with pytest.raises(NonFiniteLoss, match="at step 1"):
        stepper(linear(torch.full((1, 2), float("nan"))).sum())


def test_evaluate_through_reused_states_predicts_as_the_full_model(data):
    from hpo.train.activations import Reuse

    encoder = tiny_encoder("bert", data[1])
    model = frozen_model(encoder, 2)
    _, val = encoded(data)
    reuse = Reuse(model, 2, pad_id=0, device=torch.device("cpu"), autocast=None)
    full = evaluate(model, val, 0, torch.device("cpu"), None, 64)
    assert np.array_equal(evaluate(model, val, 0, torch.device("cpu"), None, 64, reuse=reuse), full)
