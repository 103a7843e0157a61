"""Shared fixtures: a temporary MLflow store per test that needs one, offline hub, tiny models."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tiny models: one thread avoids thread-pool overhead that dominates small ops on 2 shared cores.
torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store (artifacts beside it) used by everything in the test."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("PRMLAB_RUN_ID", raising=False)
    return uri


@pytest.fixture(scope="session")
def char_tokenizer():
    from prmlab.models import build_char_tokenizer

    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_policy(char_tokenizer):
    """A randomly initialised small Llama policy (no training): enough for exactness tests."""
    from prmlab.models import PolicyConfig, build_policy

    return build_policy(char_tokenizer, PolicyConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                                                     intermediate_size=64), seed=0).eval()
