"""The fits the GPU check times (benchmarks/gpu_check.py): the project's loop and a Hugging Face `Trainer` on the
same texts, and one short trial (run alone, or k at once as separate processes: `python -m benchmarks.gpu_trainer
trial MODEL DOCS MAX_LENGTH DEVICE`). torch, transformers, numpy and hpo.train only: no Optuna, no datasets."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

__all__ = ["loop_fit", "lora_llama_fit", "one_trial", "trainer_fit"]


def _labels(train: tuple[list[str], list[str]], test: tuple[list[str], list[str]]):
    names = sorted(set(train[1]))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[x] for x in train[1]]), np.array([index.get(x, -1) for x in test[1]])


def _encoded(tokenizer, train, test, max_length: int):
    """(label names, train, test) tokenised as the objective does; test texts of a label train lacks dropped."""
    from hpo.train.data import Corpus
    from hpo.train.tokens import encode, tokenizer_fingerprint

    names, y_train, y_test = _labels(train, test)
    keep = y_test >= 0
    key = tokenizer_fingerprint(tokenizer)
    train_enc = encode(tokenizer, key, Corpus(tuple(train[0]), y_train, tuple(names)), max_length)
    test_enc = encode(tokenizer, key, Corpus(tuple(t for t, k in zip(test[0], keep, strict=True) if k),
                                             y_test[keep], tuple(names)), max_length)
    return names, train_enc, test_enc


def loop_fit(model_dir: str, train, test, max_length: int, batch: int, precision: str, device: str,
             epochs: int = 1) -> tuple[float, float]:
    """hpo's loop, target only, no freezing: (samples/s over the whole fit, test macro-F1 at its one evaluation)."""
    from transformers import AutoModel, AutoTokenizer

    from hpo.train.config import TrainConfig
    from hpo.train.loop import train as fit
    from hpo.train.model import TransferModel

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    names, train_enc, test_enc = _encoded(tokenizer, train, test, max_length)
    torch.manual_seed(0)
    model = TransferModel(AutoModel.from_pretrained(model_dir, dtype=torch.float32), len(names), 2, "mean")
    config = TrainConfig(learning_rate=1e-4, target_weight=1.0, epochs=epochs, batch_size=batch, max_length=max_length,
                         evaluations_per_epoch=1, device=device, precision=precision)
    started = time.perf_counter()
    result = fit(config, model, train_enc, test_enc, None, pad_id=tokenizer.pad_token_id or 0,
                 on_eval=lambda e: None)
    _sync(device)
    return len(train_enc) * epochs / (time.perf_counter() - started), result.curve[-1].f1


def trainer_fit(model_dir: str, train, test, max_length: int, batch: int, precision: str, device: str,
                epochs: int = 1) -> tuple[float, float]:
    """A `Trainer` as a user writes it (AutoModelForSequenceClassification, DataCollatorWithPadding, defaults):
    (samples/s over trainer.train(), test macro-F1 of trainer.predict)."""
    import tempfile

    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from hpo.train.metrics import f1

    names, y_train, y_test = _labels(train, test)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def rows(texts, labels):
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
        return [{"input_ids": ids, "attention_mask": mask, "labels": int(label)}
                for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
                if label >= 0]

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(names), dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, num_train_epochs=epochs,
                                 learning_rate=1e-4, bf16=precision == "bf16", use_cpu=device == "cpu",
                                 report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                                 per_device_eval_batch_size=batch * 4)
        trainer = Trainer(model=model, args=args, train_dataset=rows(*train[:1], y_train),
                          data_collator=DataCollatorWithPadding(tokenizer))
        started = time.perf_counter()
        trainer.train()
        _sync(device)
        seconds = time.perf_counter() - started
        test_rows = rows(test[0], y_test)
        predictions = trainer.predict(test_rows).predictions.argmax(-1)
    return len(y_train) * epochs / seconds, f1(np.array([r["labels"] for r in test_rows]), predictions, "macro")


def one_trial(model_dir: str, docs: int, max_length: int, device: str, lora: bool = False) -> float:
    """A short trial as the search runs one (bf16 where the device has it): its validation macro-F1. `lora`: the
    tiny random Llama with LoRA adapters (lora_llama_fit) instead of MiniLM fully fine-tuned."""
    from hpo.train.corpora import builtin_file, read_tab

    texts, labels = read_tab(builtin_file("reuters-r8", "train"))
    train = texts[:docs], labels[:docs]
    val = texts[docs : docs + docs // 4], labels[docs : docs + docs // 4]
    precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if lora:
        return lora_llama_fit(model_dir, train, val, max_length, 32, precision, device)["test_macro_f1"]
    return loop_fit(model_dir, train, val, max_length, 32, precision, device)[1]


def lora_llama_fit(tokenizer_dir: str, train, test, max_length: int, batch: int, precision: str, device: str,
                   freeze_depth: int = 2) -> dict:
    """One LoRA trial of a tiny random Llama (4 blocks, hidden 256; built here: the machine reaches no hub), adapters
    above `freeze_depth`, last-token pooling, through hpo's own LoRA path (`adapters.add_lora`) and loop: samples/s,
    trainable parameters and test macro-F1 (near chance: the weights are random; the figure is the speed)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from hpo.train.adapters import add_lora
    from hpo.train.config import TrainConfig
    from hpo.train.loop import train as fit
    from hpo.train.model import TransferModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)  # MiniLM's: a real vocabulary, with a pad token
    names, train_enc, test_enc = _encoded(tokenizer, train, test, max_length)
    torch.manual_seed(0)
    llama = AutoConfig.for_model("llama", vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512,
                                 num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=max_length * 2, pad_token_id=tokenizer.pad_token_id)
    model = TransferModel(AutoModel.from_config(llama), len(names), 2, "last")
    config = TrainConfig(learning_rate=1e-3, target_weight=1.0, epochs=1, batch_size=batch, max_length=max_length,
                         evaluations_per_epoch=1, device=device, precision=precision, adapter="lora",
                         freeze_depth=freeze_depth, head_lr_multiplier=1)
    model.freeze(freeze_depth)
    add_lora(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    started = time.perf_counter()
    result = fit(config, model, train_enc, test_enc, None, pad_id=tokenizer.pad_token_id, on_eval=lambda e: None)
    _sync(device)
    return {"samples_per_s": round(len(train_enc) / (time.perf_counter() - started), 1),
            "trainable_params": trainable, "test_macro_f1": round(result.curve[-1].f1, 4), "precision": precision}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__" and sys.argv[1:2] == ["trial"]:
    model, docs, length, where = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    print(f"val macro-F1 {one_trial(model, docs, length, where, lora=sys.argv[6:7] == ['lora']):.4f}")
