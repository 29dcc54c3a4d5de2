"""Shared fixtures: tiny, locally built encoders (learning quality is not the point of most tests) and small
study files over the real built-in corpora."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def fresh_settings():
    """The process reads HPO_* once; a test that changes the environment gets a fresh read."""
    from hpo.settings import settings

    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from hpo.train.model import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:all-MiniLM-L6-v2"))


def _tiny_bert(tmp_path_factory, tokenizer, layers: int) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    path = tmp_path_factory.mktemp(f"tiny-bert-{layers}")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_tokenizer) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved like a hub model."""
    return _tiny_bert(tmp_path_factory, minilm_tokenizer, 2)


@pytest.fixture(scope="session")
def tiny_six_layer_dir(tmp_path_factory, minilm_tokenizer) -> Path:
    """The same with MiniLM's 6 layers, for the shipped study files' freeze_depth range (0 .. 6)."""
    return _tiny_bert(tmp_path_factory, minilm_tokenizer, 6)


@pytest.fixture
def pg_url():
    """A URL to a new, empty database on the machine's PostgreSQL; dropped after the test."""
    from tests.pg import create_database, drop_database

    url, name = create_database()
    yield url
    drop_database(name)


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (trust authentication), which it may restart."""
    from tests.pg import own_cluster

    with own_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, for tests that look at pages as a person would."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    from tests.ci import unavailable

    unavailable("chromium is not installed (apt-get install -y chromium); page tests need it")
