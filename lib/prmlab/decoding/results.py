"""What every decoding method returns: per-problem results, the compute it spent, and the rule that
picks one solution (hence one answer) per problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prmlab.choices import check_choice
from prmlab.decoding.smc import SMCResult
from prmlab.metrics import weighted_majority_vote

ANSWER_SELECTIONS = ("max_weight", "weighted_majority")


@dataclass
class Budget:
    """Compute spent by one decoding call (all problems together)."""

    solutions: int = 0  # solutions generated to the end (EOS or token budget), discarded ones included
    tokens: int = 0  # policy tokens sampled
    prm_tokens: int = 0  # tokens run through the scorer, prompts included
    wall_time: float = 0.0  # seconds

    @property
    def ms_per_token(self) -> float:
        """Wall time per generated token, in milliseconds."""
        return 1e3 * self.wall_time / max(self.tokens, 1)


@dataclass
class ProblemResult:
    """What a decoding method returns for one problem."""

    prompt: str
    answer: Any  # answer_fn of the chosen solution
    text: str  # the chosen solution
    texts: list[str]  # every final solution (particles, beams, samples)
    answers: list  # answer_fn of each
    weights: np.ndarray  # voting weight of each: SMC normalized final weights; others aggregated PRM score
    step_rewards: list[np.ndarray]  # per solution, the scorer's reward of each of its steps
    finished: np.ndarray  # bool per solution: ended by EOS or the token budget (False: by max_steps)
    chosen: int  # index of the chosen solution in ``texts``
    smc: SMCResult | None = None  # SMC only: the genealogy (ancestors, potentials, weights, ESS per step)


@dataclass
class DecodeResult:
    """Per-problem results of one method and the budget it spent."""

    method: str
    problems: list[ProblemResult]
    budget: Budget
    params: dict = field(default_factory=dict)

    @property
    def answers(self) -> list:
        return [p.answer for p in self.problems]

    def accuracy(self, references: list) -> float:
        """Fraction of problems whose chosen answer equals the reference answer."""
        if len(references) != len(self.problems):
            raise ValueError(f"{len(references)} references for {len(self.problems)} problems")
        return float(np.mean([a is not None and a == r for a, r in zip(self.answers, references)]))


def choose(answers: list, weights: np.ndarray, how: str) -> int:
    """Index of the chosen solution: the largest weight (``"max_weight"``, first on ties), or the
    largest-weight solution among those with the weighted-majority answer (``"weighted_majority"``)."""
    check_choice(how, ANSWER_SELECTIONS, "answer selection")
    weights = np.asarray(weights, dtype=float)
    if how == "weighted_majority":
        voted = weighted_majority_vote([answers], [weights])[0]
        if voted is not None:
            return max((i for i, a in enumerate(answers) if a == voted), key=lambda i: weights[i])
    return int(np.argmax(weights))


def problem_result(prompt, texts, step_rewards, weights, finished, answer_fn, select_answer, smc=None) -> ProblemResult:
    """One problem's result: ``answer_fn`` (a solution's text -> its answer) applied to every solution
    and one of them chosen by ``select_answer``."""
    answers = [answer_fn(t) for t in texts]
    weights = np.asarray(weights, dtype=float)
    best = choose(answers, weights, select_answer)
    rewards = [np.asarray(r, dtype=float) for r in step_rewards]
    return ProblemResult(prompt, answers[best], texts[best], list(texts), answers, weights, rewards,
                         np.asarray(finished, dtype=bool), best, smc)
