"""Step scorers: the one interface through which evaluation, decoding and RL read a process reward.

A step scorer gives every reasoning step of a solution a reward in [0, 1] (how likely the solution is
still on track after that step). Two protocols say what a scorer is:

``StepScorer`` (batch: reranking, evaluation, RL rewards)
    ``score(prompts, steps) -> list of arrays``  the reward of every step of every solution
    ``count_tokens(prompt, steps) -> int``       tokens one scoring of that solution reads (budgets)

``IncrementalScorer`` (a StepScorer that also follows partial solutions step by step: SMC, beam search)
    ``start(prompts) -> state``                  one row per prompt, no steps yet
    ``append(state, steps) -> array``            row i gets ``steps[i]`` (None: row i unchanged); returns
                                                 each new step's reward (NaN where None), equal to what
                                                 ``score`` gives that step after the row's earlier steps
    ``select(state, index) -> state``            a new state whose row j is row ``index[j]`` (rows may
                                                 repeat or be dropped; the old state stays valid)
    ``select_(state, index)``                    the same rows, in place
    ``select_in_place``                          True when ``select_`` moves cached tensors within their
                                                 buffers (decoding then reorders the policy's cache in
                                                 place too); False for text states
    ``state.batch_size``, ``state.tokens_scored``  rows, and tokens read so far (a budget measure)

**Writing a new scorer** (e.g. PRIME's implicit PRM: a causal LM whose step reward is ``beta`` times
the summed log-ratio to a reference model over the step's tokens): subclass `TextScorer` and write
``score`` and ``count_tokens``; nothing else. The incremental methods then come from `TextScorer`, which
keeps each row as text and rescores the row's whole prefix with ``score`` for every appended step
(exact; each step costs the whole prefix). A scorer that can do better implements the incremental
methods on cached tensors itself, as `prmlab.prm.model.CachedPRMScorer` does with the PRM's KV cache.

Decoding accepts any ``StepScorer``: `as_incremental` passes incremental ones through and wraps the
others in `RescoringScorer`. `PrefixScorer` reads every prefix as one step (Puri et al.'s query).
`score_samples` scores n solutions per problem (a pool, an evaluation) in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StepScorer(Protocol):
    """Rewards of whole solutions, one per step (see the module docstring)."""

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]: ...

    def count_tokens(self, prompt: str, steps: list[str]) -> int: ...


class ScoringState(Protocol):
    """What decoding reads from any incremental scoring state."""

    @property
    def batch_size(self) -> int: ...

    @property
    def tokens_scored(self) -> int: ...


@runtime_checkable
class IncrementalScorer(StepScorer, Protocol):
    """A `StepScorer` that also scores partial solutions one step at a time (see the module docstring)."""

    select_in_place: bool

    def start(self, prompts: list[str]) -> ScoringState: ...

    def append(self, state, steps: list[str | None]) -> np.ndarray: ...

    def select(self, state, index) -> ScoringState: ...

    def select_(self, state, index) -> None: ...


StepScores = list[list[np.ndarray]]  # [problem][solution] -> the reward of each step


def score_samples(scorer: StepScorer, prompts: list[str], solutions: list[list[list[str]]]) -> StepScores:
    """The reward of every step of every solution to each prompt (``solutions[i]``: the solutions to
    ``prompts[i]``, each its list of steps), in one ``scorer.score`` call over all of them."""
    flat = iter(scorer.score([p for p, sols in zip(prompts, solutions) for _ in sols],
                             [steps for sols in solutions for steps in sols]))
    return [[next(flat) for _ in sols] for sols in solutions]


def as_incremental(scorer: StepScorer) -> IncrementalScorer:
    """``scorer`` itself when it is incremental, else `RescoringScorer` around it."""
    return scorer if isinstance(scorer, IncrementalScorer) else RescoringScorer(scorer)


def _indices(index) -> list[int]:
    return [int(i) for i in np.asarray(index).reshape(-1)]


@dataclass
class TextState:
    """Rows of partial solutions kept as text: the incremental state of every text-based scorer.

    ``reads`` lists every (prompt, steps) the scorer read for this state; the states `select` derives
    from it share the list, so it holds the work of one decoding call. It is counted in tokens only when
    ``tokens_scored`` is asked for: re-encoding text is bookkeeping, not part of the scoring being timed.
    """

    prompts: list[str]
    steps: list[list[str]]
    count_tokens: Callable[[str, list[str]], int]  # the scorer's
    reads: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return len(self.prompts)

    @property
    def tokens_scored(self) -> int:
        return sum(self.count_tokens(p, list(s)) for p, s in self.reads)


class TextScorer(IncrementalScorer):
    """Base class of text-based scorers: write ``score`` and ``count_tokens``; the incremental methods
    keep rows as text (`TextState`) and rescore each extended row's whole prefix.

    ``cached_budget`` (class attribute): charge the budget as a KV-cached model would read the text (each
    prompt once at ``start``, then only each appended step) instead of the whole prefix per step; for
    scorers that read nothing themselves (the oracle) but stand in for a cached PRM.
    """

    select_in_place = False
    cached_budget = False

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        raise NotImplementedError

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        raise NotImplementedError

    def score_last(self, prompts: list[str], steps: list[list[str]]) -> np.ndarray:
        """Reward of the last step of every solution (each has at least one step)."""
        return np.array([r[-1] for r in self.score(prompts, steps)], dtype=np.float64)

    def start(self, prompts: list[str]) -> TextState:
        state = TextState(list(prompts), [[] for _ in prompts], self.count_tokens)
        if self.cached_budget:
            state.reads += [(p, ()) for p in state.prompts]
        return state

    def append(self, state: TextState, steps: list[str | None]) -> np.ndarray:
        out = np.full(len(steps), np.nan)
        rows = [i for i, s in enumerate(steps) if s is not None]
        if not rows:
            return out
        for i in rows:
            state.steps[i].append(steps[i])
        prompts, prefixes = [state.prompts[i] for i in rows], [state.steps[i] for i in rows]
        out[rows] = self.score_last(prompts, prefixes)
        if self.cached_budget:
            state.reads += [("", (steps[i],)) for i in rows]
        else:
            state.reads += [(p, tuple(s)) for p, s in zip(prompts, prefixes)]
        return out

    def select(self, state: TextState, index) -> TextState:
        index = _indices(index)
        return TextState([state.prompts[i] for i in index], [list(state.steps[i]) for i in index],
                         state.count_tokens, state.reads)

    def select_(self, state: TextState, index) -> None:
        picked = self.select(state, index)
        state.prompts, state.steps = picked.prompts, picked.steps


class RescoringScorer(TextScorer):
    """The incremental protocol on top of any batch scorer: every appended step rescores its row's
    whole solution with the wrapped scorer (exact; costs the full prefix every step)."""

    def __init__(self, scorer: StepScorer):
        self.scorer = scorer

    def score(self, prompts, steps):
        return self.scorer.score(prompts, steps)

    def count_tokens(self, prompt, steps):
        return self.scorer.count_tokens(prompt, steps)


class PrefixScorer(TextScorer):
    """Scores step k by the wrapped scorer's reward of steps 1..k joined by ``delimiter`` and read as
    *one* step: how Puri et al. query their PRM. For a causal PRM whose step separator is the delimiter
    (prmlab's) that is the same token sequence, hence the same reward, as step-by-step scoring.
    ``count_tokens`` is the cost of reading one whole prefix (what an appended step costs)."""

    def __init__(self, scorer: StepScorer, delimiter: str = "\n"):
        self.scorer = scorer
        self.delimiter = delimiter

    def _joined(self, steps: list[str]) -> list[str]:
        return [self.delimiter.join(steps)] if steps else []

    def score(self, prompts, steps):
        flat_prompts = [p for p, s in zip(prompts, steps) for _ in s]
        prefixes = [self._joined(s[: k + 1]) for s in steps for k in range(len(s))]
        flat = iter(self.scorer.score(flat_prompts, prefixes) if prefixes else [])
        return [np.array([next(flat)[0] for _ in s], dtype=np.float64) for s in steps]

    def score_last(self, prompts, steps):
        return np.array([r[-1] for r in self.scorer.score(prompts, [self._joined(s) for s in steps])],
                        dtype=np.float64)

    def count_tokens(self, prompt, steps):
        return self.scorer.count_tokens(prompt, self._joined(steps))
