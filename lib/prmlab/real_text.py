"""Best-of-N and (weighted) majority vote on real GSM8K model solutions, with a simple verifier.

``shared/data/gsm8k/example_model_solutions.jsonl`` holds, for each of the 1,319 GSM8K test
questions, four real solutions (one from each of ``GSM8K_MODELS``) with outcome labels. This module
runs the same selection code as the embedded task on them:

- :func:`solution_features` turns a solution's text into a few numbers a verifier can learn from
  without a language model (calculator annotations that check, answer shape, length, and -- when the
  other solutions' answers are given -- how many of them agree). Nothing looks at the ground truth.
- :func:`train_verifier` fits a logistic regression on those features (torch, full batch, seeded).
- :func:`gsm8k_real_text_study` trains it on part of the questions and, on the rest, compares random
  choice, verifier best-of-N, majority vote, verifier-weighted majority and oracle pass@N for
  N = 1, 2, 4; it also checks every calculator annotation to find real arithmetic errors.
- :func:`real_text_figure` plots accuracy against N for each method.

Each question has exactly one solution per model, so "the first n solutions" would confound n with
the model. Every accuracy at n < 4 is therefore the exact expectation over uniformly random
n-subsets of the 4 solutions (ties broken at random), never a prefix.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import plotly.graph_objects as go
import torch

from prmlab.metrics import auroc, best_of_n_accuracy, majority_accuracy
from prmlab.tasks.real import (
    GSM8K_MODELS,
    check_annotations,
    eval_arithmetic,
    extract_gsm8k_answer,
    load_gsm8k_model_solutions,
    split_steps,
)

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
METHODS = ("random", "best_of_n_verifier", "majority", "weighted_majority_verifier", "oracle")

_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _to_fraction(s: str | None) -> Fraction | None:
    try:
        return Fraction(s.replace(",", "")) if s is not None else None
    except (ValueError, ZeroDivisionError):
        return None


def _key(v: Fraction | None) -> str | None:
    return None if v is None else str(v)


def answer_value(solution_text: str) -> Fraction | None:
    """The solution's final answer as an exact number (so ``"18"`` and ``"18.0"`` vote together),
    or None when none can be extracted."""
    return _to_fraction(extract_gsm8k_answer(solution_text))


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
    results = {_to_fraction(m.group(0)) for m in claimed if m}
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
            float(has and any(_to_fraction(n) == answer for n in body_numbers)),
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


# ---------------------------------------------------------------------------------------------
# Selection accuracies, exact over random subsets
# ---------------------------------------------------------------------------------------------


def exact_majority_accuracy(answers, weights, reference, ns) -> dict[int, float]:
    """(Weighted) majority-vote accuracy per n, exactly averaged over uniformly random n-subsets.

    Averages ``majority_accuracy(subsets="first")`` over all N! orderings of each problem's N
    samples: every n-subset is a prefix equally often, and vote ties go to the answer seen first,
    i.e. are broken at random. Meant for small N (here 4: 24 orderings)."""
    N = len(answers[0]) if answers else 0
    w = [[1.0] * N for _ in answers] if weights is None else [list(map(float, r)) for r in weights]
    perms = list(itertools.permutations(range(N)))
    total = dict.fromkeys(ns, 0.0)
    for p in perms:
        acc = majority_accuracy(
            [[a[j] for j in p] for a in answers], [[r[j] for j in p] for r in w], reference, ns=ns, subsets="first"
        )
        for n in ns:
            total[n] += acc[n] / len(perms)
    return total


def _selection_accuracies(scores, correct, answers, reference, ns) -> dict[str, dict[int, float]]:
    """Accuracy per method and n on one set of questions ([questions, N] arrays)."""
    return {
        # constant scores: ties broken at random, i.e. a random sample
        "random": best_of_n_accuracy(np.zeros(correct.shape), correct, ns=ns),
        "best_of_n_verifier": best_of_n_accuracy(scores, correct, ns=ns),
        "majority": exact_majority_accuracy(answers, None, reference, ns),
        "weighted_majority_verifier": exact_majority_accuracy(answers, scores, reference, ns),
        # scoring by correctness picks a correct sample whenever there is one: pass@n
        "oracle": best_of_n_accuracy(correct.astype(float), correct, ns=ns),
    }


# ---------------------------------------------------------------------------------------------
# Calculator annotations: real arithmetic errors
# ---------------------------------------------------------------------------------------------


def _format_value(v: Fraction | None) -> str | None:
    if v is None:
        return None
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.6g}"


def _first_wrong_annotation(step: str) -> dict:
    """The first annotation of ``step`` that does not check: its text, the claimed result, the
    correct value of its expression, and whether the expression is plain arithmetic at all."""
    annotation = next(a for a, ok in check_annotations(step) if not ok)
    parts = annotation.split("=")
    claimed = eval_arithmetic(parts[-1]) if len(parts) >= 2 else None
    values = [eval_arithmetic(p) for p in parts[:-1]]
    # in a chain "a=b=c", report the first link that is not plain arithmetic or misses the result
    value = next((v for v in values if v is None or v != claimed), values[0] if values else None)
    return {
        "annotation": annotation,
        "claimed": parts[-1].strip() if len(parts) >= 2 else None,
        "correct_value": _format_value(value),
        "kind": "arithmetic" if value is not None and claimed is not None else "not_plain_arithmetic",
    }


def annotation_study(solved, n_examples: int = 6) -> dict:
    """Check every calculator annotation of every model solution (``first_wrong_annotation_step``).

    Returns counts of solutions with at least one wrong annotation (split into real arithmetic
    mistakes and annotations that are not plain arithmetic, e.g. ``x+56=86``), the histogram of the
    first wrong step index, the outcome accuracy with and without a wrong annotation, counts per
    model, and the first ``n_examples`` arithmetic mistakes (question id, model, step, annotation,
    claimed result, correct value, outcome)."""
    n_sol = n_ann = n_ann_wrong = n_no_ann = 0
    hist: dict[int, int] = {}
    kinds = {"arithmetic": 0, "not_plain_arithmetic": 0}
    by_model = dict.fromkeys(GSM8K_MODELS, 0)
    outcome = {True: [], False: []}  # has a wrong annotation -> outcome labels
    rel = []
    examples = []
    for sp in solved:
        for s in sp.solutions:
            steps = split_steps(s.solution)
            per_step = [[ok for _, ok in check_annotations(step)] for step in steps]
            checks = [ok for oks in per_step for ok in oks]
            n_sol += 1
            n_ann += len(checks)
            n_ann_wrong += checks.count(False)
            n_no_ann += not checks
            i = next((k for k, oks in enumerate(per_step) if not all(oks)), -1)  # first_wrong_annotation_step
            outcome[i >= 0].append(s.is_correct)
            if i < 0:
                continue
            hist[i] = hist.get(i, 0) + 1
            rel.append(i / max(len(steps) - 1, 1))  # 0 = first step, 1 = last step
            by_model[s.model] = by_model.get(s.model, 0) + 1
            wrong = _first_wrong_annotation(steps[i])
            kinds[wrong["kind"]] += 1
            if wrong["kind"] == "arithmetic" and len(examples) < n_examples:
                examples.append({"question_id": sp.problem.id, "model": s.model, "step_index": i,
                                 "step": steps[i], **wrong, "is_correct": s.is_correct})
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {
        "n_solutions": n_sol,
        "n_annotations": n_ann,
        "n_annotations_wrong": n_ann_wrong,
        "n_solutions_without_annotations": n_no_ann,
        "n_solutions_with_wrong": len(outcome[True]),
        "n_solutions_with_wrong_by_kind": kinds,  # kind of the first wrong annotation
        "n_solutions_with_wrong_by_model": by_model,
        "first_wrong_step_hist": dict(sorted(hist.items())),
        "first_wrong_step_rel_mean": mean(rel),
        "accuracy_with_wrong": mean(outcome[True]),
        "accuracy_without_wrong": mean(outcome[False]),
        "examples": examples,
    }


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def within_question_pair_accuracy(scores, correct) -> float:
    """Over (correct, wrong) pairs of solutions to the same question, the fraction the scores order
    right (ties count 1/2): the within-question AUROC, which is what best-of-N depends on. A pooled
    AUROC also rewards telling easy questions from hard ones. NaN when there is no such pair."""
    s, c = np.asarray(scores, dtype=float), np.asarray(correct, dtype=bool)
    pos, neg = c[:, :, None], ~c[:, None, :]  # [q, i, j]: i correct and j wrong
    diff = s[:, :, None] - s[:, None, :]
    pairs = pos & neg
    n = pairs.sum()
    return float(((diff > 0) + 0.5 * (diff == 0))[pairs].sum() / n) if n else float("nan")


def _verifier_report(ver: Verifier, X, correct, train, test) -> dict:
    """AUROC on train/test solutions, within-question pair accuracy, which model's solution the
    verifier picks among the 4 (ties split), the final loss and the weights by feature name."""
    scores = ver.predict_proba(X.reshape(-1, X.shape[-1])).reshape(correct.shape)
    top = scores[test] == scores[test].max(1, keepdims=True)
    picks = (top / top.sum(1, keepdims=True)).mean(0)
    return {
        "auroc_train": auroc(scores[train], correct[train]),
        "auroc_test": auroc(scores[test], correct[test]),
        "within_question_pair_accuracy_test": within_question_pair_accuracy(scores[test], correct[test]),
        "best_of_4_pick_share_test": dict(zip(GSM8K_MODELS, map(float, picks))),
        "final_loss": ver.losses[-1],
        "weights": dict(zip(FEATURE_NAMES, map(float, ver.weight))),  # on standardized features
    }


def feature_matrix(solved, with_agreement: bool = False) -> np.ndarray:
    """``solution_features`` of every solution of ``solved`` (``SolvedProblem`` list): [questions,
    solutions, F]. With ``with_agreement`` each solution sees the other solutions' answers of its
    question; otherwise ``other_answers=None``. Reads only the solution texts."""
    X = np.array([[solution_features(s.solution) for s in sp.solutions] for sp in solved], dtype=np.float64)
    return _with_agreement(X, solved) if with_agreement else X


def _with_agreement(X: np.ndarray, solved) -> np.ndarray:
    """A copy of ``X`` [questions, solutions, F] with ``agree_frac`` computed from the other
    solutions' answers: what ``solution_features(text, others)`` gives, without redoing the rest."""
    X = X.copy()
    for q, sp in enumerate(solved):
        a = [answer_value(s.solution) for s in sp.solutions]
        X[q, :, FEATURE_NAMES.index("agree_frac")] = [_agreement(a[j], a[:j] + a[j + 1:]) for j in range(len(a))]
    return X


def gsm8k_real_text_study(
    n_train_questions: int = 660,
    seed: int = 0,
    limit: int | None = None,
    epochs: int = 200,
    lr: float = 0.1,
    l2: float = 1e-3,
    n_examples: int = 6,
) -> dict:
    """Verifier-based selection vs voting on the real GSM8K model solutions.

    Questions (the first ``limit`` of the file, all if None) are shuffled with ``seed``; the first
    ``n_train_questions`` train the verifier on their 4 solutions each, the rest are the test set.
    Two verifiers are trained:

    - ``verifier``: features of the solution alone (``other_answers=None``). Its scores drive
      best-of-N and weighted majority at every N, fairly: it sees only the n sampled solutions.
    - ``verifier_with_agreement``: also the self-consistency feature computed from the other 3
      answers. It sees all 4 solutions, so it is reported only at N = 4 (and by AUROC).

    Returns plain python types: ``ns``; ``accuracy[method][n]`` for ``METHODS`` on the test
    questions (exact expectation over random n-subsets); both verifiers' train/test AUROC, final
    loss and weights; per-model accuracy on the test questions and on all; and ``annotations``
    (:func:`annotation_study` on all questions: it uses no training).
    """
    solved = load_gsm8k_model_solutions(limit)
    P = len(solved)
    if not 1 <= n_train_questions < P:
        raise ValueError(f"n_train_questions must be in [1, {P - 1}] ({P} questions loaded); got {n_train_questions}")
    if any(len(sp.solutions) != len(GSM8K_MODELS) for sp in solved):
        raise ValueError(f"every question needs one solution per model {GSM8K_MODELS}")
    N = len(GSM8K_MODELS)
    ns = [1, 2, 4]

    # votes on canonical strings of the exact value ("18.0" and "18" both give "18"): fast to hash
    answers = [[_key(answer_value(s.solution)) for s in sp.solutions] for sp in solved]
    correct = np.array([[s.is_correct for s in sp.solutions] for sp in solved], dtype=bool)
    reference = [_key(_to_fraction(sp.problem.answer)) for sp in solved]
    solo = feature_matrix(solved)
    with_agree = _with_agreement(solo, solved)

    order = np.random.default_rng(seed).permutation(P)
    train, test = np.sort(order[:n_train_questions]), np.sort(order[n_train_questions:])
    reports, test_scores = {}, {}
    for name, X in (("verifier", solo), ("verifier_with_agreement", with_agree)):
        # train on the train questions' solutions, flattened to [questions * 4, F]
        ver = train_verifier(X[train].reshape(-1, X.shape[-1]), correct[train].ravel(), seed=seed,
                             epochs=epochs, lr=lr, l2=l2)
        reports[name] = _verifier_report(ver, X, correct, train, test)
        test_scores[name] = ver.predict_proba(X[test].reshape(-1, X.shape[-1])).reshape(len(test), N)

    c_test, a_test, r_test = correct[test], [answers[i] for i in test], [reference[i] for i in test]
    accuracy = _selection_accuracies(test_scores["verifier"], c_test, a_test, r_test, ns)
    sc = test_scores["verifier_with_agreement"]
    reports["verifier_with_agreement"]["best_of_4"] = best_of_n_accuracy(sc, c_test, ns=[N])[N]
    reports["verifier_with_agreement"]["weighted_majority_4"] = exact_majority_accuracy(a_test, sc, r_test, [N])[N]

    per_model = lambda rows: {m: float(correct[rows, j].mean()) for j, m in enumerate(GSM8K_MODELS)}  # noqa: E731
    return {
        "seed": seed,
        "n_questions": P,
        "n_train_questions": int(len(train)),
        "n_test_questions": int(len(test)),
        "n_solutions_without_answer": sum(a is None for row in answers for a in row),
        "ns": ns,
        "accuracy": accuracy,
        **reports,
        "per_model_accuracy": {"test": per_model(test), "all": per_model(np.arange(P))},
        "annotations": annotation_study(solved, n_examples=n_examples),
    }


def study_metrics(study: dict) -> dict[str, float]:
    """The study's headline numbers as flat floats under ``real/`` (names MLflow accepts: accuracy of
    a method at N is ``real/<method>/n<N>``)."""
    out = {f"real/{m}/n{n}": v for m, acc in study["accuracy"].items() for n, v in acc.items()}
    for name in ("verifier", "verifier_with_agreement"):
        out[f"real/{name}_auroc"] = study[name]["auroc_test"]
    out["real/verifier_with_agreement_best_of_4"] = study["verifier_with_agreement"]["best_of_4"]
    out["real/verifier_with_agreement_weighted_majority_4"] = study["verifier_with_agreement"]["weighted_majority_4"]
    ann = study["annotations"]
    for key in ("n_solutions_with_wrong", "accuracy_with_wrong", "accuracy_without_wrong"):
        out[f"real/annotations/{key}"] = float(ann[key])
    return out


_LABELS = {
    "random": "random choice",
    "best_of_n_verifier": "best-of-N (verifier)",
    "majority": "majority vote",
    "weighted_majority_verifier": "weighted majority (verifier)",
    "oracle": "oracle pass@N",
}


def real_text_figure(study: dict, title: str = "GSM8K real solutions: accuracy vs N (test questions)") -> go.Figure:
    """Accuracy against N for each selection method of :func:`gsm8k_real_text_study`."""
    fig = go.Figure()
    for method, acc in study["accuracy"].items():
        ns = sorted(acc)
        dash = "dot" if method in ("random", "oracle") else None
        fig.add_scatter(x=ns, y=[acc[n] for n in ns], mode="lines+markers", name=_LABELS.get(method, method),
                        line=dict(dash=dash))
    fig.update_layout(title=title, xaxis_title="N (solutions per question)", yaxis_title="accuracy",
                      xaxis=dict(type="log", tickvals=study["ns"], ticktext=[str(n) for n in study["ns"]]),
                      template="plotly_white")
    return fig
