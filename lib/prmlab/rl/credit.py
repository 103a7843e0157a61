"""Credit assignment: turning a PRM's step rewards into token rewards.

Sum-form puts each step's reward on the step's last token, so a token's return is the sum of the
rewards after it (canonical RL, gamma = 1). Min-form (Cheng et al., "Stop Summation: Min-Form Credit
Assignment Is All Process Reward Model Needs for Reasoning", PURE, arXiv 2504.15275) first reweights
the step rewards with ``softmax(-r / T)``, so the return from the start approaches the *worst* step's
reward as T -> 0 and a high-scoring step cannot buy credit for a bad one. Verifiable (outcome) rewards
are added on the last response token.

Step structure: ``spans[row] = [(start, end), ...]`` response-token offsets, end exclusive; step
rewards are one 1-D tensor per row (a row may have no steps).
"""

from __future__ import annotations

import math

import torch

from ..choices import check_choice

PROB_CONVENTIONS = ("2p-1", "p")


def step_rewards_from_prob(p: torch.Tensor, convention: str = "2p-1") -> torch.Tensor:
    """Step rewards from a PRM's probability that each step is good.

    ``"2p-1"`` is PURE's ``p(good) - p(bad)`` of a two-class head, in [-1, 1] (a bad step is negative);
    ``"p"`` keeps the probability, in [0, 1].
    """
    check_choice(convention, PROB_CONVENTIONS, "reward convention")
    return 2 * p - 1 if convention == "2p-1" else p


def place_on_last_tokens(step_values: list[torch.Tensor], spans: list[list[tuple[int, int]]], T: int) -> torch.Tensor:
    """``[B, T]`` zeros with ``step_values[row][k]`` on token ``end_k - 1`` of each step.

    Spans must be ordered and non-overlapping within ``[0, T]``; a row with no steps stays 0.
    """
    if len(step_values) != len(spans):
        raise ValueError(f"{len(step_values)} rows of step values but {len(spans)} rows of spans")
    rows, cols = [], []
    for i, (values, row_spans) in enumerate(zip(step_values, spans)):
        if values.ndim != 1 or len(values) != len(row_spans):
            raise ValueError(f"row {i}: {tuple(values.shape)} step values for {len(row_spans)} steps")
        prev_end = 0
        for start, end in row_spans:
            if not prev_end <= start < end <= T:
                raise ValueError(f"row {i}: span {(start, end)} is not an ordered, non-empty step inside [0, {T}]")
            rows.append(i)
            cols.append(end - 1)
            prev_end = end
    if not step_values:
        return torch.zeros(0, T)
    values = torch.cat([v.reshape(-1) for v in step_values])
    if not values.is_floating_point():
        values = values.float()
    out = torch.zeros(len(step_values), T, dtype=values.dtype, device=values.device)
    index = torch.tensor([rows, cols], dtype=torch.long, device=out.device).reshape(2, -1)
    out[index[0], index[1]] = values
    return out


def sum_form(step_rewards: list[torch.Tensor], spans: list[list[tuple[int, int]]], T: int) -> torch.Tensor:
    """Sum-form token rewards: each step's reward on its last token (the return is a plain sum)."""
    return place_on_last_tokens(step_rewards, spans, T)


def min_form_weights(r: torch.Tensor, temperature: float = 0.1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PURE's min-form weights ``w_k = softmax_k(-r_k / temperature)`` over the last dimension.

    T -> 0 puts all weight on the worst step (shared equally among ties); T = inf gives uniform
    weights. Steps where ``mask`` is false (padding) get weight 0 and are never read; a row with no
    valid step gets all zeros.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (float('inf') allowed), got {temperature}")
    valid = torch.ones_like(r, dtype=torch.bool) if mask is None else mask.bool()
    w = torch.softmax(torch.where(valid, -r / temperature, -math.inf), dim=-1)
    return torch.where(valid, w, 0)  # a row with no valid step gives NaN from softmax


def min_form(step_rewards: torch.Tensor, temperature: float = 0.1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Min-form credited step rewards ``r*_k = w_k r_k`` (`min_form_weights`), one response per row.

    Summed from the start they tend to ``min_k r_k`` as T -> 0 and to the mean as T -> inf; placed
    with `sum_form`, the return after the worst step is ~0. Unlike PURE's "strict min-form" option,
    returns are not clamped.
    """
    valid = torch.ones_like(step_rewards, dtype=torch.bool) if mask is None else mask.bool()
    return min_form_weights(step_rewards, temperature, valid) * torch.where(valid, step_rewards, 0)


def place_on_last_response_token(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` zeros with ``values[row]`` on the row's last masked token (every row needs one)."""
    m = mask.bool()
    empty = (~m.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"rows {empty} have no response tokens to put a reward on")
    last = m.shape[-1] - 1 - m.flip(-1).int().argmax(-1)
    dtype = values.dtype if values.is_floating_point() else torch.get_default_dtype()
    out = torch.zeros(m.shape, dtype=dtype, device=m.device)
    out[torch.arange(m.shape[0], device=m.device), last] = values.to(out)
    return out


def add_outcome_reward(
    token_rewards: torch.Tensor, mask: torch.Tensor, outcomes: torch.Tensor, use: torch.Tensor, coef: float = 1.0
) -> torch.Tensor:
    """``token_rewards`` plus ``coef * outcome`` (a verifiable reward in {0, 1}) on the last response
    token of the rows where ``use`` is true (PURE's PRM + VR mix). Masked positions come out 0."""
    m = mask.bool()
    bonus = torch.where(use.bool().to(m.device), outcomes.to(m.device, token_rewards.dtype), 0) * coef
    return torch.where(m, token_rewards + place_on_last_response_token(bonus, m), 0)


def choose_outcome_prompts(
    n_prompts: int, fraction: float, group_size: int = 1, generator: torch.Generator | int | None = None
) -> torch.Tensor:
    """Which rows get a verifiable reward: ``round(fraction * n_prompts)`` prompts drawn without
    replacement, each expanded to its whole group of ``group_size`` rows -> bool ``[n_prompts * K]``.

    PURE's best recipe gives verifiable rewards to 10% of the prompts (a fixed subset of its data
    set: call this once over the data set with ``group_size=1`` for that). ``generator`` is a
    ``torch.Generator`` or an int seed; the same seed gives the same choice.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    n_use = math.floor(fraction * n_prompts + 0.5)
    chosen = torch.zeros(n_prompts, dtype=torch.bool)
    chosen[torch.randperm(n_prompts, generator=generator)[:n_use]] = True
    return chosen.repeat_interleave(group_size)
