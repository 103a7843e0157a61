"""Tests for prmlab.metrics: each metric against an independent reference (sklearn, brute force,
or a hand computation written out below)."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from prmlab.metrics import (
    aggregate_step_scores,
    auroc,
    best_of_n_accuracy,
    best_threshold,
    ess,
    exact_majority_accuracy,
    first_error_from_rewards,
    first_reach,
    majority_accuracy,
    majority_vote,
    pass_at_k,
    pass_at_k_curve,
    processbench_scores,
    step_accuracy,
    weighted_majority_vote,
    within_question_pair_accuracy,
)


# ---------------------------------------------------------------- pass@k (existing, kept working)


def test_pass_at_k_matches_combinatorial_formula():
    for n, c, k in [(10, 3, 1), (10, 3, 5), (5, 0, 2), (5, 5, 1), (8, 6, 3)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    curve = pass_at_k_curve(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], bool), [1, 2, 8])
    assert curve == pytest.approx({1: 0.125, 2: 0.25})


# ---------------------------------------------------------------- AUROC and step accuracy


def brute_force_auroc(scores, labels):
    """P(score of a random positive > score of a random negative), ties counting 1/2."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # rounding creates many ties
    assert len(np.unique(scores)) < 100
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_matches_pairwise_count_on_small_cases():
    cases = [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]),
        ([1, 2, 2, 3, 3, 3], [0, 1, 0, 1, 1, 0]),
        ([0.9, 0.1], [0, 1]),
    ]
    for scores, labels in cases:
        assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels))


def test_auroc_edge_cases():
    assert auroc([0.1, 0.2, 0.9], [0, 0, 1]) == 1.0
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))  # one class: NaN by convention
    # ragged per-solution lists are concatenated; rank-based, so invariant to monotone maps
    assert auroc([[0.1, 0.4], [0.35, 0.8]], [[0, 0], [1, 1]]) == auroc([1, 4, 3.5, 8], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="0/1"):
        auroc([0.1, 0.2], [0.3, 1])
    with pytest.raises(ValueError, match="entries"):
        auroc([0.1, 0.2], [1])


def test_step_accuracy():
    # predictions score >= 0.5: [1, 0, 1, 1]; labels [1, 0, 0, 1] -> 3 of 4 agree
    assert step_accuracy([0.9, 0.2, 0.5, 0.7], [1, 0, 0, 1]) == 0.75
    # threshold 0.8: predictions [1, 0, 0, 0] -> agree on 0, 1, 2 -> 3/4
    assert step_accuracy([0.9, 0.2, 0.5, 0.7], [1, 0, 0, 1], threshold=0.8) == 0.75
    assert step_accuracy([[0.9], [0.2, 0.6]], [[True], [False, True]]) == 1.0


# ---------------------------------------------------------------- ProcessBench


def test_first_error_from_rewards():
    rewards = [[0.9, 0.8, 0.3, 0.9], [0.9, 0.7], [0.2], [], [0.5, 0.49]]
    assert first_error_from_rewards(rewards, 0.5) == [2, -1, 0, -1, 1]
    assert first_error_from_rewards(rewards, 0.95) == [0, 0, 0, -1, 0]


def test_processbench_scores_by_hand():
    true = [2, 0, 1, 3, -1, -1, -1]
    pred = [2, 1, 1, -1, -1, 0, -1]
    # erroneous samples (true != -1): indices 0..3; exact matches at 0 (2==2) and 2 (1==1)
    #   error_acc = 2/4 = 0.5
    # correct samples (true == -1): indices 4..6; pred == -1 at 4 and 6
    #   correct_acc = 2/3
    # f1 = 2 * 0.5 * (2/3) / (0.5 + 2/3) = (2/3) / (7/6) = 4/7
    got = processbench_scores(pred, true)
    assert got["error_acc"] == pytest.approx(0.5)
    assert got["correct_acc"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(4 / 7)
    assert (got["n_error"], got["n_correct"]) == (4, 3)

    zero = processbench_scores([0, 0], [1, -1])  # both accuracies 0 -> f1 0
    assert zero["f1"] == 0.0
    assert math.isnan(processbench_scores([1], [1])["f1"])  # no correct samples: NaN


STEP_REWARDS = [
    [0.9, 0.8, 0.2],  # true first error 2
    [0.7, 0.6],  # correct
    [0.4, 0.9],  # true first error 0
    [0.9, 0.55, 0.95],  # correct
]
TRUE_FIRST_ERROR = [2, -1, 0, -1]


def test_best_threshold_by_hand():
    # threshold 0.5 -> predictions [2, -1, 0, -1]: everything right, error_acc = correct_acc = 1
    assert processbench_scores(first_error_from_rewards(STEP_REWARDS, 0.5), TRUE_FIRST_ERROR)["f1"] == 1.0
    # any t in (0.4, 0.55] gives the same predictions; the default grid's smallest such point is the
    # midpoint between distinct rewards 0.4 and 0.55: 0.475
    t, f1 = best_threshold(STEP_REWARDS, TRUE_FIRST_ERROR)
    assert (t, f1) == (pytest.approx(0.475), 1.0)
    # on a coarse grid: t=0.3 flags only 0.2 -> [2, -1, -1, -1], error_acc 1/2, correct_acc 1, f1 2/3;
    # t=0.9 flags 0.8 in sample 0, 0.7 in 1, 0.4 in 2, 0.55 in 3 -> [1, 0, 0, 1]: error_acc 1/2,
    # correct_acc 0, f1 0. Best: 0.3 with f1 2/3.
    t, f1 = best_threshold(STEP_REWARDS, TRUE_FIRST_ERROR, grid=[0.9, 0.3])
    assert (t, f1) == (0.3, pytest.approx(2 / 3))


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    rewards = [np.round(rng.random(rng.integers(1, 6)), 1).tolist() for _ in range(40)]
    true = [int(rng.integers(-1, len(r))) for r in rewards]
    true[:2] = [-1, 0]  # make sure both classes are present
    t, f1 = best_threshold(rewards, true)
    grid = np.linspace(-0.05, 1.05, 111)  # step 0.01 covers every distinct outcome of 0.1-rounded rewards
    brute = [processbench_scores(first_error_from_rewards(rewards, x), true)["f1"] for x in grid]
    assert f1 == pytest.approx(max(brute))
    assert processbench_scores(first_error_from_rewards(rewards, t), true)["f1"] == pytest.approx(f1)
    # with an explicit grid, the fast sweep equals re-scoring at every grid point
    t2, f2 = best_threshold(rewards, true, grid=grid)
    assert f2 == pytest.approx(max(brute)) and t2 == pytest.approx(grid[int(np.argmax(brute))])


def test_best_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="both"):
        best_threshold([[0.5]], [0])
    with pytest.raises(ValueError, match="outside"):
        best_threshold([[0.5], [0.1]], [3, -1])


# ---------------------------------------------------------------- best-of-N and voting


def test_aggregate_step_scores():
    s = [0.9, 0.5, 0.8]
    assert aggregate_step_scores(s, "min") == 0.5
    assert aggregate_step_scores(s, "last") == 0.8
    assert aggregate_step_scores(s, "prod") == pytest.approx(0.36)
    assert aggregate_step_scores(s, "mean") == pytest.approx(2.2 / 3)
    with pytest.raises(ValueError, match="unknown aggregation 'max'; valid choices: min, last, prod, mean"):
        aggregate_step_scores(s, "max")


def test_a_solution_without_steps_scores_zero_in_every_aggregation():
    """The one rule for an empty solution: 0.0, the lowest reward. It ranks below any solution with a
    positive score, ties one scored exactly 0, and is finite, so it is a valid vote weight."""
    assert all(aggregate_step_scores([], how) == 0.0 for how in ("min", "last", "prod", "mean"))
    scores = [aggregate_step_scores(s, "min") for s in ([0.2, 0.1], [], [1e-9], [0.0])]
    assert int(np.argmax(scores)) == 0 and scores[1] < scores[2] and scores[1] == scores[3]
    assert weighted_majority_vote([["a", "b", "b"]], [[0.3, 0.2, scores[1]]]) == ["a"]  # no say, but no error


def brute_force_best_of_n(scores, correct, n):
    """Mean over problems and over all n-subsets of the winner's correctness, tied winners averaged."""
    per_problem = []
    for s, y in zip(scores, correct):
        vals = []
        for sub in itertools.combinations(range(len(s)), n):
            top = max(s[j] for j in sub)
            vals.append(np.mean([y[j] for j in sub if s[j] == top]))
        per_problem.append(np.mean(vals))
    return float(np.mean(per_problem))


SCORES = np.array([[0.2, 0.9, 0.9, 0.1, 0.5], [0.3, 0.3, 0.3, 0.8, -np.inf], [0.6, 0.1, 0.4, 0.4, 0.9]])
CORRECT = np.array([[1, 1, 0, 0, 1], [1, 0, 1, 0, 1], [0, 0, 1, 1, 1]], bool)


def test_best_of_n_exact_matches_enumeration():
    got = best_of_n_accuracy(SCORES, CORRECT, ns=[1, 2, 3, 4, 5])
    for n in range(1, 6):
        assert got[n] == pytest.approx(brute_force_best_of_n(SCORES, CORRECT, n), abs=1e-12)
    assert got[1] == pytest.approx(CORRECT.mean())  # n=1 is plain accuracy
    assert list(best_of_n_accuracy(SCORES, CORRECT)) == [1, 2, 4]  # default ns: powers of 2 <= N


def test_best_of_n_first_and_random():
    # first n: problem 0 picks idx 0 (n=1), idx 1 (n=2, 0.9 beats 0.2; tie with idx 2 at n=3 -> idx 1)
    got = best_of_n_accuracy(SCORES, CORRECT, ns=[1, 3, 5], subsets="first")
    # n=1: winners idx 0,0,0 -> correct [1, 1, 0] -> 2/3
    # n=3: p0 idx 1 (1), p1 idx 0 (tie 0.3s -> lowest, 1), p2 idx 0 (0.6, 0) -> 2/3
    # n=5: p0 idx 1 (1), p1 idx 3 (0.8, 0), p2 idx 4 (0.9, 1) -> 2/3
    assert got == pytest.approx({1: 2 / 3, 3: 2 / 3, 5: 2 / 3})
    r1 = best_of_n_accuracy(SCORES, CORRECT, ns=[2, 5], subsets="random", n_draws=4000, seed=1)
    assert r1 == best_of_n_accuracy(SCORES, CORRECT, ns=[2, 5], subsets="random", n_draws=4000, seed=1)
    exact = best_of_n_accuracy(SCORES, CORRECT, ns=[2, 5])
    assert r1[2] == pytest.approx(exact[2], abs=0.02)  # random tie-breaking: same expectation
    assert r1[5] == pytest.approx(exact[5], abs=0.02)


def test_best_of_n_bad_input():
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        best_of_n_accuracy(SCORES, CORRECT, ns=[8])
    with pytest.raises(ValueError, match="unknown subsets 'all'; valid choices: exact, first, random"):
        best_of_n_accuracy(SCORES, CORRECT, subsets="all")


def test_majority_votes():
    answers = [["3", "4", "4", "3"], ["7", None, "8", "8"], [None, None], ["1", "2", "2", "1", "1"]]
    # tie 2-2 between "3" and "4" -> "3" appears first; None is ignored; all None -> None
    assert majority_vote(answers) == ["3", "8", None, "1"]
    weights = [[0.1, 0.3, 0.3, 0.1], [0.9, 5.0, 0.2, 0.3], [1, 1], [0.2, 0.5, 0.5, 0.2, 0.1]]
    # "4" has 0.6 vs 0.2; "7" 0.9 beats "8" 0.5 (the None's weight does not count); "2" 1.0 vs 0.5
    assert weighted_majority_vote(answers, weights) == ["4", "7", None, "2"]
    assert weighted_majority_vote([["a", "b"]], [[0.5, 0.5]]) == ["a"]  # exact tie -> first


def brute_force_vote(answers, weights):
    """Independent vote: count per distinct answer, pick max total, tie -> smallest first index."""
    best = None
    for a in answers:
        if a is None:
            continue
        total = sum(w for b, w in zip(answers, weights) if b == a)
        first = answers.index(a)
        if best is None or total > best[0] or (total == best[0] and first < best[1]):
            best = (total, first, a)
    return None if best is None else best[2]


def test_majority_accuracy_matches_enumeration():
    answers = [["1", "2", "2", None], ["5", "5", "6", "6"], ["9", "8", "8", "9"]]
    reference = ["2", "6", "9"]
    weights = [[0.9, 0.4, 0.3, 0.8], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.1]]
    for w in (None, weights):
        ww = w or [[1.0] * 4] * 3
        first = majority_accuracy(answers, w, reference, ns=[1, 2, 3, 4], subsets="first")
        for n in range(1, 5):
            hits = [brute_force_vote(a[:n], x[:n]) == r for a, x, r in zip(answers, ww, reference)]
            assert first[n] == pytest.approx(np.mean(hits))
        # random subsets: the expectation over all orderings of the samples (prefix of a permutation)
        rand = majority_accuracy(answers, w, reference, ns=[2, 3], n_draws=3000, seed=0)
        for n in (2, 3):
            exact = np.mean([
                np.mean([brute_force_vote([a[j] for j in p[:n]], [x[j] for j in p[:n]]) == r
                         for p in itertools.permutations(range(4))])
                for a, x, r in zip(answers, ww, reference)
            ])
            assert rand[n] == pytest.approx(exact, abs=0.02)
    assert majority_accuracy(answers, None, reference, seed=3) == majority_accuracy(answers, None, reference, seed=3)


def test_majority_accuracy_bad_input():
    with pytest.raises(ValueError, match="same number"):
        majority_accuracy([["1"], ["1", "2"]], None, ["1", "1"])
    with pytest.raises(ValueError, match="unknown subsets 'exact'; valid choices: first, random"):
        majority_accuracy([["1"]], None, ["1"], subsets="exact")


# ---------------------------------------------------------------- ESS


def test_ess():
    assert ess([1, 1, 1, 1]) == pytest.approx(4)
    assert ess([0, 0, 3, 0]) == pytest.approx(1)
    # [1, 1, 2] normalizes to [1/4, 1/4, 1/2]; sum of squares 1/16 + 1/16 + 1/4 = 3/8 -> ESS 8/3
    assert ess([1, 1, 2]) == pytest.approx(8 / 3)
    assert ess([10, 10, 20]) == pytest.approx(8 / 3)  # scale invariant
    for bad in ([], [0, 0], [1, -1], [1, np.nan]):
        with pytest.raises(ValueError):
            ess(bad)


# ---------------------------------------------------------------------------------- exact votes, pairs


def _brute_force_majority(answers, weights, reference, n):
    """Exact expectation over n-subsets; ties split uniformly over tied answers."""
    total = 0.0
    for a, w, r in zip(answers, weights, reference):
        subsets = list(itertools.combinations(range(len(a)), n))
        for sub in subsets:
            votes = Counter()
            for j in sub:
                votes[a[j]] += w[j]
            best = max(votes.values())
            winners = [k for k, v in votes.items() if v == best]
            total += (r in winners) / len(winners) / len(subsets)
    return total / len(answers)


def test_exact_majority_matches_brute_force():
    rng = np.random.default_rng(0)
    answers = [[str(v) for v in rng.integers(0, 3, 4)] for _ in range(40)]
    reference = [str(v) for v in rng.integers(0, 3, 40)]
    ones = [[1.0] * 4 for _ in answers]
    got = exact_majority_accuracy(answers, None, reference, [1, 2, 3, 4])
    for n in (1, 2, 3, 4):
        assert got[n] == pytest.approx(_brute_force_majority(answers, ones, reference, n), abs=1e-12)
    # distinct random weights: no weighted ties, so brute force is exact there too
    w = rng.random((40, 4)).tolist()
    got_w = exact_majority_accuracy(answers, w, reference, [2, 4])
    for n in (2, 4):
        assert got_w[n] == pytest.approx(_brute_force_majority(answers, w, reference, n), abs=1e-12)


def test_within_question_pair_accuracy():
    correct = np.array([[1, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
    assert within_question_pair_accuracy(np.array([[0.9, 0.1, 0.2, 0.8], [0, 0, 0, 0]]), correct) == 1.0
    assert within_question_pair_accuracy(np.array([[0.5, 0.5, 0.6, 0.8], [0, 0, 0, 0]]), correct) == pytest.approx(
        (0.5 + 0 + 1 + 1) / 4
    )


def test_seed_differences_independent_and_paired_against_hand_computation():
    from prmlab.metrics import paired_difference, seed_difference

    a, b = [0.5, 0.6, 0.7], [0.4, 0.4, 0.4]
    d = seed_difference(a, b)
    assert d.mean == pytest.approx(0.2) and d.se == pytest.approx(0.1 / 3 ** 0.5) and d.holds  # 0.2 > 2 x 0.0577
    p = paired_difference(a, b)  # the same differences paired: 0.1, 0.2, 0.3
    assert p.mean == pytest.approx(0.2) and p.se == pytest.approx(0.1 / 3 ** 0.5) and p.holds
    assert not paired_difference([0.5, 0.6], [0.4, 0.4]).holds  # two seeds: never a claim
    assert not paired_difference([0.5, 0.6, 1.0], [0.4, 0.4, 0.4]).holds  # mean 0.3, se 0.153: within noise


def test_first_reach_interpolates_between_the_two_measurements_around_the_first_crossing():
    steps = {0: 0.2, 5: 0.4, 10: 0.6}
    assert first_reach(steps, 0.5) == 7.5  # halfway from 0.4 to 0.6: halfway from step 5 to 10
    assert (first_reach(steps, 0.2), first_reach(steps, 0.1), first_reach(steps, 0.6)) == (0, 0, 10)
    assert first_reach(steps, 0.61) == math.inf and first_reach({}, 0.1) == math.inf
    # the first crossing counts, not a later one, and never a point before the first measurement
    assert first_reach({0: 0.5, 5: 0.3, 10: 0.6, 15: 0.4}, 0.55) == pytest.approx(5 + 5 * 0.25 / 0.3)
    # budgets double: straight in log N, 0.65 halfway from N = 4 to 8 in log N is 4 * sqrt(2)
    budgets = {1: 0.1, 2: 0.3, 4: 0.5, 8: 0.8}
    assert first_reach(budgets, 0.65, log_x=True) == pytest.approx(4 * math.sqrt(2))
    assert first_reach(budgets, 0.65) == pytest.approx(6.0)  # linear in N instead
    # a target equal to a measured value (an arm's own final accuracy) is reached at that point
    assert first_reach({0: 0.1, 5: 0.3, 10: 0.1 + 0.2}, 0.1 + 0.2) == 5
