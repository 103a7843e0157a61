"""Evaluating step scorers on sampled solutions: step-level quality, the ProcessBench protocol and
best-of-N reranking against votes and the oracle ceiling.

Everything here works on an ``evaluation.Evaluation`` (n samples per problem, graded, with oracle
verdicts when the task has an oracle) plus the per-step rewards a scorer gave each sample, and names
its results as notebook 01 logs them (``eval/<model>/...``, ``bon/<curve>``, ``headline/...``).
"""

from __future__ import annotations

from collections import Counter

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
    step_auroc_by_kind,
    within_problem_auroc,
)
from .scorer import StepScores, score_samples


def score_evaluation(scorer, task, ev) -> StepScores:
    """Rewards of every step of every sample of ``ev`` by ``scorer`` (any `prmlab.prm.scorer.StepScorer`;
    one forward per solution), its steps as ``task.split_steps`` reads the sample's text."""
    return score_samples(scorer, [task.prompt(p) for p in ev.problems],
                         [[task.split_steps(t) for t in ev.solutions(i)] for i in range(len(ev.problems))])


def aggregate(scores: StepScores, how: str) -> np.ndarray:
    """[problems, n] solution scores from step rewards (``how`` in min, last, prod, mean)."""
    return np.array([[aggregate_step_scores(s, how) for s in row] for row in scores])


def step_level(scores: StepScores, verdicts) -> dict:
    """AUROC and accuracy (threshold 0.5) of step rewards against the oracle's process labels
    (``verdicts`` [problems][samples], e.g. ``Evaluation.verdicts``)."""
    rewards, labels = [], []
    for row_s, row_v in zip(scores, verdicts):
        for s, v in zip(row_s, row_v):
            lab = v.step_labels
            k = min(len(s), len(lab))
            rewards.extend(s[:k])
            labels.extend(lab[:k])
    return {"step_auroc": auroc(rewards, labels), "step_accuracy": step_accuracy(rewards, labels), "steps": len(labels)}


def processbench(scores: StepScores, verdicts, dev_fraction: float = 0.5) -> dict:
    """ProcessBench protocol: the threshold is chosen on the first ``dev_fraction`` of the problems
    (maximising F1 there) and F1 is reported on the rest (``verdicts``: the oracle's, [problems][samples])."""
    flat_s = [s for row in scores for s in row]
    flat_fe = [v.first_error for row in verdicts for v in row]
    cut = sum(len(row) for row in scores[: int(round(dev_fraction * len(scores)))])  # solutions of the dev problems
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
        curves[f"{weighted_by}-weighted majority ({weight_aggregation})"] = majority_accuracy(
            answers, weights, reference, ns, seed=seed)
    curves["oracle pass@N"] = pass_at_k_curve(ev.correct, ns)
    return curves


# ----------------------------------------------------------------------------------------------
# A scorer's quality, and notebook 01's metrics.


def scorer_metrics(scores: StepScores, correct, verdicts=None, how: str = "min", flagged: list[bool] | None = None) -> dict:
    """What 01 and 04 report of a scorer (step rewards ``scores`` of [problems][samples]).

    Always ``within_problem_auroc``: per problem, the AUROC of the solution scores (step rewards
    aggregated by ``how``) against ``correct``, averaged over problems with both outcomes. With the
    oracle's ``verdicts`` also, pooled over all steps, ``step_auroc`` and ``step_accuracy``; per kind of
    first error, ``step_auroc/<kind>`` (steps before the first error against first errors of that
    kind); and the ProcessBench protocol (``processbench_f1``, ``processbench_error_acc``,
    ``processbench_correct_acc``, ``threshold``). ``flagged`` (per problem, e.g. a misconception applies:
    `prmlab.self_certainty.misconception_problems`) adds ``within_problem_auroc/misconception_problems``."""
    solution_scores = aggregate(scores, how)
    out = {"within_problem_auroc": within_problem_auroc(solution_scores, correct)}
    if flagged is not None and any(flagged):
        rows = [i for i, f in enumerate(flagged) if f]
        out["within_problem_auroc/misconception_problems"] = within_problem_auroc(
            [solution_scores[i] for i in rows], [correct[i] for i in rows])
    if verdicts is None:
        return out
    sl, pb = step_level(scores, verdicts), processbench(scores, verdicts)
    out |= {"step_auroc": sl["step_auroc"], "step_accuracy": sl["step_accuracy"], "processbench_f1": pb["f1"],
            "processbench_error_acc": pb["error_acc"], "processbench_correct_acc": pb["correct_acc"],
            "threshold": pb["threshold"]}
    by_kind = step_auroc_by_kind([s for row in scores for s in row], [v.kinds for row in verdicts for v in row])
    return out | {f"step_auroc/{kind}": value for kind, value in by_kind.items()}


TABLE_COLUMNS = {"step_auroc": "step AUROC", "step_accuracy": "step accuracy",
                 "processbench_error_acc": "ProcessBench error acc", "processbench_correct_acc": "correct acc",
                 "processbench_f1": "F1", "threshold": "threshold", "within_problem_auroc": "within-problem AUROC",
                 "within_problem_auroc/misconception_problems": "within-problem AUROC, misconception problems"}


def table_row(name: str, metrics: dict) -> dict:
    """One row of the scorers' table from ``scorer_metrics``."""
    row = {"model": name} | {label: metrics[k] for k, label in TABLE_COLUMNS.items() if k in metrics}
    return row | {f"AUROC vs first {k[len('step_auroc/'):]}": v for k, v in metrics.items() if k.startswith("step_auroc/")}


def evaluation_metrics(scores: dict[str, StepScores], correct, verdicts, aggregations: dict[str, tuple[str, ...]],
                       flagged: list[bool] | None = None):
    """``scorer_metrics`` of every model, each by its first aggregation, as ``eval/<model>/...``
    metrics and one table row per model. Returns ``(metrics, rows)``."""
    metrics, rows = {}, []
    for name, s in scores.items():
        m = scorer_metrics(s, correct, verdicts, aggregations[name][0], flagged)
        metrics |= {f"eval/{name}/{k}": v for k, v in m.items()}
        rows.append(table_row(name, m))
    return metrics, rows


def picks(scores: StepScores, how: str) -> np.ndarray:
    """Per problem, the sample that best-of-N over all its samples picks (the first of equal best)."""
    return aggregate(scores, how).argmax(axis=1)


def solutions_profile(verdicts: list) -> dict[str, Counter]:
    """What a set of judged solutions looks like: how many have their first error of each kind
    ('none': every step right) and how many have each number of steps."""
    return {"first_error": Counter(v.kinds[v.first_error] if v.first_error >= 0 else "none" for v in verdicts),
            "steps": Counter(len(v.steps) for v in verdicts)}


def picks_profile(scores: StepScores, verdicts, how: str) -> dict[str, Counter]:
    """``solutions_profile`` of the samples best-of-N picks by ``scores`` aggregated by ``how``."""
    return solutions_profile([row[j] for row, j in zip(verdicts, picks(scores, how))])


def picks_profiles(scores: dict[str, StepScores], verdicts, aggregations: dict[str, tuple[str, ...]]) -> dict:
    """``solutions_profile`` of all samples and ``picks_profile`` of each model (by its first
    aggregation): does a verifier prefer some kinds of error, or short solutions?"""
    out = {"all samples": solutions_profile([v for row in verdicts for v in row])}
    return out | {name: picks_profile(s, verdicts, aggregations[name][0]) for name, s in scores.items()}


def model_aggregations(names, main: str) -> dict[str, tuple[str, ...]]:
    """How each model's step rewards become a solution score, first the one it is judged by: the
    main PRM every way (min first), the ORM by its last step (the only one it is trained on), other
    PRMs and the baselines (the policy's likelihood, the readout before training) by their weakest step."""
    return {name: (("min", "last", "prod", "mean") if name == main else ("last",) if name == "ORM" else ("min",))
            for name in names}


def curve_metric(label: str) -> str:
    """The metric a reranking curve is logged as: 'PRM-oracle (min)' -> 'bon/PRM-oracle/min',
    'majority vote' -> 'bon/majority_vote'."""
    return "bon/" + label.replace(" (", "/").replace(")", "").replace(" ", "_")


def curve_metrics(curves: dict[str, dict[int, float]]) -> list[tuple[dict, int]]:
    """``(metrics, step)`` pairs to log: each curve's accuracy at each N, step = N."""
    return [({curve_metric(label): acc}, n) for label, curve in curves.items() for n, acc in curve.items()]


def headline(curves: dict[str, dict[int, float]], names, main: str, ns: list[int], eval_metrics: dict | None = None,
             greedy: float | None = None) -> dict:
    """The headline numbers at N = 16 (or the largest N): the main PRM's best-of-N against majority vote,
    weighted majority, the ORM, the baselines (the policy's likelihood, the readout before training,
    greedy decoding) and the oracle's pass@N; every PRM's best-of-N; and, when there is an
    oracle-labelled PRM, each Monte Carlo PRM's gap to it (positive: below it). With ``eval_metrics``
    (`evaluation_metrics`'), the main PRM's and the baselines' within-problem AUROC (overall and on
    misconception problems) and the PRM's and ORM's step AUROC on misconception errors."""
    n = 16 if 16 in ns else ns[-1]
    out = {"headline/n": n, "headline/prm_best_of_n": curves[f"{main} (min)"][n],
           "headline/majority": curves["majority vote"][n],
           "headline/weighted_majority": curves[f"{main}-weighted majority (min)"][n],
           "headline/orm_best_of_n": curves["ORM (last)"][n], "headline/oracle_pass_at_n": curves["oracle pass@N"][n]}
    for base in ("likelihood", "untrained"):
        if f"{base} (min)" in curves:
            out[f"headline/{base}_best_of_n"] = curves[f"{base} (min)"][n]
    if greedy is not None:
        out["headline/greedy"] = float(greedy)
    m = eval_metrics or {}
    for model, key in ((main, "prm"), ("likelihood", "likelihood"), ("untrained", "untrained"), ("ORM", "orm")):
        for metric in ("within_problem_auroc", "within_problem_auroc/misconception_problems", "step_auroc/misconception"):
            if f"eval/{model}/{metric}" in m:
                out[f"headline/{key}_{metric}"] = m[f"eval/{model}/{metric}"]
    prms = [name for name in names if name.startswith("PRM-")]
    out |= {f"headline/{name}_best_of_n": curves[f"{name} (min)"][n] for name in prms}
    if "PRM-oracle" in prms:
        out |= {f"headline/{name}_gap_to_oracle": out["headline/PRM-oracle_best_of_n"] - out[f"headline/{name}_best_of_n"]
                for name in prms if name.startswith("PRM-mc")}
    return out
