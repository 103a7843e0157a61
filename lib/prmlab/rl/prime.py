"""PRIME (Cui et al., "Process Reinforcement through Implicit Rewards", arXiv 2502.01456): RLOO on
implicit process rewards and on outcomes, their returns and the accuracy filter on prompt groups (the
implicit PRM itself, with its loss: `prmlab.prm.implicit`).

Where the paper's text and the published code (PRIME-RL/PRIME; verl's ``recipe/prime``) differ, these
functions follow the code, and each docstring says where.
"""

from __future__ import annotations

import torch

from .advantages import grouped, masked_mean, masked_whiten, returns_to_go, rloo
from .credit import place_on_last_response_token


def process_rloo(token_rewards: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """PRIME's leave-one-out baseline for token-level process rewards, as the published code does it.

    With ``m_j`` the mean of ``r_{j,t}`` over response j's tokens (0 for an empty response), the code
    computes ``r'_{i,t} = r_{i,t} K / (K - 1) - sum_j m_j / (K - 1)``, the sum over the whole group,
    i itself included. That equals the paper's ``r_{i,t} - mean_{j != i} m_j`` plus
    ``(r_{i,t} - m_i) / (K - 1)``: the extra term sums to 0 over response i, so each response keeps the
    paper's total, ``sum_t r_{i,t} - L_i mean_{j != i} m_j``, but credit moves between its tokens
    (above-average tokens gain). Masked positions come out 0.
    """
    m = mask.bool()
    r = torch.where(m, token_rewards, 0)
    k = group_size
    means = grouped(masked_mean(r, m, dim=-1), k, min_size=2)
    group_sum = means.sum(1, keepdim=True).expand(-1, k).reshape(-1, 1)
    return torch.where(m, r * (k / (k - 1)) - group_sum / (k - 1), 0)


def outcome_rloo(outcomes: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """Outcome RLOO ``o_i - mean_{j != i} o_j`` on the last response token, 0 elsewhere (``[B, T]``).

    This is what PRIME's code gets from its masked RLOO with the outcome as a one-token reward.
    """
    return place_on_last_response_token(rloo(outcomes, group_size), mask)


def scale_by_max_return(token_rewards: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """PRIME's ``prime_norm: batch_norm``: divide the rewards by the batch's largest absolute return
    (gamma = 1), so that return becomes 1. The result does not depend on the rewards' scale, hence
    not on the implicit PRM's beta. Masked positions come out 0."""
    m = mask.bool()
    r = torch.where(m, token_rewards, 0)
    return r / (returns_to_go(r, m).abs().max() + eps)


def prime_returns(
    process_rewards: torch.Tensor | None,
    mask: torch.Tensor,
    outcomes: torch.Tensor,
    group_size: int,
    process_coef: float = 5.0,
    outcome_coef: float = 5.0,
    batch_norm: bool = True,
    whiten: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PRIME's advantages and returns: ``G`` the gamma = 1 return of
    ``process_coef * process_rloo(r) + outcome_coef * outcome_rloo(o)``, advantages ``G`` whitened over
    the batch's masked tokens.

    As in verl's PRIME recipe (``reward_dpo_coef = reward_gt_coef = 5``), each reward source gets its
    own RLOO before the two are mixed, and ``batch_norm`` (`scale_by_max_return`) is applied to the
    implicit process rewards *before* their RLOO. ``process_rewards=None`` gives outcome-only RLOO.
    Returns ``(advantages, returns)``, both ``[B, T]`` and 0 at masked positions.
    """
    m = mask.bool()
    combined = outcome_coef * outcome_rloo(outcomes, m, group_size)
    if process_rewards is not None:
        if batch_norm:
            process_rewards = scale_by_max_return(process_rewards, m)
        combined = combined + process_coef * process_rloo(process_rewards, m, group_size)
    returns = returns_to_go(combined, m)
    return (masked_whiten(returns, m) if whiten else returns), returns


def filter_groups(
    correct: torch.Tensor,
    group_size: int,
    low: float = 0.2,
    high: float = 0.8,
    truncated: torch.Tensor | None = None,
    drop_truncated: bool = False,
) -> torch.Tensor:
    """PRIME's online prompt filter -> bool ``[B / K]``: keep a prompt iff its group accuracy is in
    ``[low, high]``, both ends included (K = 4: 1 to 3 correct). With ``drop_truncated`` a prompt is
    also dropped when any of its responses was truncated (the code's ``filter_truncated``).

    Defaults are verl's PRIME recipe (``accuracy_lower_bound = 0.2``, ``accuracy_upper_bound = 0.8``).
    """
    acc = grouped(correct.double(), group_size).mean(1)
    tol = 1e-9  # so that e.g. 1/5 counts as exactly 0.2
    keep = (acc >= low - tol) & (acc <= high + tol)
    if drop_truncated:
        if truncated is None:
            raise ValueError("drop_truncated=True needs the truncated flags of the responses")
        keep &= ~grouped(truncated.bool(), group_size).any(1)
    return keep

