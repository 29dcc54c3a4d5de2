"""The search space as the sampler sees it: LoRA fields are sampled only where a trial runs LoRA."""

from __future__ import annotations

import optuna

from hpo.search.space import suggest
from hpo.spec import parse_spec

BASE = {"name": "s", "source": {"builtin": "20newsgroups"}, "target": {"builtin": "reuters-r8"}, "n_trials": 40}


def test_lora_fields_are_sampled_only_in_trials_that_run_lora():
    spec = parse_spec({**BASE, "search_space": {"adapter": {"choices": ["full", "lora"]},
                                                "lora_r": {"choices": [4, 16]},
                                                "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}},
                      source="s.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    adapters = set()
    for _ in range(20):
        trial = study.ask()
        config = suggest(trial, spec)
        adapters.add(config.adapter)
        assert ("lora_r" in trial.params) == (config.adapter == "lora"), trial.params
        if config.adapter == "full":
            assert config.lora_r == spec.base_config().lora_r  # the default, unused
        study.tell(trial, 0.5)
    assert adapters == {"full", "lora"}
