"""Decoder-only backbones (GPT-2, Llama, Qwen2, Mistral, Phi-3) on tiny random models and real byte-level BPE
tokenizers: their blocks are what freeze_depth counts, their embeddings the frozen bottom; `last` pooling takes
the last real token, as transformers' stock classifier does; a tokenizer without a pad token gets one that never
occurs in a text; layer ranges never norm intermediate states; gradient checkpointing and bf16 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpo.errors import HpoError
from hpo.train.backbone import encoder_layers, layer_range
from hpo.train.batches import collate
from hpo.train.model import TransferModel, load_encoder, pooled
from hpo.train.sources import ModelSpec
from hpo.train.tokens import Encoded, choose_pad
from tests.train.decoders import DECODERS, byte_bpe, r8_texts, saved_model, tiny_decoder
from tests.train.fits import config, r8_corpus


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Reused states go to this test's own cache: an entry built by other code must not answer for this code."""
    from hpo.settings import settings

    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "cache"))
    settings.cache_clear()


@pytest.fixture(scope="module")
def r8(minilm_tokenizer):
    return r8_corpus(minilm_tokenizer)  # read before `own_cache` moves the cache: the corpora stay where they are


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return r8_texts()


@pytest.fixture(scope="module")
def gpt2_tokenizer(texts):
    return byte_bpe(texts, style="gpt2")


@pytest.fixture(scope="module")
def llama_tokenizer(texts):
    return byte_bpe(texts, style="llama")


def _encoded(tokenizer, texts: list[str], max_length: int = 24) -> Encoded:
    rows = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    offsets = np.concatenate([[0], np.cumsum([len(row) for row in rows])])
    return Encoded(np.concatenate(rows).astype(np.int32), offsets, np.arange(len(rows)) % 2)


@pytest.mark.parametrize("family", DECODERS)
def test_freeze_depth_counts_decoder_blocks_and_freezes_the_embeddings_below(family):
    model = TransferModel(tiny_decoder(family, 300), 2, 2, "mean")
    blocks = encoder_layers(model.encoder)
    assert len(blocks) == 3 and blocks is getattr(model.encoder, "h" if family == "gpt2" else "layers")
    model.freeze(2)
    model.train()
    frozen = {name for name, p in model.encoder.named_parameters() if not p.requires_grad}
    bottom = {"wte.weight", "wpe.weight"} if family == "gpt2" else {"embed_tokens.weight"}
    blocks_name = "h" if family == "gpt2" else "layers"
    assert frozen == bottom | {f"{blocks_name}.{i}.{name}" for i in (0, 1)
                               for name, _ in blocks[i].named_parameters()}
    if family == "gpt2":  # the embedding dropout is part of the frozen bottom: off while the rest trains
        assert not model.encoder.drop.training and blocks[2].training
    model.freeze(3)  # every block: the final norm too, so only the heads train
    assert model.encoder_parameters() == []


def _last_states(encoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, pad_id: int) -> torch.Tensor:
    with torch.inference_mode():
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    return pooled(hidden, mask, "last", ids, pad_id)


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_last_pooling_takes_the_last_real_token_under_right_and_left_padding(family, gpt2_tokenizer, texts):
    pad_id = choose_pad(gpt2_tokenizer, "tiny")[1]
    encoder = tiny_decoder(family, len(gpt2_tokenizer)).eval()
    short = [" ".join(text.split()[:words]) for text, words in zip(texts, (3, 9, 5, 14, 7, 11), strict=False)]
    data = _encoded(gpt2_tokenizer, short)
    rows = np.arange(6)
    ids, mask, _ = collate(data, rows, pad_id, torch.device("cpu"))  # right padding
    assert len(set(data.lengths[rows])) > 1  # texts of different lengths: real padding
    right = _last_states(encoder, ids, mask, pad_id)
    alone = torch.cat([_last_states(encoder, torch.from_numpy(data.row(i)[None].astype(np.int64)),
                                    torch.ones(1, int(data.lengths[i]), dtype=torch.int64), pad_id) for i in rows])
    assert (right - alone).abs().max().item() < 1e-5  # each text's own last token, as if it were alone
    width = ids.shape[1]
    left_ids = torch.stack([torch.roll(row, width - int(n)) for row, n in zip(ids, data.lengths[rows], strict=True)])
    left_mask = torch.stack([torch.roll(row, width - int(n)) for row, n in zip(mask, data.lengths[rows], strict=True)])
    with torch.inference_mode():
        hidden = encoder(input_ids=left_ids, attention_mask=left_mask).last_hidden_state
    assert torch.equal(pooled(hidden, left_mask, "last", left_ids, pad_id), hidden[:, -1])  # the last column


def test_a_tokenizer_without_a_pad_token_pads_with_one_no_text_holds(tmp_path, gpt2_tokenizer, texts):
    assert gpt2_tokenizer.pad_token is None
    bundle = load_encoder(ModelSpec(id=str(saved_model(tmp_path / "gpt2", "gpt2", gpt2_tokenizer)), pooling="last"))
    eot = gpt2_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert (bundle.tokenizer.pad_token, bundle.pad_id, bundle.encoder.config.pad_token_id) == ("<|endoftext|>", eot,
                                                                                                eot)
    assert len(bundle.tokenizer) == len(gpt2_tokenizer)  # no token added
    data = _encoded(bundle.tokenizer, texts[:16])
    assert eot not in set(data.ids.tolist())  # the pad token occurs in no text
    padded = bundle.tokenizer(texts[:4], padding=True, truncation=True, max_length=24, return_tensors="pt")
    assert (padded["input_ids"][padded["attention_mask"] == 0] == eot).all()  # the tokenizer pads with it too
    model = TransferModel(bundle.fresh_encoder(), 2, 2, "last").eval()
    ids, mask, _ = collate(data, np.arange(16), bundle.pad_id, torch.device("cpu"))
    with torch.inference_mode():
        batched = model(ids, mask)
        alone = torch.cat([model(ids[i : i + 1, : int(n)], mask[i : i + 1, : int(n)])
                           for i, n in enumerate(data.lengths)])
    assert (batched - alone).abs().max().item() < 1e-5


def test_last_pooling_scores_the_token_the_stock_llama_classifier_scores(tmp_path, llama_tokenizer, texts):
    from transformers import LlamaForSequenceClassification

    bundle = load_encoder(ModelSpec(id=str(saved_model(tmp_path / "llama", "llama", llama_tokenizer)),
                                    pooling="last"))
    assert bundle.tokenizer.pad_token == "<unk>"  # not eos: this tokenizer appends eos to every text
    model = TransferModel(bundle.fresh_encoder(), 2, 3, "last").eval()  # 2 classes: the stock default
    assert model.target_head.bias is None  # bias-free, like the stock `score`
    stock = LlamaForSequenceClassification(bundle.encoder.config).eval()
    stock.model.load_state_dict(bundle.encoder.state_dict())
    stock.score.weight.data.copy_(model.target_head.weight.data)
    seen: dict[str, torch.Tensor] = {}
    stock.score.register_forward_pre_hook(lambda _m, inputs: seen.update(hidden=inputs[0]))
    data = _encoded(bundle.tokenizer, texts[:8])
    ids, mask, _ = collate(data, np.arange(8), bundle.pad_id, torch.device("cpu"))
    with torch.inference_mode():
        ours = model.pool(ids, mask)
        stock_logits = stock(input_ids=ids, attention_mask=mask).logits
        our_logits = model(ids, mask)
    last_real = torch.from_numpy(data.lengths - 1)
    assert (ids[torch.arange(8), last_real] == llama_tokenizer.eos_token_id).all()  # the appended eos is scored
    assert torch.equal(ours, seen["hidden"][torch.arange(8), last_real])  # the state the stock score sees there
    assert (our_logits - stock_logits).abs().max().item() < 1e-6


@pytest.mark.parametrize(("style", "expected"), [("gpt2", "<|endoftext|>"), ("llama", "<unk>")])
def test_pad_rules_pick_a_token_that_never_occurs_inside_a_text(style, expected, texts):
    tokenizer = byte_bpe(texts, style=style)
    assert choose_pad(tokenizer, "tiny")[0] == expected
    tokenizer.pad_token = tokenizer.eos_token  # a pad token that is eos (SmolLM2's): passed over for the unk
    assert choose_pad(tokenizer, "tiny")[0] == expected


def test_pad_rules_take_pad_then_eos_and_refuse_when_nothing_can_pad(texts, minilm_tokenizer):
    assert choose_pad(minilm_tokenizer, "minilm") == ("[PAD]", 0)  # its own pad token
    tokenizer = byte_bpe(texts, style="no-unk-appends-eos")
    with pytest.raises(HpoError) as refused:
        choose_pad(tokenizer, "org/tiny")
    assert str(refused.value) == (
        "model org/tiny: its tokenizer has no token to pad with that never occurs inside a text (no pad token other "
        "than eos/bos, no <pad>, no unknown token it never emits, and its eos token ends every text); use a model "
        "whose tokenizer has a pad token")
    tokenizer.backend_tokenizer.post_processor = None  # eos no longer appended (Qwen2's tokenizer): eos pads
    assert choose_pad(tokenizer, "org/tiny") == ("</s>", 0)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_layer_range_norms_only_the_last_layers_output(family):
    encoder = tiny_decoder(family, 300).eval()
    ids = torch.randint(5, 300, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    with torch.inference_mode():
        full = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        with layer_range(encoder, 0, 2):
            below = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with layer_range(encoder, 2, 3, below):
            top = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(below, full.hidden_states[2])  # after block 2: no final norm
    assert torch.equal(top, full.last_hidden_state)  # no position table or dropout added again; normed at the top


def test_reuse_with_last_pooling_gives_the_logits_of_a_full_forward(r8, minilm_tokenizer):
    from hpo.train.activations import Reuse
    from hpo.train.loop import _Inputs
    from hpo.train.tokens import encode, tokenizer_fingerprint

    corpus, _ = r8
    val = encode(minilm_tokenizer, tokenizer_fingerprint(minilm_tokenizer), corpus["val"], 48)
    for depth in (1, 3):
        torch.manual_seed(1)
        model = TransferModel(tiny_decoder("llama", minilm_tokenizer.vocab_size, pad_token_id=0), 8, 3, "last")
        model.freeze(depth)
        model.eval()
        reuse = Reuse(model, depth, pad_id=0, device=torch.device("cpu"), autocast=None)
        with torch.inference_mode():
            logits = [model(**_Inputs(val, 0, torch.device("cpu"), way)(np.arange(len(val)))[0])
                      for way in (None, reuse)]
        assert (logits[0] - logits[1]).abs().max().item() <= 1e-5, f"depth {depth}"


def test_gradient_checkpointing_recomputes_the_trainable_blocks_only():
    ids = torch.randint(5, 300, (2, 10))
    grads, calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(1)
        model = TransferModel(tiny_decoder("llama", 300), 2, 2, "mean")
        model.freeze(1)
        if checkpointing:
            model.checkpoint_gradients()
        runs = [0, 0, 0]
        for i, block in enumerate(encoder_layers(model.encoder)):
            # counted as it starts: the recomputation stops inside the MLP once it has what backward needs
            block.mlp.register_forward_pre_hook(lambda *_, i=i, runs=runs: runs.__setitem__(i, runs[i] + 1))
        model.train()
        model(ids, torch.ones_like(ids)).sum().backward()
        grads.append(model.encoder.layers[2].mlp.up_proj.weight.grad.clone())
        calls.append(runs)
    assert calls == [[1, 1, 1], [1, 2, 2]]  # the frozen block runs once; the trainable ones again in backward
    assert torch.equal(grads[0], grads[1])  # dropout is 0 in these configs: the same numbers, recomputed


def test_bf16_weights_train_without_autocast(tmp_path, gpt2_tokenizer, texts):
    from hpo.train.loop import train

    bundle = load_encoder(ModelSpec(id=str(saved_model(tmp_path / "qwen2", "qwen2", gpt2_tokenizer)), dtype="bf16"))
    assert {p.dtype for p in bundle.encoder.parameters()} == {torch.bfloat16}
    model = TransferModel(bundle.fresh_encoder(), 2, 2, "mean")
    model.freeze(1)
    data = _encoded(bundle.tokenizer, texts[:32])
    result = train(config(1, epochs=1, precision="fp32", max_length=24), model, data, data, None,
                   pad_id=bundle.pad_id, on_eval=lambda e: None)
    assert result.reuse_record()["depth"] == 1 and len(result.curve) == 2
    assert model.target_head.weight.dtype == torch.float32


def test_pad_rules_take_a_pad_token_the_vocabulary_has_before_the_unknown_token(texts):
    tokenizer = byte_bpe(texts, style="llama")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<pad>"]})  # in the vocabulary, not set as pad
    tokenizer.pad_token = tokenizer.eos_token  # SmolLM2's choice: passed over, and <pad> wins over <unk>
    assert choose_pad(tokenizer, "tiny") == ("<pad>", tokenizer.convert_tokens_to_ids("<pad>"))
