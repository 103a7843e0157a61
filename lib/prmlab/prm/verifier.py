"""A verifier for real GSM8K solutions without a language model: a few features of a solution's text
and a logistic regression on them (the learned scorer of `prmlab.real_text`'s study, whose scores
rerank and weight votes like a PRM's aggregated score).

- :func:`solution_features` turns a solution's text into a few numbers a verifier can learn from
  (calculator annotations that check, answer shape, length, and -- when the other solutions' answers
  are given -- how many of them agree). Nothing looks at the ground truth.
- :func:`train_verifier` fits a logistic regression on those features (torch, full batch, seeded).
- :func:`feature_matrix` gives the features of every solution of a set of solved problems.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from prmlab.tasks.real import check_annotations, extract_gsm8k_answer, split_steps

# One entry per column of solution_features(); the study reports the verifier's weights by name.
FEATURE_NAMES = (
    "log_steps",  # log(1 + number of steps)
    "log_chars",  # log(1 + characters)
    "log_annotations",  # log(1 + number of calculator annotations <<expr=result>>)
    "annotation_check_frac",  # fraction of annotations whose arithmetic checks (1 when there are none)
    "any_wrong_annotation",  # 1 if some annotation does not check
    "first_wrong_rel",  # (index of the first step with a wrong annotation + 1) / steps; 0 if none
    "has_answer",  # 1 if a final answer could be extracted
    "answer_is_integer",  # GSM8K answers are almost always whole numbers
    "answer_negative",
    "answer_log_magnitude",  # log10(1 + |answer|)
    "answer_from_annotation",  # the final answer equals the result of some annotation
    "answer_restated",  # the final answer appears in the text before the last line
    "agree_frac",  # fraction of the other solutions' answers equal to this one (0 without others)
)

_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def to_fraction(s: str | None) -> Fraction | None:
    """``s`` (commas allowed) as an exact number; None when it is not one."""
    try:
        return Fraction(s.replace(",", "")) if s is not None else None
    except (ValueError, ZeroDivisionError):
        return None


def answer_value(solution_text: str) -> Fraction | None:
    """The solution's final answer as an exact number (so ``"18"`` and ``"18.0"`` vote together),
    or None when none can be extracted."""
    return to_fraction(extract_gsm8k_answer(solution_text))


def _agreement(answer: Fraction | None, other_answers) -> float:
    """Fraction of ``other_answers`` equal to ``answer`` (0 without others or without an answer)."""
    others = list(other_answers or [])
    if not others or answer is None:
        return 0.0
    return sum(a is not None and a == answer for a in others) / len(others)


def solution_features(solution_text: str, other_answers=None) -> np.ndarray:
    """Features of one solution, in the order of ``FEATURE_NAMES`` (float64, shape [F]).

    ``other_answers`` are the final answers (``answer_value``) of the other solutions to the same
    question, for the self-consistency feature ``agree_frac``; ``None`` or empty gives 0 there.
    Only the solution text and those answers are read: never the ground truth or the outcome label.
    """
    steps = split_steps(solution_text)
    per_step = [check_annotations(step) for step in steps]  # [(annotation, checks)] per step
    checks = [ok for anns in per_step for _, ok in anns]
    # as first_wrong_annotation_step: the first step with an annotation that does not check
    first_wrong = next((i for i, anns in enumerate(per_step) if not all(ok for _, ok in anns)), -1)
    answer = answer_value(solution_text)
    # numbers the annotations claim as results: was the final answer computed by the calculator?
    claimed = [_NUMBER_RE.search(a.split("=")[-1]) for anns in per_step for a, _ in anns]
    results = {to_fraction(m.group(0)) for m in claimed if m}
    body_numbers = _NUMBER_RE.findall("\n".join(steps[:-1]))
    has = answer is not None
    return np.array(
        [
            math.log1p(len(steps)),
            math.log1p(len(solution_text or "")),
            math.log1p(len(checks)),
            float(np.mean(checks)) if checks else 1.0,
            float(not all(checks)),
            (first_wrong + 1) / len(steps) if first_wrong >= 0 else 0.0,
            float(has),
            float(has and answer.denominator == 1),
            float(has and answer < 0),
            math.log10(1 + abs(float(answer))) if has else 0.0,
            float(has and answer in results),
            float(has and any(to_fraction(n) == answer for n in body_numbers)),
            _agreement(answer, other_answers),
        ],
        dtype=np.float64,
    )


# ---------------------------------------------------------------------------------------------
# The verifier: standardized logistic regression
# ---------------------------------------------------------------------------------------------


@dataclass
class Verifier:
    """A logistic regression on standardized features: ``p = sigmoid(((x - mean) / scale) @ w + b)``."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: float
    losses: list[float] = field(default_factory=list)  # training loss per epoch

    def decision_function(self, X) -> np.ndarray:
        """The logit of each row of ``X`` ([rows, F])."""
        X = np.asarray(X, dtype=np.float64)
        return ((X - self.mean) / self.scale) @ self.weight + self.bias

    def predict_proba(self, X) -> np.ndarray:
        """P(correct) for each row of ``X`` ([rows, F]) -> [rows]."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(X)))


def train_verifier(X, y, seed: int = 0, epochs: int = 200, lr: float = 0.1, l2: float = 1e-3) -> Verifier:
    """Fit a logistic regression to features ``X`` [rows, F] and 0/1 labels ``y`` [rows].

    Features are standardized with the training mean and std (constant columns are left at scale 1).
    Training is full batch Adam on the mean binary cross-entropy plus ``l2 * |w|^2 / 2`` (the bias is
    not penalized), in float64 from a seeded initialization: the same inputs and seed give the same
    verifier.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.ndim != 2 or X.shape[0] != y.size or y.size == 0:
        raise ValueError(f"X must be [rows, features] and y [rows]; got {X.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1 (or bool)")
    if epochs < 1 or lr <= 0 or l2 < 0:
        raise ValueError(f"need epochs >= 1, lr > 0, l2 >= 0; got {epochs}, {lr}, {l2}")
    mean, std = X.mean(0), X.std(0)
    scale = np.where(std > 1e-12, std, 1.0)
    xt = torch.from_numpy((X - mean) / scale)
    yt = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    w = (0.01 * torch.randn(X.shape[1], generator=gen, dtype=torch.float64)).requires_grad_()
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problem: threads only add contention (and reduction-order noise)
    try:
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + 0.5 * l2 * (w @ w)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return Verifier(mean, scale, w.detach().numpy().copy(), b.item(), losses)


def feature_matrix(solved, with_agreement: bool = False) -> np.ndarray:
    """``solution_features`` of every solution of ``solved`` (``SolvedProblem`` list): [questions,
    solutions, F]. With ``with_agreement`` each solution sees the other solutions' answers of its
    question; otherwise ``other_answers=None``. Reads only the solution texts."""
    X = np.array([[solution_features(s.solution) for s in sp.solutions] for sp in solved], dtype=np.float64)
    return add_agreement(X, solved) if with_agreement else X


def add_agreement(X: np.ndarray, solved) -> np.ndarray:
    """A copy of ``X`` [questions, solutions, F] with ``agree_frac`` computed from the other
    solutions' answers: what ``solution_features(text, others)`` gives, without redoing the rest."""
    X = X.copy()
    for q, sp in enumerate(solved):
        a = [answer_value(s.solution) for s in sp.solutions]
        X[q, :, FEATURE_NAMES.index("agree_frac")] = [_agreement(a[j], a[:j] + a[j + 1:]) for j in range(len(a))]
    return X
