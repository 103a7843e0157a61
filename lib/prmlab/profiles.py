"""Profiles: named parameter sets, defined once here.

A notebook's parameters cell holds the **tiny** defaults (CPU, minutes). ``--profile smoke`` overlays
step counts cut so that every notebook runs in well under a minute (tests); ``--profile paper`` overlays
real models and data for a GPU. Only parameters that differ from the tiny defaults are listed.
"""

from __future__ import annotations

PROFILES = ("tiny", "smoke", "paper")

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
            "dataset": "gsm8k",
            "policy": "Qwen/Qwen2.5-Math-1.5B-Instruct",
            "sft_steps": 0,
            "n_eval": 500,
            "max_k": 64,
            "max_new_tokens": 512,
            "sample_batch": 64,
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
            "n_eval": 8,
            "bon_max_n": 4,
            "real_text_questions": 100,
            "explorer_samples": 3,
        },
        "paper": {
            "label_source": "mc-hard",
            "train_labels": "mc-hard,mc-soft",
            "lora": True,
            "lora_r": 16,
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
            "scorers": "prm",
            "n_problems": 200,
            "max_n": 64,
            "repetitions": 3,
            "max_new_tokens": 512,
        },
    },
}


def overlay(notebook: str, profile: str) -> dict:
    """Parameters that ``profile`` sets for ``notebook`` on top of its tiny defaults."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return {**OVERLAYS.get(notebook, {}).get(profile, {}), "profile": profile}
