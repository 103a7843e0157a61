"""PURE's recipe for PRM rewards in RL: step rewards -> credited token rewards -> advantages.

Cheng et al., "Stop Summation: Min-Form Credit Assignment Is All Process Reward Model Needs for
Reasoning" (PURE, arXiv 2504.15275), as its published code does it:

1. every step of every rollout is scored by a step scorer (`prmlab.prm.scorer`: the PRM of notebook 01,
   the exact oracle, PRIME's implicit PRM), ``p`` = the probability that the step is good, and turned
   into a reward ``r = 2p - 1`` (or ``p``);
2. credit assignment: ``"sum"`` puts ``r_k`` on the step's last token; ``"min"`` first reweights the
   rewards of a response with ``softmax(-r / T)`` (the return from the start then tends to the worst
   step's reward); ``"none"`` uses no process reward (the verifiable-reward-only arm);
3. the verifiable reward (the grader's 0/1) is added on the last token for the chosen prompts;
4. KL to the reference policy as a reward term (when on);
5. PURE's token-level RLOO baseline on the returns, then batch whitening (or the step-level baseline,
   to show the hack it invites).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..choices import check_choice
from .advantages import step_level_rloo, token_level_rloo
from .credit import add_outcome_reward, min_form, place_on_last_tokens, step_rewards_from_prob
from .ppo import kl_reward

CREDITS = ("min", "sum", "none")
BASELINES = ("token", "step")


@dataclass
class PureRewards:
    """What PURE's recipe computed for one batch of rollouts (kept for the meters and the explorer)."""

    step_probs: list[np.ndarray] | None  # per row, the scorer's p of each step
    credited: list[torch.Tensor] | None  # per row, the credited reward of each step
    token_rewards: torch.Tensor  # [B, T] everything the return sums: process, verifiable, KL terms
    process_returns: torch.Tensor | None  # [B] return from the first token of the process reward alone
    advantages: torch.Tensor  # [B, T]


def credited_step_rewards(step_probs: list[np.ndarray], credit: str, convention: str = "2p-1",
                          temperature: float = 0.1) -> list[torch.Tensor]:
    """Per response, the reward each step is credited with: ``r_k`` (sum-form) or ``w_k r_k`` (min-form)."""
    check_choice(credit, CREDITS[:2], "credit")
    out = []
    for p in step_probs:
        r = step_rewards_from_prob(torch.as_tensor(np.asarray(p, dtype=np.float64)), convention)
        out.append(min_form(r[None], temperature)[0] if credit == "min" and len(r) else r)
    return out


def pure_rewards(ro, step_probs: list[np.ndarray] | None, credit: str = "min", convention: str = "2p-1",
                 temperature: float = 0.1, verifiable: torch.Tensor | None = None, verifiable_coef: float = 1.0,
                 baseline: str = "token", kl_coef: float = 0.0, kl_estimator: str = "k3",
                 ref_logprobs: torch.Tensor | None = None) -> PureRewards:
    """Token rewards and advantages of rollouts ``ro`` (`prmlab.rl.rollouts.Rollouts`).

    ``step_probs``: per row, the scorer's probability of each step (None with ``credit="none"``);
    ``verifiable``: bool ``[B]``, the rows that also get the outcome reward; ``ref_logprobs``: the
    reference policy's log-probs of the rollouts' tokens, needed when ``kl_coef > 0``.
    """
    check_choice(credit, CREDITS, "credit")
    check_choice(baseline, BASELINES, "baseline")
    mask, t = ro.response_mask, ro.response_mask.shape[1]
    credited, process_returns = None, None
    token_rewards = torch.zeros(mask.shape, dtype=torch.float64)
    if credit != "none":
        if step_probs is None:
            raise ValueError(f"credit {credit!r} needs step rewards from a scorer")
        credited = credited_step_rewards(step_probs, credit, convention, temperature)
        token_rewards = place_on_last_tokens(credited, ro.step_spans, t).double()
        process_returns = torch.stack([c.sum() if len(c) else torch.zeros((), dtype=torch.float64) for c in credited])
    if verifiable is not None and bool(verifiable.any()):
        token_rewards = add_outcome_reward(token_rewards, mask, ro.correct.double(), verifiable, verifiable_coef)
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs the reference policy's log-probs")
        token_rewards = kl_reward(token_rewards, ro.old_logprobs.double(), ref_logprobs.double(), mask, kl_coef,
                                  kl_estimator)
    if baseline == "token":
        adv = token_level_rloo(token_rewards, mask, ro.k)
    else:  # the step baseline needs step rewards: the outcome and KL terms ride on the last step
        steps = _step_view(token_rewards, ro.step_spans, mask)
        adv = step_level_rloo(steps, ro.step_spans, mask, ro.k)
    return PureRewards(None if step_probs is None else list(step_probs), credited, token_rewards.float(),
                       None if process_returns is None else process_returns.float(), adv.float())


def _step_view(token_rewards: torch.Tensor, spans, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the reward each step collects (the sum of the token rewards over its span, and the tokens
    after the last step on the last step)."""
    out = []
    for r, sp in enumerate(spans):
        if not sp:
            out.append(torch.zeros(0, dtype=token_rewards.dtype))
            continue
        vals = [token_rewards[r, a:b].sum() for a, b in sp]
        vals[-1] = vals[-1] + token_rewards[r, sp[-1][1]:].sum()
        out.append(torch.stack(vals))
    return out

