"""What a PRM is built on: the policy itself, or a backbone that does not share the policy's errors.

A PRM fine-tuned from the policy starts from the policy's beliefs, misconceptions included: where the
policy confidently writes a wrong value, its hidden states and its likelihood both call that value
normal. Published PRMs are fine-tuned from models stronger than the policies they judge. On the tiny
task the stand-in for such a model is ``clean``: a fresh LM of the policy's architecture trained on the
task's reference solutions only (no slips, no misconceptions), which finds a misconceived value as
unlikely as a random slip. It sees no step label; the PRM's readout is then trained on the labels as
usual (notebook 01, ``prm_backbone``).
"""

from __future__ import annotations

import copy

import torch

from ..choices import check_choice
from ..models import unwrap

BACKBONES = ("policy", "clean")


def clean_backbone(policy, tokenizer, task, steps: int, batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
                   log=None, progress: bool = True):
    """A fresh LM with ``policy``'s config (architecture and size), trained by `prmlab.sft.train_sft` on
    ``task.train``'s reference solutions only (``mistake_rate`` and ``misconception_rate`` 0)."""
    from transformers import AutoModelForCausalLM

    from ..sft import SFTConfig, train_sft

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(copy.deepcopy(unwrap(policy).config)).to(next(policy.parameters()).device)
    cfg = SFTConfig(steps=steps, batch_size=batch_size, lr=lr, mistake_rate=0.0, misconception_rate=0.0, seed=seed)
    train_sft(model, tokenizer, task, cfg, log=log, progress=progress)
    return model.eval()


def prm_backbone(kind: str, policy, tokenizer, task, **clean_options):
    """The model PRMs are copied from: ``policy`` itself, or `clean_backbone` (``clean_options``)."""
    check_choice(kind, BACKBONES, "prm_backbone")
    return policy if kind == "policy" else clean_backbone(policy, tokenizer, task, **clean_options)
