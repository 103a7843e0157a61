"""Sampling a policy on a task's problems and grading what it wrote (with the oracle where there is one)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .metrics import pass_at_k_curve
from .sampling import SamplerBase, Samples, sample


@dataclass
class Evaluation:
    """``n`` samples per problem, their grades and (arithmetic task) the oracle's step verdicts."""

    problems: list
    samples: Samples
    correct: np.ndarray  # [problems, n] final answer correct
    verdicts: list[list] | None  # [problems][n] oracle Verdicts, None without an oracle

    @property
    def n(self) -> int:
        return self.samples.n

    def solutions(self, i: int) -> list[str]:
        return self.samples.of(i)

    def pass_at_k(self, ks: list[int] | None = None) -> dict[int, float]:
        ks = ks or [k for k in range(1, self.n + 1)]
        return pass_at_k_curve(self.correct, ks)

    def _all_verdicts(self):
        if self.verdicts is None:
            raise ValueError("this task has no step oracle")
        return [v for row in self.verdicts for v in row]

    def first_error_kinds(self) -> Counter:
        """How many solutions have their first error of each kind ('none' when all steps are right)."""
        return Counter(v.kinds[v.first_error] if v.first_error >= 0 else "none" for v in self._all_verdicts())

    def first_errors_by_position(self) -> dict[str, Counter]:
        """kind -> Counter(step index of the first error)."""
        out: dict[str, Counter] = {}
        for v in self._all_verdicts():
            if v.first_error >= 0:
                out.setdefault(v.kinds[v.first_error], Counter())[v.first_error] += 1
        return out

    def outcome_vs_process(self) -> dict[str, int]:
        """Right answers reached through a wrong step, and the converse: why outcome labels are noisy."""
        c = Counter()
        for v in self._all_verdicts():
            c[("right" if v.answer_correct else "wrong") + "_answer_" + ("clean" if v.first_error < 0 else "flawed") + "_process"] += 1
        return dict(c)


def evaluate(sampler: SamplerBase, task, problems: list, n: int, batch_size: int = 256, progress: bool = True) -> Evaluation:
    """Sample ``n`` solutions per problem and grade each one."""
    samples = sample(sampler, [task.prompt(p) for p in problems], n=n, batch_size=batch_size, progress=progress)
    correct = np.zeros((len(problems), n), dtype=bool)
    verdicts = [] if getattr(task, "has_oracle", False) else None
    for i, p in enumerate(problems):
        texts = samples.of(i)
        if verdicts is not None:
            row = [task.judge(p, t) for t in texts]
            verdicts.append(row)
            correct[i] = [v.answer_correct for v in row]
        else:
            correct[i] = [task.grade(p, t) for t in texts]
    return Evaluation(problems=list(problems), samples=samples, correct=correct, verdicts=verdicts)
