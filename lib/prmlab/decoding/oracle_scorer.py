"""A perfect process reward model for the arithmetic task: the step oracle behind the StepScorer interface.

A step's reward is 1 when the solution is still correct after it (no wrong step so far, in the sense of
`prmlab.tasks.arith.judge`) and 0 from the first wrong step on. ``eps`` softens that to ``1 - eps`` and
``eps`` so that rewards stay in (0, 1) (finite logits, no zero weights). Use it in tests (a verifier
that cannot be fooled) and in notebooks as the ceiling that a learned PRM is compared against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class OracleState:
    """Incremental scoring state: one row per partial solution."""

    prompts: list[str]
    steps: list[list[str]]
    rewards: list[list[float]]
    tokens_scored: int = 0  # same budget measure as a real PRM's: tokens "read" so far

    @property
    def batch_size(self) -> int:
        return len(self.prompts)


class OracleScorer:
    """StepScorer (``score``, ``start``, ``append``, ``select``) backed by the arithmetic oracle.

    ``problems`` maps each prompt to its problem (or is an iterable of problems, keyed by
    ``task.prompt``). ``tokenizer`` (optional) only serves the token budget; without it a character
    counts as a token, which is exact for the tiny character tokenizer.
    """

    def __init__(self, task, problems: Mapping | Iterable, eps: float = 0.0, tokenizer=None, separator: str = "\n"):
        if not 0.0 <= eps < 0.5:
            raise ValueError(f"eps must be in [0, 0.5), got {eps}")
        self.task = task
        self.problems = dict(problems) if isinstance(problems, Mapping) else {task.prompt(p): p for p in problems}
        self.eps = float(eps)
        self.tokenizer = tokenizer
        self.separator = separator

    def _problem(self, prompt: str):
        try:
            return self.problems[prompt]
        except KeyError:
            raise KeyError(f"the oracle knows no problem with prompt {prompt!r}") from None

    def rewards(self, prompt: str, steps: list[str]) -> np.ndarray:
        """Reward of every step of one solution: 1 - eps while the prefix is correct, then eps."""
        # The oracle judges line by line and online (a line's verdict depends only on the lines before
        # it), so one call labels every prefix. A step of several lines (a whole prefix scored as one
        # step) is correct if all its lines are; an empty step leaves the prefix unchanged.
        lines = [[line for line in step.split("\n") if line.strip()] for step in steps]
        verdicts = iter(self.task.judge(self._problem(prompt), [x for step in lines for x in step]).steps)
        out, ok = np.empty(len(steps)), True
        for i, step in enumerate(lines):
            ok = all([next(verdicts).ok for _ in step]) and ok
            out[i] = 1.0 - self.eps if ok else self.eps
        return out

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        """Tokens a PRM would read for ``prompt`` and ``steps`` (each followed by the separator)."""
        text = "".join(s + self.separator for s in steps)
        if self.tokenizer is None:
            return len(prompt) + len(text)
        # as IncrementalScorer encodes: the prompt with special tokens, the steps without
        n = len(self.tokenizer(prompt).input_ids) if prompt else 0
        return n + (len(self.tokenizer(text, add_special_tokens=False).input_ids) if text else 0)

    # -- the StepScorer interface -----------------------------------------------------------------

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        return [self.rewards(p, s) for p, s in zip(prompts, steps)]

    def start(self, prompts: list[str]) -> OracleState:
        for p in prompts:
            self._problem(p)  # fail early on an unknown prompt
        return OracleState(list(prompts), [[] for _ in prompts], [[] for _ in prompts],
                           sum(self.count_tokens(p, []) for p in prompts))

    def append(self, state: OracleState, steps: list[str | None]) -> np.ndarray:
        """Reward of one more step per row (NaN where the entry is None: row unchanged)."""
        out = np.full(len(steps), np.nan)
        for i, step in enumerate(steps):
            if step is None:
                continue
            state.steps[i].append(step)
            out[i] = self.rewards(state.prompts[i], state.steps[i])[-1]
            state.rewards[i].append(float(out[i]))
            state.tokens_scored += self.count_tokens("", [step])
        return out

    def select(self, state: OracleState, index) -> OracleState:
        index = [int(i) for i in index]
        return OracleState([state.prompts[i] for i in index], [list(state.steps[i]) for i in index],
                           [list(state.rewards[i]) for i in index], state.tokens_scored)
