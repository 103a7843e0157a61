"""Prompts and responses as one batch of tokens, and what a causal LM says about the responses' tokens.

The floor under the implicit PRM (`prmlab.prm.implicit`), RL rollouts (`prmlab.rl.rollouts`) and the PPO
update: each reads log-probs of response tokens from a policy-sized model, so each needs the same packing.
A `TokenBatch` is right-padded (`prmlab.batching`): ``input_ids[b] = prompt + response + pad``; response
token t of row b sits at position ``prompt_lens[b] + t`` and is predicted by the logits at the position
before it. Response tensors are ``[B, T]`` with ``T`` the longest response of the batch and
``response_mask`` 1 on real tokens (the EOS token included where one was sampled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .batching import length_chunks, right_pad


@dataclass
class TokenBatch:
    """Row b: its prompt and response, packed (see the module docstring)."""

    input_ids: torch.Tensor  # [B, L] prompt + response, right-padded with pad_id
    attention_mask: torch.Tensor  # [B, L] 1 on the row's own tokens
    prompt_lens: torch.Tensor  # [B]
    response_ids: torch.Tensor  # [B, T] right-padded with pad_id
    response_mask: torch.Tensor  # [B, T] float, 1 on response tokens
    pad_id: int  # what fills padding (never read: see `prmlab.batching`)

    @classmethod
    def pack(cls, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
             pad_id: int) -> "TokenBatch":
        """Rows ``prompt_ids[b] + response_ids[b]``, right-padded with ``pad_id``."""
        ids, attn = right_pad([list(p) + list(r) for p, r in zip(prompt_ids, response_ids)], pad_id)
        resp, mask = right_pad(response_ids, pad_id)
        return cls(ids, attn, torch.tensor([len(p) for p in prompt_ids], dtype=torch.long), resp, mask.float(), pad_id)

    @property
    def batch_size(self) -> int:
        return self.response_mask.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        """[B] prompt + response tokens of every row (its width without padding)."""
        return self.attention_mask.sum(1)

    def rows(self, index) -> "TokenBatch":
        """The rows ``index`` (positions, in that order; repeats allowed), trimmed to their own longest row."""
        index = torch.as_tensor(index, dtype=torch.long)
        t = int(self.response_mask[index].sum(1).max()) if len(index) else 0
        width = int(self.lengths[index].max()) if len(index) else 0
        return TokenBatch(self.input_ids[index, :width], self.attention_mask[index, :width], self.prompt_lens[index],
                          self.response_ids[index, :t], self.response_mask[index, :t], self.pad_id)

    @staticmethod
    def concat(parts: list["TokenBatch"]) -> "TokenBatch":
        """The rows of all ``parts`` in order (the first part's pad id fills the widened padding)."""
        if not parts:
            raise ValueError("concat needs at least one part")
        pad = parts[0].pad_id
        return TokenBatch(widen_cat([p.input_ids for p in parts], pad), widen_cat([p.attention_mask for p in parts], 0),
                          torch.cat([p.prompt_lens for p in parts]), widen_cat([p.response_ids for p in parts], pad),
                          widen_cat([p.response_mask for p in parts], 0), pad)


def widen_cat(parts: list[torch.Tensor], fill) -> torch.Tensor:
    """``[B_i, W_i]`` tensors stacked along rows, each right-filled with ``fill`` to the widest ``W``."""
    width = max(p.shape[1] for p in parts)
    return torch.cat([F.pad(p, (0, width - p.shape[1]), value=fill) for p in parts])


# ----------------------------------------------------------------------------------------------
# What a causal LM says about the response tokens.


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits[..., t, :])[ids[..., t]]``: the log-probability of each given id, with
    ``logits[:, t]`` the distribution that predicted ``ids[:, t]`` (shift model outputs first).

    Computed as ``z[id] - logsumexp(z)``, without materialising a full log-softmax copy.
    """
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension: ``logsumexp(z) - sum softmax(z) z``."""
    return torch.logsumexp(logits, -1) - (torch.softmax(logits, -1) * logits).sum(-1)


def response_logits(model, batch: TokenBatch) -> torch.Tensor:
    """``[B, T, V]`` logits that predict each response token (position ``prompt_len + t - 1``)."""
    ids, t = batch.input_ids, batch.response_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=batch.attention_mask).logits
    pos = (batch.prompt_lens[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=ids.shape[1] - 1)
    return logits.gather(1, pos.to(logits.device)[:, :, None].expand(-1, -1, logits.shape[-1])).float()


def response_logprobs(model, batch: TokenBatch, with_entropy: bool = False):
    """Log-prob of every response token of ``batch`` under ``model`` (``[B, T]``, 0 on padding), and the
    per-token entropy of its next-token distribution when asked."""
    logits = response_logits(model, batch)
    mask = batch.response_mask.to(logits.device)
    logp = token_logprobs(logits, batch.response_ids.to(logits.device)) * mask
    return (logp, entropy_from_logits(logits) * mask) if with_entropy else logp


def batched_logprobs(model, batch: TokenBatch, max_tokens: int = 2048) -> torch.Tensor:
    """`response_logprobs` of every row (``[B, T]`` on the CPU, no gradient), in micro-batches of rows of
    similar length (`prmlab.batching.length_chunks`, longest first), each trimmed to its own longest row."""
    out = torch.zeros_like(batch.response_mask)
    with torch.no_grad():
        for index in length_chunks(batch.lengths.tolist(), max_tokens=max_tokens, longest_first=True):
            sub = batch.rows(index)
            out[index, : sub.response_ids.shape[1]] = response_logprobs(model, sub).cpu()
    return out
