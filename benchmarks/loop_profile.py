"""Where a trial's time goes: one epoch of the loop under torch.profiler, grouped into what could be cut.

Same task as trainer_vs_loop.py (bundled MiniLM, 512 R8 documents, max length 128, batch 16, one evaluation),
freeze depth 0, precision auto. Prints the share of CPU time in matrix multiplications (forward and backward:
the floor a CPU's matmul rate sets), attention's other kernels, the optimiser step, evaluation, and the rest
(Python, collation, elementwise ops); and the padding left after length bucketing (padded tokens / real tokens).

    HPO_CACHE=/tmp/hpocache .venv/bin/python benchmarks/loop_profile.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from hpo.spec import DatasetSpec, ModelSpec
from hpo.train.batches import bucketed_batches
from hpo.train.config import TrainConfig
from hpo.train.data import load_task_data
from hpo.train.loop import train
from hpo.train.model import TransferModel, load_encoder
from hpo.train.tokens import encode, tokenizer_fingerprint

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear")
ATTENTION = ("aten::_scaled_dot_product", "aten::softmax", "aten::_softmax")
OPTIMISER = ("Optimizer.step", "aten::_fused_adamw", "aten::_foreach")


def main() -> None:
    data = load_task_data(DatasetSpec(builtin="20newsgroups", max_samples=64),
                          DatasetSpec(builtin="reuters-r8", max_samples=640), validation_size=128, seed=0)
    bundle = load_encoder(ModelSpec(id="bundled:all-MiniLM-L6-v2"))
    key = tokenizer_fingerprint(bundle.tokenizer)
    train_enc = encode(bundle.tokenizer, key, data.target_train, 128)
    val_enc = encode(bundle.tokenizer, key, data.target_val, 128)
    config = TrainConfig(epochs=1, batch_size=16, max_length=128, evaluations_per_epoch=1, target_weight=1.0,
                         device="cpu")
    model = TransferModel(bundle.fresh_encoder(), len(data.target_train.label_names), 2, "mean")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(config, model, train_enc, val_enc, None, pad_id=bundle.tokenizer.pad_token_id or 0,
              on_eval=lambda e: None)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)

    def share(prefixes: tuple[str, ...]) -> float:
        return sum(e.self_cpu_time_total for e in events if e.key.startswith(prefixes)) / total

    rng = np.random.default_rng(0)
    batches = bucketed_batches(train_enc.lengths, 16, rng)
    padded = sum(len(b) * int(train_enc.lengths[b].max()) for b in batches)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; one epoch, {len(train_enc)} documents")
    print(f"matrix multiplications {share(MATMUL):6.1%}")
    print(f"attention (other)      {share(ATTENTION):6.1%}")
    print(f"optimiser              {share(OPTIMISER):6.1%}")
    rest = 1 - share(MATMUL) - share(ATTENTION) - share(OPTIMISER)
    print(f"everything else        {rest:6.1%}  (elementwise, layer norm, GELU, embedding, Python)")
    print(f"padding after bucketing: {padded:,} padded tokens for {int(train_enc.lengths.sum()):,} real "
          f"({padded / train_enc.lengths.sum() - 1:.1%} extra)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
