"""PPO-clip policy loss (Schulman et al., "Proximal Policy Optimization Algorithms", 2017) and KL
estimators (Schulman, "Approximating KL Divergence", 2020). Token log-probabilities and entropies of a
model's outputs: `prmlab.tokens`.

Token tensors are ``[B, T]`` over response tokens with a ``mask`` (1 = real token); masked positions
are never read, so they may hold garbage.
"""

from __future__ import annotations

import torch

from ..choices import check_choice
from .advantages import masked_mean

KL_KINDS = ("k1", "k3")


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate ``-min(ratio A, clip(ratio, 1-eps, 1+eps) A)``, averaged over every
    masked token of the batch (token-mean: long responses weigh in proportion to their length).

    ``logp`` carries the gradient; ``old_logp`` (the sampling policy) and ``advantages`` are constants.
    Returns the loss and stats: ``clip_frac`` (share of tokens where the clipped term is the active
    one, i.e. they get no gradient), ``approx_kl`` (k3 estimate of KL(old || new) from the tokens) and
    ``ratio_mean``.
    """
    m = mask.bool()
    # Sanitize before exp: NaN at a masked position would otherwise leak NaN into the gradient.
    log_ratio = torch.where(m, logp - old_logp.detach(), 0)
    adv = torch.where(m, advantages.detach(), 0)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_eps, 1 + clip_eps)
    loss = masked_mean(torch.maximum(unclipped, clipped), m)
    with torch.no_grad():
        stats = {
            "clip_frac": float(masked_mean((clipped > unclipped).float(), m)),
            "approx_kl": float(masked_mean(ratio - 1 - log_ratio, m)),
            "ratio_mean": float(masked_mean(ratio, m)),
        }
    return loss, stats


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled from pi, with ``r = ref / pi``:
    ``k1 = -log r = logp - ref_logp`` (unbiased, can be negative) or ``k3 = (r - 1) - log r``
    (unbiased, always >= 0, lower variance when pi and ref are close)."""
    check_choice(kind, KL_KINDS, "KL estimator")
    log_r = ref_logp - logp
    return -log_r if kind == "k1" else log_r.exp() - 1 - log_r


def kl_reward(
    token_rewards: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    coef: float,
    kind: str = "k1",
) -> torch.Tensor:
    """KL as a reward term: ``token_rewards - coef * kl`` on masked tokens, 0 elsewhere."""
    m = mask.bool()
    kl = kl_estimate(torch.where(m, logp, 0), torch.where(m, ref_logp, 0), kind)
    return torch.where(m, token_rewards - coef * kl, 0)
