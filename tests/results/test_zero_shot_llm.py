"""The transfer effect's zero-shot row for decoder-only models: each text gets the label name with the highest
summed log-likelihood after a fixed prompt, the prompt run once per text with its key/value cache serving every
label; `--zero-shot-limit` caps the texts. Tiny random models built here, real byte-level BPE tokenizers."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
from rich.console import Console

from hpo.errors import HpoError
from hpo.results.transfer import transfer_effect
from hpo.results.transfer.likelihood import (
    PLAIN_PROMPT,
    Prompt,
    causal_lm,
    label_of,
    predicted_labels,
    summed_log_likelihoods,
)
from hpo.results.transfer.measure import zero_shot_texts
from hpo.train.data import Corpus
from hpo.train.model import load_encoder
from hpo.train.sources import ModelSpec
from tests.builders import hpo_cli, study_from, write_study
from tests.train.decoders import byte_bpe, r8_texts, tiny_decoder
from tests.train.fits import config


def tiny_lm(family: str, vocab_size: int, **changes) -> torch.nn.Module:
    """A randomly initialised causal LM (with its LM head), hidden 32, 2 layers, in eval mode."""
    return tiny_decoder(family, vocab_size, 2, lm_head=True, **changes).eval()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return r8_texts()


@pytest.fixture(scope="module")
def tokenizer(texts):
    return byte_bpe(texts, style="llama")


# -- scoring on token ids ------------------------------------------------------------------------------------


def test_the_label_with_the_higher_summed_log_likelihood_wins_not_the_higher_mean():
    # An LM head of zero weights and a set bias: every position predicts the same distribution, whatever the
    # context, so each token's log-probability is known. Label 0 is token 3 (log p = -1.0); label 1 is token 4
    # twice (log p = -0.6 each): summed -1.0 against -1.2 picks label 0; per-token mean -1.0 against -0.6 would
    # pick label 1.
    model = tiny_lm("llama", 8)
    log_p = torch.full((8,), math.log((1 - math.exp(-1.0) - math.exp(-0.6)) / 6))
    log_p[3], log_p[4] = -1.0, -0.6
    head = torch.nn.Linear(32, 8, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(log_p)
    model.lm_head = head
    labels = [[3], [4, 4]]
    with torch.inference_mode():
        scores = summed_log_likelihoods(model, [1, 2, 5, 6], labels)
        chosen = label_of(model, [1, 2, 5, 6], labels)
    assert scores.tolist() == pytest.approx([-1.0, -1.2], abs=1e-5)
    assert chosen == 0
    means = [float(s) / len(ids) for s, ids in zip(scores, labels, strict=True)]
    assert int(np.argmax(means)) == 1  # a per-token mean would choose the other label


def _from_scratch(model, prompt: list[int], labels: list[list[int]]) -> list[float]:
    """Each label's summed log-likelihood from one whole forward of prompt + label, no cache."""
    found = []
    for ids in labels:
        logits = model(input_ids=torch.tensor([prompt + ids]), use_cache=False).logits[0].float().log_softmax(-1)
        found.append(sum(float(logits[len(prompt) - 1 + k, token]) for k, token in enumerate(ids)))
    return found


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_the_cached_prompt_scores_every_label_as_a_whole_forward_would(family):
    model = tiny_lm(family, 50)
    generator = np.random.default_rng(1)
    labels = [[7], [8, 9], [10, 11, 12, 13], [8, 14, 15]]  # lengths differ: the batch is padded
    for _ in range(3):
        prompt = generator.integers(0, 50, size=int(generator.integers(3, 20))).tolist()
        with torch.inference_mode():
            cached = summed_log_likelihoods(model, prompt, labels).tolist()
            whole = _from_scratch(model, prompt, labels)
        assert cached == pytest.approx(whole, abs=1e-4)


def _count_forwards(model) -> dict[str, int]:
    """Calls of the model's forward: with no cache given (a prompt) and in all."""
    counts = {"prompt": 0, "all": 0}

    def hook(_module, _args, kwargs):
        counts["all"] += 1
        counts["prompt"] += kwargs.get("cache") is None and kwargs.get("past_key_values") is None

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return counts


def test_the_prompt_runs_once_per_text_and_its_cache_serves_every_label(tokenizer, texts):
    names = ("earn", "money fx", "crude", "interest rates and trade")  # one to several tokens each
    prompt = Prompt(tokenizer, names, max_length=24)
    assert max(len(ids) for ids in prompt.label_ids()) > 1
    model = tiny_lm("llama", len(tokenizer))
    counts = _count_forwards(model)
    test = Corpus(tuple(texts[:6]), np.zeros(6, dtype=np.int64), names)
    found = predicted_labels(model, test, config(0), prompt)
    assert counts == {"prompt": 6, "all": 12}  # per text: the prompt once, then every label in one batch
    assert found.shape == (6,) and set(found.tolist()) <= set(range(len(names)))


# -- the prompt --------------------------------------------------------------------------------------------


def test_without_a_chat_template_the_prompt_is_plain_text_cut_to_max_length(tokenizer, texts):
    prompt = Prompt(tokenizer, ("earn", "money fx"), max_length=8)
    assert prompt.style == "plain" and prompt.template() == PLAIN_PROMPT
    ids = prompt.ids(texts[0])
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids  # nothing ends it before a label
    shown = tokenizer.decode(ids[1:])
    assert shown.startswith("Text: ") and shown.endswith("\nTopic:")
    body = tokenizer(shown.removeprefix("Text: ").removesuffix("\nTopic:"), add_special_tokens=False)["input_ids"]
    assert len(body) <= 8 and texts[0].startswith(shown.removeprefix("Text: ").removesuffix("\nTopic:"))
    assert prompt.label_ids() == [tokenizer(" earn", add_special_tokens=False)["input_ids"],
                                  tokenizer(" money fx", add_special_tokens=False)["input_ids"]]


def test_a_chat_template_asks_the_question_as_the_user_and_the_label_starts_the_reply(texts):
    chatty = byte_bpe(texts, style="llama")
    chatty.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                            "{% if add_generation_prompt %}<s>assistant: {% endif %}")
    prompt = Prompt(chatty, ("earn", "money fx"), max_length=8)
    assert prompt.style == "chat template"
    assert prompt.template().startswith("<s>user: Which of these topics is the text about: earn, money fx?")
    assert prompt.template().endswith("Answer with the topic only.\n<s>assistant: ")
    shown = chatty.decode(prompt.ids(texts[0]))
    assert shown.endswith("<s>assistant: ") and "Text: " in shown
    assert prompt.label_ids()[0] == chatty("earn", add_special_tokens=False)["input_ids"]


# -- the limit, and which zero-shot -----------------------------------------------------------------------


def test_the_limit_draws_the_same_texts_for_the_same_seed_in_file_order():
    test = Corpus(tuple(f"text {i}" for i in range(50)), np.arange(50) % 3, ("a", "b", "c"))
    picked = zero_shot_texts(test, 10, seed=0)
    assert len(picked) == 10 and list(picked.texts) == sorted(picked.texts, key=lambda t: int(t.split()[1]))
    assert picked.texts == zero_shot_texts(test, 10, seed=0).texts
    assert picked.texts != tuple(f"text {i}" for i in range(10))  # a draw, not the first ten
    assert zero_shot_texts(test, None, seed=0) is test and zero_shot_texts(test, 50, seed=0) is test


def test_a_limit_below_one_is_refused_before_anything_is_loaded(tmp_path):
    with pytest.raises(HpoError, match=r"--zero-shot-limit must be at least 1 \(got 0\)"):
        transfer_effect(optuna.create_study(), seeds=1, output=tmp_path / "t.html", storage="", zero_shot_limit=0)


def _bench(folder) -> SimpleNamespace:
    return SimpleNamespace(bundle=load_encoder(ModelSpec(id=str(folder))))


def test_the_lm_head_is_loaded_and_a_checkpoint_without_one_is_told_apart(tmp_path, tokenizer):
    tiny_lm("llama", len(tokenizer)).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    model = causal_lm(_bench(tmp_path / "lm"))
    assert model is not None and model.get_output_embeddings() is not None and not model.training
    tiny_lm("llama", len(tokenizer)).model.save_pretrained(tmp_path / "base")  # no LM head saved
    tokenizer.save_pretrained(tmp_path / "base")
    assert causal_lm(_bench(tmp_path / "base")) is None  # the embedding zero-shot stands in


# -- end to end on a real tiny decoder study ------------------------------------------------------------------


def test_transfer_effect_on_a_decoder_study_scores_log_likelihoods_on_the_limited_texts(tmp_path, tokenizer):
    folder = tmp_path / "tiny-llama"
    tiny_lm("llama", len(tokenizer), bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    spec = write_study(tmp_path / "dec.yaml", folder, name="dec", n_trials=2, epochs=1, pruner="{name: none}")
    study_from(spec, spec, {"search_space": {"target_weight": {"target_only_share": 0.5}}})
    done = hpo_cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    buffer = io.StringIO()
    result = transfer_effect(optuna.load_study(study_name="dec", storage=url), seeds=1, output=tmp_path / "t.html",
                             storage=url, console=Console(file=buffer, width=220), zero_shot_limit=12)

    documents = result["test"]["documents"]
    assert documents > 12
    assert result["zero_shot"] == {**result["zero_shot"], "method": "log-likelihood", "texts": 12, "of": documents,
                                   "limit": 12, "prompt_style": "plain", "prompt": PLAIN_PROMPT}
    zero = result["rows"]["zero-shot"]
    assert zero["config"]["method"] == "log-likelihood" and zero["config"]["texts"] == 12
    assert "summed log-likelihood" in zero["note"] and 0 <= zero["f1"][0] <= 1
    said = f"zero-shot on 12 of {documents} test texts"
    assert said in buffer.getvalue()
    page = (tmp_path / "t.html").read_text()
    assert said in page and "log-likelihood" in page and 'id="zero-shot-prompt"' in page
    assert json.loads((tmp_path / "t.json").read_text())["zero_shot"]["limit"] == 12
