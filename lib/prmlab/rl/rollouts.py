"""Rollouts for RL: K sampled responses per prompt, packed for the update, graded and judged.

Responses come from the one sampling loop (`prmlab.sampling.sample`), so every row already has its token
ids, the log-probs the sampler drew them with and the token span of every step. ``collect`` adds the
outcome (the task's grader), the oracle's verdict where the task has one, and packs prompts and responses
into right-padded tensors: ``input_ids[b] = prompt + response + pad``; response token t of row b sits at
position ``prompt_lens[b] + t`` and is predicted by the logits at the position before it.

Response tensors are ``[B, T]`` with ``T`` the longest response of the batch and ``response_mask`` 1 on
real tokens (the EOS token included: ending is an action the policy is trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..batching import length_chunks, right_pad
from ..sampling import Sampler, Samples, sample
from .ppo import entropy_from_logits, token_logprobs


@dataclass
class Rollouts:
    """``k`` responses to each of ``problems``; row ``i * k + j`` is response j to problem i."""

    problems: list
    k: int
    samples: Samples
    correct: torch.Tensor  # [B] bool, the task's grade of each response
    verdicts: list | None  # [B] the oracle's Verdict of each response (None without an oracle)
    input_ids: torch.Tensor  # [B, L] prompt + response, right-padded
    attention_mask: torch.Tensor  # [B, L]
    prompt_lens: torch.Tensor  # [B]
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T] float, 1 on response tokens
    old_logprobs: torch.Tensor  # [B, T] log-prob of each token under the policy that sampled it
    ref_logprobs: torch.Tensor | None = None  # [B, T] under the reference policy (when a KL term needs it)

    @property
    def batch_size(self) -> int:
        return self.response_mask.shape[0]

    @property
    def step_spans(self) -> list[list[tuple[int, int]]]:
        return self.samples.step_spans

    @property
    def lengths(self) -> torch.Tensor:
        """[B] prompt + response tokens of every row (its width without padding)."""
        return self.attention_mask.sum(1)

    @property
    def prompts(self) -> list[str]:
        """The prompt of every row."""
        return [self.samples.prompts[r // self.k] for r in range(self.batch_size)]

    def rows(self, index) -> "Rollouts":
        """The rows ``index`` (a minibatch), tensors sliced, per-row lists kept whole for reference."""
        index = torch.as_tensor(index, dtype=torch.long)
        t = int(self.response_mask[index].sum(1).max().item()) if len(index) else 0
        width = int((self.prompt_lens[index] + self.response_mask[index].sum(1)).max().item()) if len(index) else 0
        return Rollouts(self.problems, self.k, self.samples, self.correct[index],
                        None if self.verdicts is None else [self.verdicts[i] for i in index.tolist()],
                        self.input_ids[index, :width], self.attention_mask[index, :width], self.prompt_lens[index],
                        self.response_ids[index, :t], self.response_mask[index, :t], self.old_logprobs[index, :t],
                        None if self.ref_logprobs is None else self.ref_logprobs[index, :t])


def pack(prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int):
    """Right-padded ``prompt + response`` ids with their attention mask, the prompt lengths, and the
    responses alone as ``[B, T]`` ids with their (float) mask."""
    ids, attn = right_pad([list(p) + list(r) for p, r in zip(prompt_ids, response_ids)], pad_id)
    resp, mask = right_pad(response_ids, pad_id)
    return ids, attn, torch.tensor([len(p) for p in prompt_ids]), resp, mask.float()


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_lens: torch.Tensor,
                    t: int) -> torch.Tensor:
    """``[B, T, V]`` logits that predict each response token (position ``prompt_len + t - 1``)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    pos = (prompt_lens[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=input_ids.shape[1] - 1)
    return logits.gather(1, pos.to(logits.device)[:, :, None].expand(-1, -1, logits.shape[-1])).float()


def response_logprobs(model, ro: Rollouts, with_entropy: bool = False):
    """Log-prob of every response token of ``ro`` under ``model`` (``[B, T]``, 0 on padding), and the
    per-token entropy of its next-token distribution when asked."""
    t = ro.response_ids.shape[1]
    logits = response_logits(model, ro.input_ids, ro.attention_mask, ro.prompt_lens, t)
    mask = ro.response_mask.to(logits.device)
    logp = token_logprobs(logits, ro.response_ids.to(logits.device)) * mask
    return (logp, entropy_from_logits(logits) * mask) if with_entropy else logp


def batched_logprobs(model, ro: Rollouts, max_tokens: int = 2048) -> torch.Tensor:
    """`response_logprobs` of every row (``[B, T]``, no gradient), in micro-batches of rows of similar
    length (`prmlab.batching.length_chunks`, longest first), each trimmed to its own longest row."""
    out = torch.zeros_like(ro.old_logprobs)
    with torch.no_grad():
        for index in length_chunks(ro.lengths.tolist(), max_tokens=max_tokens, longest_first=True):
            sub = ro.rows(index)
            out[index, : sub.response_ids.shape[1]] = response_logprobs(model, sub).cpu()
    return out


def collect(sampler: Sampler, task, problems: list, k: int, stream_base: int = 0, batch_size: int = 256,
            progress: bool = False) -> Rollouts:
    """Sample ``k`` responses to each problem and grade them (`from_samples`).

    Response j to problem i draws from random stream ``stream_base + i * k + j``: give every batch its
    own ``stream_base`` so that a problem seen twice is not answered with the same draws.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    prompts = [task.prompt(p) for p in problems]
    s = sample(sampler, prompts, k, batch_size, progress, streams=[stream_base + i * k for i in range(len(prompts))],
               desc="rollouts")
    return from_samples(s, problems, task, sampler)


def from_samples(s: Samples, problems: list, task, sampler: Sampler) -> Rollouts:
    """Rollouts from samples of ``problems`` (``s.n`` each): graded, judged where the task has an oracle,
    packed. The sampler's log-probs are the policy's own when it sampled at temperature 1 (see
    `prmlab.sampling.draw_tokens`); at another temperature they are recomputed with a forward pass."""
    k = s.n
    verdicts = None
    if getattr(task, "has_oracle", False):
        verdicts = [task.judge(problems[r // k], s.steps[r]) for r in range(len(s.texts))]
        correct = torch.tensor([v.answer_correct for v in verdicts], dtype=torch.bool)
    else:
        correct = torch.tensor([bool(task.grade(problems[r // k], s.texts[r])) for r in range(len(s.texts))],
                               dtype=torch.bool)
    ids, attn, plens, resp, mask = pack(s.prompt_ids, s.token_ids, sampler.pad_id)
    old = torch.zeros_like(mask)
    for r, lp in enumerate(s.logprobs):
        old[r, : len(lp)] = lp
    ro = Rollouts(list(problems), k, s, correct, verdicts, ids, attn, plens, resp, mask, old)
    if sampler.config.temperature != 1.0:  # (top-p does not change them: see draw_tokens)
        ro.old_logprobs = batched_logprobs(sampler.model, ro)
    return ro


def keep_groups(ro: Rollouts, keep, task, sampler: Sampler) -> Rollouts:
    """The rollouts of the problems where ``keep`` (bool per problem) is true."""
    idx = [i for i, x in enumerate(torch.as_tensor(keep).tolist()) if x]
    return from_samples(ro.samples.groups(idx), [ro.problems[i] for i in idx], task, sampler)


def concat(parts: list[Rollouts], task, sampler: Sampler) -> Rollouts:
    """One batch of rollouts from several (same ``k``)."""
    if len(parts) == 1:
        return parts[0]
    return from_samples(Samples.concat([p.samples for p in parts]), [q for p in parts for q in p.problems], task, sampler)
