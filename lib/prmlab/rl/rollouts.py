"""Rollouts for RL: K sampled responses per prompt, packed for the update, graded and judged.

Responses come from the one sampling loop (`prmlab.sampling.sample`), so every row already has its token
ids, the log-probs the sampler drew them with and the token span of every step. ``collect`` adds the
outcome (the task's grader), the oracle's verdict where the task has one, and packs prompts and responses
into one `prmlab.tokens.TokenBatch`. Every later view of a batch (a minibatch, the groups the accuracy
filter keeps, several batches joined) slices or joins what was computed once: nothing is judged, packed
or run through the policy again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sampling import SamplerBase, Samples, sample
from ..tokens import TokenBatch, batched_logprobs, widen_cat


@dataclass
class Rollouts:
    """``k`` responses to each of ``problems``; row ``i * k + j`` is response j to problem i. Every field
    describes the same rows: slicing (`rows`, `groups`) and joining (`concat`) keep them together."""

    problems: list
    samples: Samples  # the sampled responses (``samples.n`` = k per problem)
    correct: torch.Tensor  # [B] bool, the task's grade of each response
    verdicts: list | None  # [B] the oracle's Verdict of each response (None without an oracle)
    tokens: TokenBatch  # prompts and responses, packed
    old_logprobs: torch.Tensor  # [B, T] log-prob of each token under the policy that sampled it
    ref_logprobs: torch.Tensor | None = None  # [B, T] under the reference policy (when a KL term needs it)

    @property
    def k(self) -> int:
        return self.samples.n

    @property
    def batch_size(self) -> int:
        return self.tokens.batch_size

    @property
    def response_mask(self) -> torch.Tensor:
        return self.tokens.response_mask

    @property
    def step_spans(self) -> list[list[tuple[int, int]]]:
        return self.samples.step_spans

    @property
    def prompts(self) -> list[str]:
        """The prompt of every row."""
        return [self.samples.prompts[r // self.k] for r in range(self.batch_size)]

    def rows(self, index) -> "Rollouts":
        """The rows ``index`` (a minibatch, any rows in any order), every field sliced. The rows are no
        longer groups of k: the result has one response per problem (``k = 1``), its problems repeated."""
        index = [int(i) for i in torch.as_tensor(index, dtype=torch.long).tolist()]
        return self._select(index, self.samples.rows(index), [self.problems[r // self.k] for r in index])

    def groups(self, keep) -> "Rollouts":
        """The rollouts of the problems where ``keep`` (bool per problem) is true, all k rows of each."""
        chosen = [i for i, x in enumerate(torch.as_tensor(keep).tolist()) if x]
        index = [i * self.k + j for i in chosen for j in range(self.k)]
        return self._select(index, self.samples.groups(chosen), [self.problems[i] for i in chosen])

    def _select(self, index: list[int], samples: Samples, problems: list) -> "Rollouts":
        tokens = self.tokens.rows(index)
        t = tokens.response_ids.shape[1]
        ref = None if self.ref_logprobs is None else self.ref_logprobs[index, :t]
        return Rollouts(problems, samples, self.correct[index],
                        None if self.verdicts is None else [self.verdicts[i] for i in index], tokens,
                        self.old_logprobs[index, :t], ref)

    @staticmethod
    def concat(parts: list["Rollouts"]) -> "Rollouts":
        """One batch from several with the same ``k``, rows in order."""
        if len(parts) == 1:
            return parts[0]
        refs = [p.ref_logprobs for p in parts]
        return Rollouts([q for p in parts for q in p.problems], Samples.concat([p.samples for p in parts]),
                        torch.cat([p.correct for p in parts]),
                        None if any(p.verdicts is None for p in parts) else [v for p in parts for v in p.verdicts],
                        TokenBatch.concat([p.tokens for p in parts]), widen_cat([p.old_logprobs for p in parts], 0.0),
                        None if any(r is None for r in refs) else widen_cat(refs, 0.0))


def collect(sampler: SamplerBase, task, problems: list, k: int, stream_base: int = 0, batch_size: int = 256,
            progress: bool = False) -> Rollouts:
    """Sample ``k`` responses to each problem, grade them (the oracle's verdict where the task has one)
    and pack them.

    Response j to problem i draws from random stream ``stream_base + i * k + j``: give every batch its
    own ``stream_base`` so that a problem seen twice is not answered with the same draws. The sampler's
    log-probs are the policy's own when it sampled at temperature 1 (see `prmlab.sampling.draw_tokens`);
    at another temperature, or from a generator whose log-probs are not the trainer's (vLLM's kernels),
    they are recomputed with one forward pass (`engine_logprob_gap` compares the two).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    prompts = [task.prompt(p) for p in problems]
    s = sample(sampler, prompts, k, batch_size, progress, streams=[stream_base + i * k for i in range(len(prompts))],
               desc="rollouts")
    verdicts = None
    if getattr(task, "has_oracle", False):
        verdicts = [task.judge(problems[r // k], s.steps[r]) for r in range(len(s.texts))]
        correct = torch.tensor([v.answer_correct for v in verdicts], dtype=torch.bool)
    else:
        correct = torch.tensor([bool(task.grade(problems[r // k], s.texts[r])) for r in range(len(s.texts))],
                               dtype=torch.bool)
    tokens = TokenBatch.pack(s.prompt_ids, s.token_ids, sampler.pad_id)
    if sampler.config.temperature != 1.0 or not sampler.exact_logprobs:  # (top-p does not change them: see draw_tokens)
        old = batched_logprobs(sampler.model, tokens)
    else:
        old = torch.zeros_like(tokens.response_mask)
        for r, lp in enumerate(s.logprobs):
            old[r, : len(lp)] = lp
    return Rollouts(list(problems), s, correct, verdicts, tokens, old)


def engine_logprob_gap(ro: Rollouts) -> dict[str, float]:
    """How far the generator's log-probs of the sampled tokens lie from the trainer's (``old_logprobs``, what
    the PPO ratio uses): mean and largest absolute difference over response tokens. Meaningful where both
    are at temperature 1."""
    gaps = torch.cat([(lp - ro.old_logprobs[r, : len(lp)]).abs() for r, lp in enumerate(ro.samples.logprobs)])
    if len(gaps) == 0:
        return {}
    return {"perf/engine_logprob_gap": float(gaps.mean()), "perf/engine_logprob_gap_max": float(gaps.max())}
