"""The policy's own likelihood as a step scorer: the baseline every PRM must beat.

A step's reward is ``sigmoid(LIKELIHOOD_BIAS + m)``, with ``m`` the lowest log-probability the policy
gives any token of the solution so far (separators aside): exactly the likelihood-readout PRM of
`prmlab.prm.model` before training, on a frozen copy of the policy. It needs no labels; a verifier
that does not beat it has learnt nothing the policy did not already know about its own mistakes.
"""

from __future__ import annotations

from .model import CachedPRMScorer, PRMConfig, ProcessRewardModel

LIKELIHOOD = "likelihood"  # the scorer name of this baseline in notebooks 01, 02 and 04


def likelihood_prm(policy, tokenizer, separator: str = "\n") -> ProcessRewardModel:
    """The untrained likelihood-readout PRM on a frozen copy of ``policy``."""
    cfg = PRMConfig(readout="likelihood", freeze_backbone=True, separator=separator,
                    extra={"labels": "none (the policy's own likelihood)"})
    return ProcessRewardModel.from_policy(policy, tokenizer, cfg).eval()


def likelihood_scorer(policy, tokenizer, separator: str = "\n") -> CachedPRMScorer:
    """`likelihood_prm` as an incremental scorer (KV-cached), for search and RL."""
    return CachedPRMScorer(likelihood_prm(policy, tokenizer, separator))
