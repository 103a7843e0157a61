"""Metrics shared by the notebooks: pass@k, step AUROC and accuracy, the ProcessBench protocol,
best-of-N and (weighted) majority-vote accuracy, the effective sample size of weights, where a curve
first reaches a target (`first_reach`), and the rule a difference between arms over seeds is judged by
(`seed_difference`)."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import numpy as np

from prmlab.choices import check_choice


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., "Evaluating Large Language
    Models Trained on Code", 2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_curve(correct: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Mean pass@k over problems; ``correct`` is a [problems, samples] boolean array."""
    correct = np.asarray(correct, dtype=bool)
    n = correct.shape[1]
    counts = correct.sum(1)
    return {k: float(np.mean([pass_at_k(n, int(c), k) for c in counts])) for k in ks if k <= n}


# --------------------------------------------------------------------------------------------------
# Step-level classification: AUROC and accuracy
# --------------------------------------------------------------------------------------------------


def _flatten(x, dtype=float) -> np.ndarray:
    """A flat array from an array-like or a ragged list of per-solution lists (steps concatenated)."""
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, (list, tuple, np.ndarray)) for e in x):
        parts = [np.asarray(e, dtype=dtype).ravel() for e in x]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return np.asarray(x, dtype=dtype).ravel()


def _scores_and_binary_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = _flatten(scores, float)
    y = _flatten(labels, float)
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.size} entries but labels has {y.size}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (or bool); threshold soft labels first")
    return s, y.astype(bool)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values all get the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], x.size]  # exclusive
    avg = (starts + 1 + ends) / 2.0  # mean of the ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = avg[np.cumsum(new_group) - 1]
    return ranks


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 = positive).

    Computed with the Mann-Whitney rank formula, ties getting average ranks, so a tied
    (positive, negative) pair counts 1/2 -- the same value as sklearn's ``roc_auc_score``.
    Inputs are flat arrays or ragged per-solution lists (steps are concatenated).
    Returns NaN (rather than raising) when only one class is present, so that per-split or
    per-checkpoint AUROCs can be logged and averaged with ``np.nanmean``.
    """
    s, y = _scores_and_binary_labels(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def step_accuracy(scores, labels, threshold: float = 0.5) -> float:
    """Fraction of steps whose prediction ``score >= threshold`` equals the 0/1 label.

    A step is predicted *correct* when its score is at least the threshold, the same rule as
    :func:`first_error_from_rewards` (an error is a reward strictly below it). NaN when empty.
    """
    s, y = _scores_and_binary_labels(scores, labels)
    if s.size == 0:
        return float("nan")
    return float(np.mean((s >= threshold) == y))


def within_problem_auroc(solution_scores, correct) -> float:
    """How well a verifier ranks the solutions *of one problem*: per problem, the AUROC of its
    solutions' scores against their correctness, averaged over the problems that have both a correct
    and a wrong solution (NaN when none has). Best-of-N, weighted votes, beam search and SMC only ever
    compare solutions of one problem; a pooled AUROC over all problems also rewards scoring easy
    problems above hard ones, which none of them can use.

    ``solution_scores`` and ``correct`` are [problems][samples] (rows may differ in length).
    """
    if len(solution_scores) != len(correct):
        raise ValueError(f"solution_scores has {len(solution_scores)} problems but correct has {len(correct)}")
    per_problem = [auroc(np.asarray(s, dtype=float), np.asarray(y, dtype=float)) for s, y in zip(solution_scores, correct)]
    defined = [a for a in per_problem if not np.isnan(a)]
    return float(np.mean(defined)) if defined else float("nan")


def step_auroc_by_kind(step_scores, step_kinds, ok: str = "ok") -> dict[str, float]:
    """Per kind of first error, the AUROC of step scores separating the steps before a solution's
    first error (positives) from the first wrong steps of that kind (negatives).

    ``step_scores`` and ``step_kinds`` are per solution: a score and a kind (``ok`` or an error kind)
    per step; a solution's first error is its first step whose kind is not ``ok``. Steps after the
    first error are left out (whether they are right depends on what "right" means after a mistake).
    When the two lists of a solution differ in length, the shorter one counts. Kinds are sorted.
    """
    if len(step_scores) != len(step_kinds):
        raise ValueError(f"step_scores has {len(step_scores)} solutions but step_kinds has {len(step_kinds)}")
    good: list[float] = []
    first_errors: dict[str, list[float]] = {}
    for scores, kinds in zip(step_scores, step_kinds):
        for score, kind in zip(np.asarray(scores, dtype=float).ravel(), kinds):
            if kind != ok:
                first_errors.setdefault(kind, []).append(float(score))
                break
            good.append(float(score))
    return {kind: auroc(good + bad, [1] * len(good) + [0] * len(bad)) for kind, bad in sorted(first_errors.items())}


# --------------------------------------------------------------------------------------------------
# ProcessBench protocol (Zheng et al., "ProcessBench: Identifying Process Errors in Mathematical
# Reasoning", 2024): predict the index of the first wrong step, or -1 for a correct solution.
# --------------------------------------------------------------------------------------------------


def first_error_from_rewards(step_rewards: list[list[float]], threshold: float) -> list[int]:
    """Per solution, the index of the first step whose reward is ``< threshold``; -1 if none."""
    out = []
    for rewards in step_rewards:
        below = np.flatnonzero(np.asarray(rewards, dtype=float) < threshold)
        out.append(int(below[0]) if below.size else -1)
    return out


def _harmonic_mean(a: float, b: float) -> float:
    if np.isnan(a) or np.isnan(b):
        return float("nan")
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def processbench_scores(pred_first_error, true_first_error) -> dict:
    """ProcessBench scores from predicted and true first-error indices (-1 = no error).

    - ``error_acc``: over erroneous samples (true != -1), fraction with pred == true exactly;
    - ``correct_acc``: over correct samples (true == -1), fraction with pred == -1;
    - ``f1``: harmonic mean of the two (0 when both are 0).
    Accuracies are fractions in [0, 1] (the paper prints percentages); an accuracy over an empty
    subset is NaN, and so is ``f1`` then. ``n_error`` and ``n_correct`` count the two subsets.
    """
    pred = np.asarray(pred_first_error, dtype=int).ravel()
    true = np.asarray(true_first_error, dtype=int).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred_first_error has {pred.size} entries but true_first_error has {true.size}")
    is_err = true != -1
    n_error, n_correct = int(is_err.sum()), int((~is_err).sum())
    error_acc = float(np.mean(pred[is_err] == true[is_err])) if n_error else float("nan")
    correct_acc = float(np.mean(pred[~is_err] == -1)) if n_correct else float("nan")
    return {
        "error_acc": error_acc,
        "correct_acc": correct_acc,
        "f1": _harmonic_mean(error_acc, correct_acc),
        "n_error": n_error,
        "n_correct": n_correct,
    }


def _default_thresholds(step_rewards) -> np.ndarray:
    """Thresholds that realise every distinct prediction on this data: the smallest reward (nothing
    flagged), the midpoints between consecutive distinct rewards, and just above the largest."""
    flat = [r for rewards in step_rewards for r in rewards]
    u = np.unique(np.asarray(flat, dtype=float))
    if u.size == 0:
        return np.array([0.5])
    return np.r_[u[0], (u[1:] + u[:-1]) / 2.0, np.nextafter(u[-1], np.inf)]


def best_threshold(step_rewards: list[list[float]], true_first_error, grid=None) -> tuple[float, float]:
    """The threshold maximising ProcessBench F1 on the given (held-out) split, and that F1.

    ``grid`` defaults to the thresholds that realise every distinct prediction on this data (see
    ``_default_thresholds``), so the result is the exact optimum. Ties go to the smallest threshold.
    Runs in O(steps + grid) after sorting: each sample is scored correctly on one interval of
    thresholds, found from the running minimum of its rewards, and the intervals are counted with a
    difference array instead of re-scoring every sample at every threshold.
    """
    true = np.asarray(true_first_error, dtype=int).ravel()
    if len(step_rewards) != true.size:
        raise ValueError(f"step_rewards has {len(step_rewards)} samples but true_first_error has {true.size}")
    grid = np.unique(np.asarray(_default_thresholds(step_rewards) if grid is None else grid, dtype=float))
    if grid.size == 0:
        raise ValueError("grid is empty")
    hits_err = np.zeros(grid.size + 1)
    hits_cor = np.zeros(grid.size + 1)
    for i, (rewards, t) in enumerate(zip(step_rewards, true)):
        # prefix minima m: the prediction at threshold x is the first j with m[j] < x, else -1
        m = np.minimum.accumulate(np.asarray(rewards, dtype=float)) if len(rewards) else np.zeros(0)
        if not -1 <= t < m.size:
            raise ValueError(f"sample {i}: true first error {t} is outside [-1, {m.size - 1}]")
        if t == -1:  # correct iff nothing is flagged: x <= min reward
            lo, hi, hits = -np.inf, (m[-1] if m.size else np.inf), hits_cor
        else:  # correct iff step t is flagged but no earlier one: m[t] < x <= m[t-1]
            lo, hi, hits = m[t], (m[t - 1] if t > 0 else np.inf), hits_err
        a = np.searchsorted(grid, lo, side="right")  # first grid index with x > lo
        b = np.searchsorted(grid, hi, side="right")  # first grid index with x > hi
        if a < b:
            hits[a] += 1
            hits[b] -= 1
    n_error, n_correct = int((true != -1).sum()), int((true == -1).sum())
    if n_error == 0 or n_correct == 0:
        raise ValueError("best_threshold needs both erroneous (true != -1) and correct (true == -1) samples")
    err_acc = np.cumsum(hits_err)[:-1] / n_error
    cor_acc = np.cumsum(hits_cor)[:-1] / n_correct
    denom = err_acc + cor_acc
    f1 = np.divide(2 * err_acc * cor_acc, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))  # first maximum = smallest threshold
    return float(grid[best]), float(f1[best])


# --------------------------------------------------------------------------------------------------
# Reranking N samples: step-score aggregation, best-of-N, (weighted) majority vote
# --------------------------------------------------------------------------------------------------

AGGREGATIONS = ("min", "last", "prod", "mean")
SUBSET_MODES = ("exact", "first", "random")


def aggregate_step_scores(step_scores, how: str = "min") -> float:
    """One score for a solution from its per-step PRM scores.

    ``how``: ``"min"`` (the weakest step, the usual PRM choice), ``"last"`` (the final step),
    ``"prod"`` (product, i.e. probability that all steps are right), ``"mean"``.

    A solution with no steps scores 0.0, the lowest reward a step can get: it never ranks above a
    scored solution (it ties only with one scored exactly 0), and, unlike -inf, it is a valid vote weight
    and a finite SMC potential, so rerankers, voting, beam search and SMC can all use the one rule.
    """
    check_choice(how, AGGREGATIONS, "aggregation")
    s = np.asarray(step_scores, dtype=float).ravel()
    if s.size == 0:
        return 0.0
    return float({"min": np.min, "last": lambda v: v[-1], "prod": np.prod, "mean": np.mean}[how](s))


def first_reach(curve: dict, target: float, log_x: bool = False) -> float:
    """Where a measured curve ``{x: value}`` first reaches ``target`` (inf if no point does): its first
    point, if that reaches it; else the x at which the straight line between the first point that
    reaches it and the point before crosses ``target``, straight in log x with ``log_x`` (budgets, which
    double). Never beyond the measured points.

    The one rule for "budget to reach" (04) and "RL steps" or "rollouts to reach" (02, 03). Interpolated,
    not the first measured point: that rounds every answer up to the next measurement (an RL run is
    evaluated every few steps, a budget doubles), late by up to a whole interval, so that differences
    and ratios between two curves take only a few coarse values."""
    points = sorted(curve.items())
    reached = next((i for i, (_, y) in enumerate(points) if y >= target - 1e-12), None)
    if reached is None:
        return math.inf
    x1, y1 = points[reached]
    if reached == 0 or y1 <= target:
        return float(x1)
    x0, y0 = points[reached - 1]
    frac = (target - y0) / (y1 - y0)
    if log_x:
        return float(math.exp(math.log(x0) + frac * (math.log(x1) - math.log(x0))))
    return float(x0 + frac * (x1 - x0))


def powers_of_two(n_max: int) -> list[int]:
    """1, 2, 4, ... up to n_max (the budgets N of best-of-N and search curves)."""
    return [2**i for i in range(int(np.log2(n_max)) + 1)] if n_max >= 1 else []


def _check_ns(ns, n_max: int) -> list[int]:
    ns = powers_of_two(n_max) if ns is None else [int(n) for n in ns]
    bad = [n for n in ns if not 1 <= n <= n_max]
    if bad:
        raise ValueError(f"ns must lie in [1, {n_max}] (the samples per problem); got {bad}")
    return ns


def _expected_best_of_n(scores: np.ndarray, correct: np.ndarray, n: int) -> float:
    """E[correct of the top-scoring sample] over uniform n-subsets, ties broken uniformly.

    Group samples by distinct score, best first. The subset's winner lies in group g iff the subset
    misses all H_g higher-scored samples and contains one of g's m_g: probability
    q(H_g) - q(H_g + m_g), with q(h) = C(N-h, n) / C(N, n). Given that, by symmetry the winner is
    correct with probability (correct in g) / m_g.
    """
    N = scores.size
    _, group, m = np.unique(-scores, return_inverse=True, return_counts=True)
    c = np.bincount(group, weights=correct.astype(float))
    above = np.r_[0, np.cumsum(m)[:-1]]
    h = np.arange(N)
    # q(h+1) = q(h) * (N-h-n)/(N-h): a running product of factors in [0, 1], stable for large N
    q = np.r_[1.0, np.cumprod(np.clip((N - h - n) / (N - h), 0.0, None))]
    p = q[above] - q[above + m]
    return float(np.sum(p * c / m))


def best_of_n_accuracy(
    scores, correct, ns=None, subsets: str = "exact", n_draws: int = 32, seed: int = 0
) -> dict[int, float]:
    """Accuracy of picking the top-scoring of n samples per problem, for each n in ``ns``.

    ``scores`` and ``correct`` are [problems, N] arrays (aggregate step scores first, see
    :func:`aggregate_step_scores`); ``ns`` defaults to 1, 2, 4, ... <= N. ``subsets`` says which n
    samples are used:

    - ``"exact"`` (default): the exact expectation over all n-subsets drawn without replacement,
      ties broken uniformly at random -- unbiased, no sampling noise, O(N log N) per problem and n;
    - ``"first"``: the first n samples; ties go to the lowest index;
    - ``"random"``: the mean over ``n_draws`` random subsets (one seeded permutation per problem and
      draw, shared across n); ties go to the earlier sample in the permuted order, i.e. at random.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=bool)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(
            f"scores and correct must be [problems, N] arrays of one shape; got {s.shape}, {y.shape}"
        )
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    check_choice(subsets, SUBSET_MODES, "subsets")
    ns = _check_ns(ns, s.shape[1])
    if subsets == "exact":
        return {n: float(np.mean([_expected_best_of_n(si, yi, n) for si, yi in zip(s, y)])) for n in ns}
    if subsets == "first":
        orders = np.arange(s.shape[1])[None, None, :].repeat(s.shape[0], axis=1)  # [1, P, N]
    else:
        rng = np.random.default_rng(seed)
        orders = np.argsort(rng.random((n_draws, *s.shape)), axis=-1)  # [draws, P, N] permutations
    out = {}
    for n in ns:
        idx = orders[..., :n]
        sub_scores = np.take_along_axis(s[None].repeat(len(orders), 0), idx, axis=-1)
        best = np.take_along_axis(idx, sub_scores.argmax(-1)[..., None], axis=-1)[..., 0]
        out[n] = float(np.mean(np.take_along_axis(y[None].repeat(len(orders), 0), best[..., None], -1)))
    return out


def _vote(answers, weights):
    """The answer with the largest total weight; None answers are ignored; ties go to the answer
    whose first occurrence comes earliest (dicts keep insertion order and max keeps the first)."""
    totals: dict = {}
    for a, w in zip(answers, weights):
        if a is not None:
            totals[a] = totals.get(a, 0.0) + w
    return max(totals, key=totals.__getitem__) if totals else None


def majority_vote(answers: list[list]) -> list:
    """Per problem, the most frequent answer among its samples (answers must be hashable and
    already normalized). None answers are ignored; a problem with only None gets None. Ties go to
    the answer that appears first in the problem's list."""
    return [_vote(a, [1.0] * len(a)) for a in answers]


def weighted_majority_vote(answers: list[list], weights: list[list[float]]) -> list:
    """Per problem, the answer with the largest summed weight (e.g. PRM scores as probabilities).
    Same conventions as :func:`majority_vote`: None ignored, ties to the earliest first occurrence."""
    if len(answers) != len(weights):
        raise ValueError(f"answers has {len(answers)} problems but weights has {len(weights)}")
    out = []
    for i, (a, w) in enumerate(zip(answers, weights)):
        w = np.asarray(w, dtype=float).ravel()
        if w.size != len(a):
            raise ValueError(f"problem {i}: {len(a)} answers but {w.size} weights")
        if not np.isfinite(w).all():
            raise ValueError(f"problem {i}: weights must be finite")
        out.append(_vote(a, w.tolist()))
    return out


def majority_accuracy(
    answers: list[list],
    weights,
    reference: list,
    ns=None,
    subsets: str = "random",
    n_draws: int = 32,
    seed: int = 0,
) -> dict[int, float]:
    """Accuracy of (weighted, if ``weights`` is not None) majority vote over n samples, per n.

    A problem counts as solved when the voted answer equals ``reference[i]`` (a None vote never
    does). Every problem needs the same number N of samples; ``ns`` defaults to 1, 2, 4, ... <= N.
    ``subsets``: ``"random"`` (default) averages over ``n_draws`` seeded random n-subsets, taken as
    prefixes of one permutation per problem and draw (an unbiased estimate of the expectation over
    subsets; there is no cheap exact formula for voting); ``"first"`` uses the first n samples.
    """
    check_choice(subsets, ("first", "random"), "subsets")
    if len(answers) != len(reference):
        raise ValueError(f"answers has {len(answers)} problems but reference has {len(reference)}")
    sizes = {len(a) for a in answers}
    if len(sizes) > 1:
        raise ValueError(f"every problem needs the same number of samples; got sizes {sorted(sizes)}")
    N = sizes.pop() if sizes else 0
    if weights is None:
        weights = [[1.0] * N for _ in answers]
    if len(weights) != len(answers) or any(len(w) != N for w in weights):
        raise ValueError(f"weights must be [problems, {N}] like answers")
    weights = [np.asarray(w, dtype=float).ravel().tolist() for w in weights]
    if not all(np.isfinite(w).all() for w in weights):
        raise ValueError("weights must be finite")
    ns = _check_ns(ns, N)
    rng = np.random.default_rng(seed)
    draws = [np.arange(N)[None].repeat(len(answers), 0)] if subsets == "first" else [
        np.argsort(rng.random((len(answers), N)), axis=-1) for _ in range(n_draws)
    ]
    out = {}
    for n in ns:
        hits = []
        for order in draws:
            for a, w, o, r in zip(answers, weights, order.tolist(), reference):
                v = _vote([a[j] for j in o[:n]], [w[j] for j in o[:n]])
                hits.append(v is not None and v == r)
        out[n] = float(np.mean(hits))
    return out


def exact_majority_accuracy(answers, weights, reference, ns) -> dict[int, float]:
    """(Weighted) majority-vote accuracy per n, exactly averaged over uniformly random n-subsets.

    Averages ``majority_accuracy(subsets="first")`` over all N! orderings of each problem's N
    samples: every n-subset is a prefix equally often, and vote ties go to the answer seen first,
    i.e. are broken at random. Meant for small N (4 samples: 24 orderings)."""
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


def within_question_pair_accuracy(scores, correct) -> float:
    """Over (correct, wrong) pairs of solutions to the same question, the fraction the scores order
    right (ties count 1/2): the within-question AUROC with every pair weighted alike, which is what
    best-of-N depends on (`within_problem_auroc` weights every problem alike instead). A pooled AUROC
    also rewards telling easy questions from hard ones. ``scores`` and ``correct`` are [questions, N]
    arrays; NaN when there is no such pair."""
    s, c = np.asarray(scores, dtype=float), np.asarray(correct, dtype=bool)
    pos, neg = c[:, :, None], ~c[:, None, :]  # [q, i, j]: i correct and j wrong
    diff = s[:, :, None] - s[:, None, :]
    pairs = pos & neg
    n = pairs.sum()
    return float(((diff > 0) + 0.5 * (diff == 0))[pairs].sum() / n) if n else float("nan")


# --------------------------------------------------------------------------------------------------
# Importance weights
# --------------------------------------------------------------------------------------------------


def ess(weights) -> float:
    """Effective sample size 1 / sum(w_i^2) of nonnegative weights after normalising them to sum
    to 1: N for uniform weights, 1 when one weight holds all the mass. The one ESS of prmlab (the SMC
    core computes its resampling decision and logged ESS with it)."""
    w = np.asarray(weights, dtype=float).ravel()
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("ess needs finite, nonnegative weights with a positive sum")
    w = w / w.sum()
    return float(1.0 / np.sum(w**2))


# --------------------------------------------------------------------------------------------------
# Differences between arms over seeds: the one rule every claim of a difference is judged by.
# --------------------------------------------------------------------------------------------------

MIN_SEEDS = 3  # a difference between arms is claimed only over at least this many seeds per arm ...
Z = 2.0  # ... and only where it exceeds this many standard errors of the difference


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` over seeds, its standard error and the fewer of the two arms' seed counts."""

    mean: float
    se: float  # nan where an arm has a single seed or a value is not finite
    seeds: int

    @property
    def holds(self) -> bool:
        """a > b: at least ``MIN_SEEDS`` seeds in each arm and ``mean > Z * se`` (with se = 0, any mean > 0)."""
        return holds(self.mean, self.se, self.seeds)


def holds(diff: float, se: float, seeds: int | float) -> bool:
    """The rule for logged numbers: ``seeds >= MIN_SEEDS``, a finite ``se`` and ``diff > Z * se``."""
    return seeds >= MIN_SEEDS and math.isfinite(se) and math.isfinite(diff) and diff > Z * se


def seed_difference(a, b) -> Difference:
    """The difference of two arms' per-seed values (e.g. final accuracies): ``mean(a) - mean(b)``, with the
    standard error of a difference of means of independent samples, ``sqrt(se_a**2 + se_b**2)`` where
    ``se = sd / sqrt(n)`` and ``sd`` has ``ddof = 1``. The independent formula is used even where the arms
    are paired by seed (same seeds, same evaluation streams): pairing that correlates the arms positively
    only makes this standard error larger than the paired one, so the test errs towards "within noise".
    A value that is not finite (an arm that never reached a target) gives that mean and a nan standard
    error: such a difference never holds."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    n = min(len(a), len(b))
    if not a or not b:
        return Difference(float("nan"), float("nan"), n)
    if len(a) < 2 or len(b) < 2 or not all(math.isfinite(x) for x in a + b):
        return Difference(sum(a) / len(a) - sum(b) / len(b), float("nan"), n)
    # statistics computes exactly (a constant arm has sd 0, not 1e-17)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return Difference(statistics.mean(a) - statistics.mean(b), se, n)


def paired_difference(a, b) -> Difference:
    """``mean(a - b)`` over seeds whose values are paired (the same seed's pools read by two methods), with
    the standard error of that mean (``sd(a - b) / sqrt(n)``, ``ddof = 1``); nan with a single seed."""
    d = [float(x) - float(y) for x, y in zip(a, b)]
    if not d:
        return Difference(float("nan"), float("nan"), 0)
    if len(d) < 2 or not all(math.isfinite(x) for x in d):
        return Difference(sum(d) / len(d), float("nan"), len(d))
    return Difference(statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d)), len(d))
