"""The batch of partial solutions shared by SMC, beam search and DVTS: many problems' rows in one
`Generation` of the sampler and one scoring state of the scorer.

Rows are scored as they grow; a row's score is its step rewards aggregated (`prmlab.metrics.AGGREGATIONS`:
``"min"``, ``"last"``, ``"prod"``, ``"mean"``) or ``"prefix"``: the scorer's reward of the whole prefix
read as *one* step (steps joined by newlines, `prmlab.prm.scorer.PrefixScorer`), which is how Puri et
al. query their PRM. For a causal PRM like prmlab's, whose step separator is the newline, that is the
same token sequence as the step-by-step encoding, so ``"prefix"`` gives exactly the ``"last"`` reward
-- at the price of re-encoding the whole prefix every step. The two differ only for scorers whose input
format distinguishes steps (e.g. step tags, chat templates).
"""

from __future__ import annotations

import numpy as np
import torch

from prmlab.choices import check_choice
from prmlab.metrics import AGGREGATIONS as STEP_AGGREGATIONS
from prmlab.metrics import aggregate_step_scores
from prmlab.prm.scorer import PrefixScorer, StepScorer, as_incremental
from prmlab.sampling import decode_steps, decode_texts

AGGREGATIONS = STEP_AGGREGATIONS + ("prefix",)


def fresh_stream(problem: int, k: int) -> int:
    """Random stream of the k-th duplicate row made for ``problem`` (initial rows use problem * n + j)."""
    return ((problem + 1) << 32) + k


class RowBatch:
    """Partial solutions of many problems in one `Generation` plus their scoring state.

    Rows are logical: ``problem[r]`` is the problem of row r, ``rewards[r]`` the scorer's reward of each
    of its steps. ``step()`` extends every unfinished row by one reasoning step and scores the new steps;
    ``select(index)`` keeps / reorders / duplicates rows. Only unfinished rows hold a row of the caches
    (``slot[r]``); ``select`` moves finished ones out as text, so the sampler and the scorer always work
    on whole batches of live rows and finished particles cost nothing however often they are copied.

    Any `StepScorer` works: incremental ones score a new step at the cost of its tokens, others are
    wrapped (`prmlab.prm.scorer.as_incremental`) and rescore the whole prefix every step.

    Row j of problem i starts on random stream ``problem_ids[i] * n + j`` and the k-th duplicate of an
    unfinished row of problem i gets ``fresh_stream(problem_ids[i], k)``: a problem's rows never depend
    on the other problems in the batch.
    """

    def __init__(self, sampler, scorer: StepScorer, prompts: list[str], n: int, aggregation: str = "last",
                 problem_ids=None):
        check_choice(aggregation, AGGREGATIONS, "aggregation")
        scorer = PrefixScorer(scorer) if aggregation == "prefix" else as_incremental(scorer)
        self.sampler, self.scorer, self.prompts = sampler, scorer, list(prompts)
        self.ids = np.arange(len(prompts)) if problem_ids is None else np.asarray(problem_ids, dtype=np.int64)
        self.problem = np.repeat(np.arange(len(prompts)), n)
        # One prefill per problem; its n rows are copies of that cached state.
        gen = sampler.start(prompts).select(torch.as_tensor(self.problem))
        gen.stream = torch.as_tensor(self.ids[self.problem] * n + np.tile(np.arange(n), len(prompts)))
        self.gen = gen
        self.state = scorer.select(scorer.start(prompts), self.problem)
        self.slot = np.arange(len(self.problem))  # row of gen / the scoring state; -1: finished, moved out
        self.done_text: dict[int, str] = {}  # text of the rows moved out
        self.rewards: list[list[float]] = [[] for _ in self.problem]
        self.got_step = np.zeros(len(self.problem), dtype=bool)  # rows that got a step in the last step()
        self.duplicates = np.zeros(len(prompts), dtype=np.int64)
        self.tokens = 0
        self.solutions = 0

    @property
    def size(self) -> int:
        return len(self.problem)

    @property
    def finished(self) -> np.ndarray:
        out = self.slot < 0
        out[~out] = self.gen.finished.numpy()[self.slot[~out]]
        return out

    @property
    def prm_tokens(self) -> int:
        return int(self.state.tokens_scored)

    def rows_of(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.problem == i)

    def step(self) -> np.ndarray:
        """Extend every unfinished row by one step and score it; returns the rows that were extended."""
        gen = self.gen
        alive = ~self.finished
        n_before = gen.n_generated.clone()
        k_before = [len(e) for e in gen.step_ends]
        done_before = gen.finished.clone()
        self.sampler.extend(gen, until="step")
        self.tokens += int((gen.n_generated - n_before).sum())
        self.solutions += int((gen.finished & ~done_before).sum())
        # A row that only sampled EOS after its last delimiter has no new step: nothing to score.
        new = [s for s, (e, k) in enumerate(zip(gen.step_ends, k_before)) if len(e) > k]
        spans = [gen.step_spans(s)[-1] for s in new]
        steps: list[str | None] = [None] * gen.batch_size
        # A blank step (a line with no text) is scored as it comes: `step_texts` would fold it into the
        # next step of a finished sample, but a growing row does not have that step yet.
        pieces = [gen.tokens[s, a:b].tolist() for s, (a, b) in zip(new, spans)]
        for s, text in zip(new, decode_steps(self.sampler.tokenizer, pieces, self._eos(), self.sampler.step_delimiter)):
            steps[s] = text
        rewards = self.scorer.append(self.state, steps)
        cached = np.flatnonzero(self.slot >= 0)
        self.got_step = np.zeros(self.size, dtype=bool)
        self.got_step[cached] = [steps[s] is not None for s in self.slot[cached]]
        for r in np.flatnonzero(self.got_step):
            self.rewards[r].append(float(rewards[self.slot[r]]))
        return alive

    def text(self, r: int) -> str:
        if self.slot[r] < 0:
            return self.done_text[r]
        return decode_texts(self.sampler.tokenizer, [self.gen.token_ids(int(self.slot[r]))], self._eos())[0]

    def _eos(self) -> set[int]:
        return set(self.sampler.eos_ids.tolist())

    def scores(self, aggregation: str) -> np.ndarray:
        """Aggregated reward of every row ("prefix" rewards already score the whole prefix: the last
        one counts)."""
        how = "last" if aggregation == "prefix" else aggregation
        return np.array([aggregate_step_scores(r, how) for r in self.rewards])

    def needs_select(self) -> bool:
        """Whether finished rows still occupy the caches (a ``select`` would move them out)."""
        return bool((self.slot >= 0).any() and self.gen.finished.any())

    def select(self, index) -> None:
        """Keep rows ``index`` in that order (one reorder of each cache for all problems); a repeated
        unfinished row gets a fresh random stream of its problem."""
        index = np.asarray(index, dtype=np.int64)
        done = self.finished[index]
        done_text = {j: self.text(r) for j, r in zip(np.flatnonzero(done).tolist(), index[done].tolist())}
        kept = np.flatnonzero(~done)  # new rows that stay in the caches
        cached = self.slot[index[kept]]
        slot = np.full(len(index), -1)
        slot[kept] = np.arange(len(kept))
        # a scorer that reorders tensor caches in place gets the policy's cache reordered in place too
        in_place = self.scorer.select_in_place
        if in_place:
            self.gen.select_(torch.as_tensor(cached, dtype=torch.long))
            gen = self.gen
        else:
            gen = self.gen.select(torch.as_tensor(cached, dtype=torch.long))
        repeat = np.ones(len(cached), dtype=bool)
        repeat[np.unique(cached, return_index=True)[1]] = False  # first copies keep their stream
        repeat = np.flatnonzero(repeat)
        streams = []
        for i in self.problem[index[kept[repeat]]].tolist():
            streams.append(fresh_stream(int(self.ids[i]), int(self.duplicates[i])))
            self.duplicates[i] += 1
        if len(repeat):
            gen.stream[torch.as_tensor(repeat)] = torch.tensor(streams, dtype=torch.long)
        self.gen, self.slot, self.done_text = gen, slot, done_text
        if in_place:
            self.scorer.select_(self.state, cached)
        else:
            self.state = self.scorer.select(self.state, cached)
        self.problem = self.problem[index]
        self.rewards = [list(self.rewards[r]) for r in index]
        self.got_step = self.got_step[index]
