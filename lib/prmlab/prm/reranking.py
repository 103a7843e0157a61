"""Evaluating step scorers on sampled solutions: step-level quality, the ProcessBench protocol and
best-of-N reranking against votes and the oracle ceiling.

Everything here works on an ``evaluation.Evaluation`` (n samples per problem, graded, with oracle
verdicts when the task has an oracle) plus the per-step rewards a scorer gave each sample.
"""

from __future__ import annotations

import numpy as np

from ..metrics import (
    aggregate_step_scores,
    auroc,
    best_of_n_accuracy,
    best_threshold,
    first_error_from_rewards,
    majority_accuracy,
    pass_at_k_curve,
    processbench_scores,
    step_accuracy,
)

StepScores = list[list[np.ndarray]]  # [problem][sample] -> rewards of each step


def score_evaluation(scorer, task, ev, batch_size: int = 64) -> StepScores:
    """Rewards of every step of every sample of ``ev`` by ``scorer`` (one forward per solution)."""
    prompts, steps = [], []
    for i, p in enumerate(ev.problems):
        for text in ev.solutions(i):
            prompts.append(task.prompt(p))
            steps.append(task.split_steps(text))
    flat = scorer.score(prompts, steps, batch_size=batch_size) if _takes_batch(scorer) else scorer.score(prompts, steps)
    n = ev.n
    return [flat[i * n : (i + 1) * n] for i in range(len(ev.problems))]


def _takes_batch(scorer) -> bool:
    import inspect

    try:
        return "batch_size" in inspect.signature(scorer.score).parameters
    except (TypeError, ValueError):
        return False


def aggregate(scores: StepScores, how: str) -> np.ndarray:
    """[problems, n] solution scores from step rewards (``how`` in min, last, prod, mean)."""
    return np.array([[aggregate_step_scores(s, how) for s in row] for row in scores])


def step_level(scores: StepScores, ev) -> dict:
    """AUROC and accuracy (threshold 0.5) of step rewards against the oracle's process labels."""
    rewards, labels = [], []
    for row_s, row_v in zip(scores, ev.verdicts):
        for s, v in zip(row_s, row_v):
            lab = v.step_labels
            k = min(len(s), len(lab))
            rewards.extend(s[:k])
            labels.extend(lab[:k])
    return {"step_auroc": auroc(rewards, labels), "step_accuracy": step_accuracy(rewards, labels), "steps": len(labels)}


def processbench(scores: StepScores, ev, dev_fraction: float = 0.5) -> dict:
    """ProcessBench protocol: the threshold is chosen on the first ``dev_fraction`` of the problems
    (maximising F1 there) and F1 is reported on the rest."""
    flat_s = [s for row in scores for s in row]
    flat_fe = [v.first_error for row in ev.verdicts for v in row]
    cut = int(round(dev_fraction * len(scores))) * ev.n
    dev = flat_fe[:cut]
    if not any(fe == -1 for fe in dev) or all(fe == -1 for fe in dev):
        # F1 needs both correct and erroneous solutions to choose a threshold (tiny smoke runs may lack one)
        nan = float("nan")
        return {"threshold": nan, "dev_f1": nan, "error_acc": nan, "correct_acc": nan, "f1": nan}
    threshold, dev_f1 = best_threshold(flat_s[:cut], dev)
    pred = first_error_from_rewards(flat_s[cut:], threshold)
    return {"threshold": threshold, "dev_f1": dev_f1, **processbench_scores(pred, flat_fe[cut:])}


def answers_of(task, ev) -> list[list]:
    """The final answer each sample states (None when it states none), for voting."""
    return [[task.answer(p, t) for t in ev.solutions(i)] for i, p in enumerate(ev.problems)]


def reranking_curves(task, ev, scores: dict[str, StepScores], aggregations: dict[str, tuple[str, ...]], ns: list[int],
                     weighted_by: str | None = None, weight_aggregation: str = "min", seed: int = 0) -> dict[str, dict[int, float]]:
    """Accuracy against N of: best-of-N by each scorer with each of its aggregations (curve
    "<scorer> (<aggregation>)"), majority vote, majority weighted by ``weighted_by``'s aggregated
    scores, and oracle pass@N (the ceiling). Best-of-N is the exact expectation over subsets of n of
    the samples; votes average random subsets."""
    curves: dict[str, dict[int, float]] = {}
    for name, s in scores.items():
        for how in aggregations.get(name, ("min",)):
            curves[f"{name} ({how})"] = best_of_n_accuracy(aggregate(s, how), ev.correct, ns)
    answers = answers_of(task, ev)
    reference = [task.reference_answer(p) for p in ev.problems]
    curves["majority vote"] = majority_accuracy(answers, None, reference, ns, seed=seed)
    if weighted_by is not None:
        weights = aggregate(scores[weighted_by], weight_aggregation)
        weights = np.where(np.isfinite(weights), weights, 0.0)  # a solution with no step has no say
        curves[f"{weighted_by}-weighted majority ({weight_aggregation})"] = majority_accuracy(
            answers, weights, reference, ns, seed=seed)
    curves["oracle pass@N"] = pass_at_k_curve(ev.correct, ns)
    return curves
