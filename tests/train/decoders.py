"""What the decoder tests build: tiny random decoder-only models of each family (GPT-2, Llama, Qwen2, Mistral,
Phi-3), and real byte-level BPE tokenizers trained here on R8 texts, shaped like those families' tokenizers."""

from __future__ import annotations

from pathlib import Path

import torch

DECODERS = ("gpt2", "llama", "qwen2", "mistral", "phi3")


def tiny_decoder(family: str, vocab_size: int, layers: int = 3, *, lm_head: bool = False,
                 **changes) -> torch.nn.Module:
    """A randomly initialised base model (with `lm_head`, the causal LM around it): hidden 32, 2 heads, `layers`
    blocks. Qwen2's and Mistral's grouped-query attention gets as many key/value heads as query heads (their
    defaults do not divide 2); the families' default special-token ids lie beyond a tiny vocabulary, so they are
    unset unless `changes` sets them."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    torch.manual_seed(0)
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": layers, "num_attention_heads": 2,
             "num_key_value_heads": 2, "max_position_embeddings": 130, "bos_token_id": None, "eos_token_id": None,
             "pad_token_id": None}
    config = AutoConfig.for_model(family, vocab_size=vocab_size, **{**shape, **changes})
    return (AutoModelForCausalLM if lm_head else AutoModel).from_config(config)


def r8_texts() -> list[str]:
    """200 R8 training texts: what the tokenizers here are trained on."""
    from hpo.train.corpora import builtin_file, read_tab

    return read_tab(builtin_file("reuters-r8", "train"))[0][:200]


def byte_bpe(texts: list[str], *, style: str):
    """A real byte-level BPE tokenizer (vocabulary 600) trained on `texts`, without a pad token:
    - "gpt2": `<|endoftext|>` is bos, eos and unknown token; nothing is added to a text (GPT-2's tokenizer);
    - "llama": `<unk>`, `<s>` and `</s>`, with `<s>` prepended and `</s>` appended to every text;
    - "no-unk-appends-eos": only `</s>`, appended to every text (nothing can pad: refused)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = {"gpt2": ["<|endoftext|>"], "llama": ["<unk>", "<s>", "</s>"], "no-unk-appends-eos": ["</s>"]}[style]
    unk = {"gpt2": "<|endoftext|>", "llama": "<unk>"}.get(style)
    backend = Tokenizer(models.BPE(unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    roles: dict[str, str] = {}
    if style == "gpt2":
        roles = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    elif style == "llama":
        backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                               special_tokens=[("<s>", 1), ("</s>", 2)])
        roles = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    else:
        backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
        roles = {"eos_token": "</s>"}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **roles)


def saved_model(folder: Path, family: str, tokenizer, **changes) -> Path:
    """A tiny `family` decoder with `tokenizer`, saved like a hub model (its own special-token ids in the config)."""
    ids = {f"{role}_token_id": getattr(tokenizer, f"{role}_token_id") for role in ("bos", "eos")}
    tiny_decoder(family, len(tokenizer), **{**ids, **changes}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
