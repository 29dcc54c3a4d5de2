"""LoRA adapters (peft) above the freeze depth: where they sit, what a real short fine-tune moves, what it counts,
what the penalty weighs, that the frozen layers' reused activations still serve them, and that they fold back into
a plain encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft.peft_model import get_model_status

from hpo.errors import HpoError
from hpo.train.adapters import add_lora, lora_factors, merge_adapters
from hpo.train.config import TrainConfig
from hpo.train.loop import TrainResult, train
from hpo.train.loss import penalty
from hpo.train.model import TransferModel
from tests.builders import one_batch
from tests.builders import tiny_encoder as four_layer_encoder
from tests.train.fits import config, encoded, frozen_model, r8_corpus, tiny_encoder

# Every linear module of one layer, attention and MLP, as each family names them (written out, not derived).
LAYER_PATH = {"bert": "encoder.layer", "roberta": "encoder.layer", "distilbert": "transformer.layer", "gpt2": "h",
              "llama": "layers"}
LINEARS = {
    "bert": {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "intermediate.dense", "output.dense"},
    "distilbert": {"attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1",
                   "ffn.lin2"},
    "gpt2": {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"},
    "llama": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
              "mlp.up_proj", "mlp.down_proj"},
}
LINEARS["roberta"] = LINEARS["bert"]


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A cache of the test's own for the activations its fits store (not for the corpora: those are fetched)."""
    from hpo.settings import settings

    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "cache"))
    settings.cache_clear()


def lora_model(encoder: torch.nn.Module, depth: int, **changes) -> tuple[TransferModel, TrainConfig]:
    """As Workbench.new_model makes it: heads, frozen to `depth`, then adapters."""
    lora = config(depth, adapter="lora", **changes)
    model = frozen_model(encoder, depth)
    add_lora(model, lora)
    return model, lora


def adapted(model: TransferModel) -> set[str]:
    return {name for name, module in model.encoder.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "gpt2", "llama"])
@pytest.mark.parametrize("depth", [0, 2])
def test_all_linear_adapts_every_attention_and_mlp_linear_of_the_layers_above_the_depth(family, depth,
                                                                                        minilm_tokenizer):
    model, _ = lora_model(tiny_encoder(family, minilm_tokenizer), depth)
    expected = {f"{LAYER_PATH[family]}.{i}.{name}" for i in range(depth, 3) for name in LINEARS[family]}
    assert adapted(model) == expected


@pytest.mark.parametrize(("family", "targets", "names"), [
    ("bert", "query, value", {"attention.self.query", "attention.self.value"}),
    ("llama", ["q_proj", "down_proj"], {"self_attn.q_proj", "mlp.down_proj"}),
])
def test_named_targets_adapt_only_those_modules(family, targets, names, minilm_tokenizer):
    model, _ = lora_model(tiny_encoder(family, minilm_tokenizer), 1, lora_target_modules=targets)
    assert adapted(model) == {f"{LAYER_PATH[family]}.{i}.{name}" for i in (1, 2) for name in names}


def test_a_target_that_names_no_module_is_refused_with_the_modules_there():
    with pytest.raises(HpoError, match=r"lora_target_modules: qurey names no module of layers 1 and up; .*"
                                       r"attention\.self\.query"):
        lora_model(four_layer_encoder("bert"), 1, lora_target_modules="qurey")


def test_every_layer_frozen_leaves_only_the_heads_to_train():
    model, _ = lora_model(four_layer_encoder("bert"), 4)
    assert adapted(model) == set() and model.encoder_parameters() == []


def fit_lora(depth: int = 2, **changes) -> tuple[TransferModel, dict[str, torch.Tensor], TrainResult]:
    """A real short LoRA fine-tune of the 4-layer BERT on one small batch, penalties on; the weights before it."""
    settings = {"epochs": 3, "batch_size": 8, "l1": 1e-5, "l2": 1e-3, **changes}
    model, lora = lora_model(four_layer_encoder("bert"), depth, **settings)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    data = one_batch(n=16)
    return model, before, train(lora, model, data, data, None, pad_id=0, on_eval=lambda e: None)


@pytest.mark.usefixtures("own_cache")
def test_a_lora_run_moves_the_adapters_and_heads_and_no_base_weight():
    model, before, _ = fit_lora()
    for name, param in model.named_parameters():
        if "lora_" in name or name.startswith("target_head"):
            assert not torch.equal(param, before[name]), f"{name} did not train"
        elif not name.startswith("source_head"):  # the source head only feels the penalty at λ = 1
            assert torch.equal(param, before[name]), f"{name} changed"
    assert all(".layer.2." in name or ".layer.3." in name for name in before if "lora_" in name)


@pytest.mark.usefixtures("own_cache")
def test_trainable_params_are_peft_s_count_plus_the_heads():
    model, _, result = fit_lora()
    heads = sum(p.numel() for p in model.head_parameters())
    assert result.trainable_params == get_model_status(model.encoder).trainable_params + heads
    # rank 8 on layers 2 and 3 (hidden 32, MLP 64): r·(in + out) for 4 attention matrices and 2 MLP ones a layer
    assert result.trainable_params - heads == 2 * 8 * (4 * (32 + 32) + 2 * (32 + 64))


def test_the_lora_penalty_is_l1_of_the_factors_and_l2_of_each_adapter_s_delta():
    model, _ = lora_model(four_layer_encoder("bert"), 1, lora_r=4, lora_alpha=12.0)
    with torch.no_grad():  # B starts at zero (ΔW = 0); move it so that ΔW is not
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param))
    heads, l1, l2 = model.head_parameters(), 1e-4, 1e-2
    got = penalty(heads, [None] * len(heads), l1, l2, lora_factors(model.encoder)).item()

    layers = [m for m in model.encoder.modules() if hasattr(m, "lora_A")]
    with torch.no_grad():  # ΔW as an out × in matrix, from peft itself: (α/r)·B·A
        delta_sq = sum(m.get_delta_weight("default").pow(2).sum().item() for m in layers)
        factors_abs = sum(p.abs().sum().item() for m in layers for p in (m.lora_A["default"].weight,
                                                                         m.lora_B["default"].weight))
        heads_abs, heads_sq = sum(p.abs().sum().item() for p in heads), sum(p.pow(2).sum().item() for p in heads)
    assert delta_sq > 0 and len(layers) == 3 * 6
    assert got == pytest.approx(l1 * (heads_abs + factors_abs) + l2 * (heads_sq + delta_sq), rel=1e-5)


@pytest.mark.usefixtures("own_cache")
def test_l2_pulls_the_adapter_deltas_toward_the_pretrained_weights():
    def delta_sq(model: TransferModel) -> float:
        return sum(m.get_delta_weight("default").pow(2).sum().item() for m in model.encoder.modules()
                   if hasattr(m, "lora_A"))

    loose, _, _ = fit_lora(l2=0.0, learning_rate=1e-2)
    held, _, _ = fit_lora(l2=10.0, learning_rate=1e-2)
    assert delta_sq(held) < 0.5 * delta_sq(loose)


@pytest.fixture(scope="module")
def r8(minilm_tokenizer):
    return r8_corpus(minilm_tokenizer)


def _val_logits(model: TransferModel, r8, reuse) -> torch.Tensor:
    from hpo.train.loop import _Inputs

    _, val = encoded(r8)
    model.eval()
    with torch.inference_mode():
        kwargs, _ = _Inputs(val, 0, torch.device("cpu"), reuse)(np.arange(len(val)))
        return model(**kwargs)


@pytest.mark.usefixtures("own_cache")
def test_reused_frozen_activations_serve_lora_and_give_the_same_logits(r8):
    from hpo.train.activations import Reuse

    encoder, depth = tiny_encoder("bert", r8[1]), 1
    train_data, val_data = encoded(r8)
    runs = {}
    for reuse in (False, True):
        model, lora = lora_model(encoder, depth, reuse_activations=reuse)
        runs[reuse] = model, train(lora, model, train_data, val_data, None, pad_id=0, on_eval=lambda e: None)
    model, cached = runs[True]
    assert cached.reuse_record()["depth"] == depth
    assert [e.f1 for e in cached.curve] == [e.f1 for e in runs[False][1].curve]
    on = Reuse(model, depth, pad_id=0, device=torch.device("cpu"), autocast=None)
    assert (_val_logits(model, r8, None) - _val_logits(model, r8, on)).abs().max().item() <= 1e-5
    # the entry is a full fine-tune's at that depth: LoRA leaves the frozen layers' weights (the key) alone
    full = Reuse(frozen_model(encoder, depth), depth, pad_id=0, device=torch.device("cpu"), autocast=None)
    assert on.entry(val_data) == full.entry(val_data)


@pytest.mark.usefixtures("own_cache")
def test_merged_adapters_leave_a_plain_encoder_that_computes_the_same():
    model, _, _ = fit_lora()
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    model.eval()
    with torch.no_grad():
        adapted_logits = model(ids, torch.ones_like(ids))
        merge_adapters(model)
        merged_logits = model(ids, torch.ones_like(ids))
    plain = four_layer_encoder("bert")
    assert set(model.encoder.state_dict()) == set(plain.state_dict())
    plain.load_state_dict(model.encoder.state_dict())  # what a saved classifier does
    assert lora_factors(model.encoder) == [] and adapted(model) == set()
    assert (adapted_logits - merged_logits).abs().max().item() <= 1e-5


def test_new_model_adds_lora_keeps_the_heads_of_full_and_takes_pooling_and_checkpointing(tmp_path, tiny_model_dir):
    from hpo.spec import load_spec
    from hpo.workbench import open_workbench
    from tests.builders import write_study

    path = write_study(tmp_path / "study.yaml", tiny_model_dir)
    bench = open_workbench(load_spec(path), str(path))
    base = TrainConfig(freeze_depth=1, seed=3)
    full = bench.new_model(base)
    lora = bench.new_model(base.model_copy(update={"adapter": "lora", "pooling": "cls",
                                                   "gradient_checkpointing": True}))
    assert adapted(full) == set() and adapted(lora) == {f"encoder.layer.1.{n}" for n in LINEARS["bert"]}
    for head in ("target_head", "source_head"):
        assert torch.equal(getattr(full, head).weight, getattr(lora, head).weight)
    assert (full.pooling, lora.pooling) == ("mean", "cls")
    assert checkpointing(lora.encoder) and not checkpointing(full.encoder)


def checkpointing(encoder: torch.nn.Module) -> bool:
    """transformers 5 renamed `is_gradient_checkpointing` (now deprecated) to `is_activation_checkpointing`."""
    name = "is_activation_checkpointing"
    return getattr(encoder, name) if hasattr(type(encoder), name) else encoder.is_gradient_checkpointing
