"""Zero-shot for decoder-only (instruction-tuned) models: each test text gets the label whose name is the likeliest
continuation of a fixed prompt, scored by the model's own LM head. No training, no randomness.

The prompt runs through the model once per text, with its key/value cache kept; the cache, repeated once per label,
serves every label's later tokens in one more batched forward. Scoring each prompt + label sequence from scratch
would run the prompt once per label (R8's 2,189 test texts × 8 labels: about 1.75 M tokens, half an hour on 2 cores).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError

if TYPE_CHECKING:
    import torch

    from hpo.train.config import TrainConfig
    from hpo.train.data import Corpus
    from hpo.workbench import Workbench

__all__ = ["CHAT_QUESTION", "PLAIN_PROMPT", "Prompt", "causal_lm", "label_of", "predicted_labels",
           "summed_log_likelihoods"]

PLAIN_PROMPT = "Text: {text}\nTopic:"  # a label continues it after a space: "Topic: money fx"
# the user's message under a chat template; the label is the start of the assistant's reply
CHAT_QUESTION = "Which of these topics is the text about: {labels}?\n\nText: {text}\n\nAnswer with the topic only."


@dataclass(frozen=True)
class Prompt:
    """How a text becomes the prompt and a label name its continuation: the tokenizer's chat template where it has
    one (an instruction-tuned model answers in its own format), else plain text. The text is cut to `max_length`
    tokens, as the fine-tunes see it."""

    tokenizer: Any
    names: tuple[str, ...]
    max_length: int

    @property
    def style(self) -> str:
        return "chat template" if getattr(self.tokenizer, "chat_template", None) else "plain"

    def template(self) -> str:
        """The prompt as words, `{text}` where each text goes (for the page and the JSON)."""
        if self.style == "plain":
            return PLAIN_PROMPT
        return self._chat(CHAT_QUESTION.format(labels=", ".join(self.names), text="{text}"))

    def ids(self, text: str) -> list[int]:
        if self.style == "plain":
            bos = self.tokenizer.bos_token_id  # the first token should have a context, as in pre-training
            prefix = [] if bos is None else [bos]
            return prefix + self._tokens(PLAIN_PROMPT.format(text=self._cut(text)))
        return self._tokens(self._chat(CHAT_QUESTION.format(labels=", ".join(self.names), text=self._cut(text))))

    def label_ids(self) -> list[list[int]]:
        """Each label name's tokens as the continuation: after a space in plain text, the reply's first words in a
        chat."""
        found = [self._tokens(f" {name}" if self.style == "plain" else name) for name in self.names]
        if not all(found):
            raise HpoError(f"zero-shot: a label name tokenises to nothing ({list(self.names)})")
        return found

    def _tokens(self, text: str) -> list[int]:
        # no special tokens: a tokenizer that appends an end-of-text token would end the prompt before the label
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _chat(self, question: str) -> str:
        return self.tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                  add_generation_prompt=True)

    def _cut(self, text: str) -> str:
        kept = self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.max_length,
                              return_offsets_mapping=self.tokenizer.is_fast)
        if not self.tokenizer.is_fast:
            return self.tokenizer.decode(kept["input_ids"])
        offsets = kept["offset_mapping"]
        return text[: offsets[-1][1]] if offsets else ""


def _forward_keywords(model: Any) -> tuple[str, dict[str, int]]:
    """The name of the cache argument (`cache` from transformers 5.x, `past_key_values` before), and, where the
    model takes it, `logits_to_keep=1`: only the prompt's last position predicts a label token."""
    parameters = inspect.signature(model.forward).parameters
    keep = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    return ("cache" if "cache" in parameters else "past_key_values"), keep


def _repeated(cache: Any, times: int) -> Any:
    """The prompt's key/value cache repeated `times` along the batch, one copy per label."""
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(times)
        return cache
    return tuple(tuple(t.repeat_interleave(times, dim=0) for t in layer) for layer in cache)  # a legacy tuple


def summed_log_likelihoods(model: Any, prompt: Sequence[int], labels: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each label's summed log-probability of its tokens continuing `prompt`, log P(label | prompt): one forward of
    the prompt (use_cache=True), then one of every label's later tokens at once over the repeated cache."""
    import torch

    device = next(model.parameters()).device
    cache_name, keep = _forward_keywords(model)
    first = model(input_ids=torch.tensor([list(prompt)], device=device), use_cache=True, **keep)
    heads = torch.tensor([ids[0] for ids in labels], device=device)
    scores = first.logits[0, -1].float().log_softmax(-1)[heads]
    longest = max(len(ids) for ids in labels)
    if longest == 1:
        return scores
    # Each label's tokens but its last (each predicts the next), right-padded: padding comes after every real token,
    # so the causal mask keeps it out of what is scored, and its own positions are masked out below.
    inputs = torch.zeros(len(labels), longest - 1, dtype=torch.long, device=device)
    targets, scored = torch.zeros_like(inputs), torch.zeros_like(inputs, dtype=torch.bool)
    for row, ids in enumerate(labels):
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:])
        scored[row, : len(ids) - 1] = True
    cache = _repeated(getattr(first, "cache", None) or first.past_key_values, len(labels))
    logits = model(input_ids=inputs, use_cache=True, **{cache_name: cache}).logits.float().log_softmax(-1)
    rest = logits.gather(-1, targets[..., None])[..., 0]
    return scores + torch.where(scored, rest, 0.0).sum(-1)


def label_of(model: Any, prompt: Sequence[int], labels: Sequence[Sequence[int]]) -> int:
    """The label whose name is likeliest after `prompt`. Summed, not averaged per token: the sum is log P(label |
    prompt), the probability that the model writes exactly that name; a per-token mean is no probability and
    favours a long name whose later tokens are near-certain once its first is written."""
    return int(summed_log_likelihoods(model, prompt, labels).argmax())


def causal_lm(bench: Workbench) -> Any | None:
    """The study's model with its LM head (the same files and dtype as the fine-tunes' backbone), in eval mode; None
    when the checkpoint holds no trained LM head (a base model saved without one), whose scores would be noise."""
    from transformers import AutoModelForCausalLM

    from hpo.train.model import resolve_model_path

    spec = bench.bundle.spec
    dtype = next(bench.bundle.encoder.parameters()).dtype
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            resolve_model_path(spec.id), dtype=dtype, trust_remote_code=spec.trust_remote_code,
            output_loading_info=True)
    except Exception as exc:  # a family without a causal-LM class, an unreadable checkpoint
        raise HpoError(f"zero-shot: model {spec.id}: cannot load it with its LM head: {exc}") from None
    head = model.get_output_embeddings()
    names = {name for name, module in model.named_modules() if module is head}
    if any(key.rsplit(".", 1)[0] in names for key in info["missing_keys"]):
        return None
    return model.eval()


def predicted_labels(model: Any, test: Corpus, config: TrainConfig, prompt: Prompt,
                     on_text: Callable[[int, int], None] | None = None) -> Any:
    """The label `label_of` picks for each text of `test`, in order, on the config's device and precision."""
    import numpy as np
    import torch

    from hpo.train.loop import placement

    where = placement(config)
    model.to(where.device)
    labels = prompt.label_ids()
    found = np.empty(len(test), dtype=np.int64)
    with torch.inference_mode(), torch.autocast(where.device.type, dtype=where.autocast or torch.float32,
                                                 enabled=where.autocast is not None):
        for index, text in enumerate(test.texts):
            found[index] = label_of(model, prompt.ids(text), labels)
            if on_text is not None:
                on_text(index + 1, len(test))
    return found
