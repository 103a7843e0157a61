"""A perfect process reward model: a task's step oracle behind the scorer protocol.

A step's reward is 1 while the solution is still correct after it (no wrong step so far, in the sense
of the task's ``judge``, e.g. `prmlab.tasks.arith.judge`) and 0 from the first wrong step on. ``eps``
softens that to ``1 - eps`` and ``eps`` so that rewards stay in (0, 1) (finite logits, no zero weights).
Use it in tests (a verifier that cannot be fooled) and in notebooks as the ceiling that a learned PRM
is compared against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .scorer import TextScorer, TextState

ORACLE = "oracle"  # the scorer name of the exact step oracle (a perfect PRM) in notebooks 02 and 04


class OracleScorer(TextScorer):
    """A `TextScorer` backed by the task's oracle (``task.judge`` and ``task.prompt``).

    ``problems`` maps each prompt to its problem (or is an iterable of problems, keyed by
    ``task.prompt``). ``tokenizer`` (optional) only serves the token budget; without it a character
    counts as a token, which is exact for the tiny character tokenizer. The budget is what a KV-cached
    PRM would read (``cached_budget``): each prompt once, then each new step.
    """

    cached_budget = True

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

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        return [self.rewards(p, s) for p, s in zip(prompts, steps)]

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        """Tokens a PRM would read for ``prompt`` and ``steps`` (each followed by the separator)."""
        text = "".join(s + self.separator for s in steps)
        if self.tokenizer is None:
            return len(prompt) + len(text)
        # as CachedPRMScorer encodes: the prompt with special tokens, the steps without
        n = len(self.tokenizer(prompt).input_ids) if prompt else 0
        return n + (len(self.tokenizer(text, add_special_tokens=False).input_ids) if text else 0)

    def start(self, prompts: list[str]) -> TextState:
        for p in prompts:
            self._problem(p)  # fail early on an unknown prompt
        return super().start(prompts)
