"""Advantages from groups of K samples per prompt: RLOO and GRPO baselines, masked statistics,
returns with gamma = 1, and PURE's token-level and step-level RLOO baselines for process rewards.

Shapes follow `prmlab.rl`: per-response tensors are ``[B]``, token tensors ``[B, T]`` with a ``mask``;
rows ``i*K .. i*K+K-1`` are the K samples of prompt i.
"""

from __future__ import annotations

import torch

from .credit import place_on_last_tokens


def grouped(x: torch.Tensor, group_size: int, min_size: int = 1) -> torch.Tensor:
    """``x`` (``[B, ...]``) viewed as ``[B / K, K, ...]``, one row per prompt.

    Raises ValueError when B is not a multiple of ``group_size`` or the group is smaller than
    ``min_size`` (leave-one-out baselines need 2).
    """
    if group_size < min_size:
        raise ValueError(f"group_size must be >= {min_size} here, got {group_size}")
    if x.shape[0] % group_size:
        raise ValueError(f"batch of {x.shape[0]} rows is not a whole number of groups of {group_size}")
    return x.reshape(x.shape[0] // group_size, group_size, *x.shape[1:])


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


def rloo(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out advantages (Ahmadian et al., "Back to Basics: Revisiting REINFORCE
    Style Optimization for Learning from Human Feedback in LLMs", 2024).

    ``A_i = r_i - mean_{j != i} r_j``, computed as the equivalent ``K / (K - 1) * (r_i - mean_j r_j)``.
    ``rewards`` is ``[B]``; group_size must be >= 2.
    """
    g = grouped(_as_float(rewards), group_size, min_size=2)
    k = group_size
    return (k / (k - 1) * (g - g.mean(1, keepdim=True))).reshape(rewards.shape)


def group_normalize(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages (Shao et al., "DeepSeekMath", 2024): ``(r - mean) / (std + eps)`` per group.

    The std is the unbiased one (``torch.std``), as in verl's GRPO; a group of equal rewards gets 0.
    """
    g = grouped(_as_float(rewards), group_size, min_size=2)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)).reshape(rewards.shape)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is true (all of them, or along ``dim``).

    Masked-out values are never read, so NaN there is harmless; an empty selection gives 0.
    """
    m = mask.bool()
    x = torch.where(m, x, 0)
    if dim is None:
        return x.sum() / m.sum().clamp(min=1)
    return x.sum(dim) / m.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Whiten ``x`` with the mean and variance of its masked entries over the whole batch.

    The variance is the unbiased one (as in verl's ``masked_whiten``). With ``shift_mean=False`` the
    mean is added back, so only the scale changes. Masked positions come out 0.
    """
    m = mask.bool()
    mean = masked_mean(x, m)
    centered = torch.where(m, x - mean, 0)
    var = centered.square().sum() / (m.sum() - 1).clamp(min=1)
    out = centered * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(m, out, 0)


def returns_to_go(token_rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Undiscounted returns ``G_t = sum_{s >= t} r_s`` over masked tokens; 0 at masked positions."""
    m = mask.bool()
    r = torch.where(m, token_rewards, 0)
    return torch.where(m, r.flip(-1).cumsum(-1).flip(-1), 0)


def token_level_rloo(
    token_rewards: torch.Tensor, mask: torch.Tensor, group_size: int, whiten: bool = True
) -> torch.Tensor:
    """PURE's token-level RLOO advantages (Cheng et al., "Stop Summation: Min-Form Credit Assignment
    Is All Process Reward Model Needs for Reasoning", 2025; the verl branch of CJReinforce/PURE).

    With ``G`` the returns-to-go of each response and ``N`` the padded length T, the baseline of
    response i is the other responses' mean return per token position,
    ``b_i = sum_{j != i} sum_t G_{j,t} / ((K - 1) N)``; the advantage is ``(G_i - b_i) * mask``, then
    whitened over the batch. Dividing by the padded N (not by each response's length) is what the
    published code does. The baseline does not depend on how a response is cut into steps.
    """
    m = mask.bool()
    g = returns_to_go(token_rewards, m)
    k, n = group_size, g.shape[-1]
    totals = grouped(g.sum(-1), k, min_size=2)
    baseline = ((totals.sum(1, keepdim=True) - totals) / ((k - 1) * n)).reshape(-1, 1)
    adv = torch.where(m, g - baseline, 0)
    return masked_whiten(adv, m) if whiten else adv


def step_level_rloo(
    step_rewards: list[torch.Tensor],
    spans: list[list[tuple[int, int]]],
    mask: torch.Tensor,
    group_size: int,
    whiten: bool = True,
) -> torch.Tensor:
    """PURE's first, step-level RLOO baseline (``--reward_baseline step`` in the OpenRLHF branch of
    CJReinforce/PURE), kept to show the "fewer, longer steps" hack it invites.

    Each response's mean reward per step, ``R_j / n_j`` (its step rewards summed, over its number of
    steps; 0 for a response without steps), is averaged over the other K-1 responses of the group to
    give ``b_i``; ``b_i`` is subtracted from *every step* of response i, the results are placed on the
    steps' last tokens, and the advantage is their return-to-go, whitened over the batch. Response i's
    total thus loses ``n_i * b_i``: the same text cut into more steps gets a different advantage
    (PURE issue #2), which `token_level_rloo` avoids.
    """
    if len(step_rewards) != mask.shape[0]:
        raise ValueError(f"{len(step_rewards)} rows of step rewards for a batch of {mask.shape[0]}")
    n_steps = torch.tensor([len(r) for r in step_rewards], dtype=torch.float64)
    totals = torch.tensor([float(r.sum()) for r in step_rewards], dtype=torch.float64)
    per_step = grouped(totals / n_steps.clamp(min=1), group_size, min_size=2)
    baseline = ((per_step.sum(1, keepdim=True) - per_step) / (group_size - 1)).reshape(-1).tolist()
    shifted = [_as_float(r) - b for r, b in zip(step_rewards, baseline)]
    token_rewards = place_on_last_tokens(shifted, spans, mask.shape[-1]).to(mask.device)
    adv = returns_to_go(token_rewards, mask)
    return masked_whiten(adv, mask) if whiten else adv
