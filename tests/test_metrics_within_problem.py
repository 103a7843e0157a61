"""Within-problem AUROC and per-kind step AUROC against brute-force pair counting."""

import itertools
import math

import numpy as np
import pytest

from prmlab.metrics import step_auroc_by_kind, within_problem_auroc


def pairs_auroc(pos, neg) -> float:
    """P(positive scores above negative), ties counting 1/2, by enumerating every pair."""
    if not pos or not neg:
        return math.nan
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))


def test_within_problem_auroc_averages_pairwise_auroc_over_problems_with_both_outcomes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_problems = int(rng.integers(1, 6))
        scores = [np.round(rng.random(int(rng.integers(1, 7))), 1) for _ in range(n_problems)]  # ties happen
        correct = [rng.random(len(s)) < 0.5 for s in scores]
        per = [pairs_auroc([x for x, y in zip(s, c) if y], [x for x, y in zip(s, c) if not y]) for s, c in zip(scores, correct)]
        defined = [a for a in per if not math.isnan(a)]
        expected = float(np.mean(defined)) if defined else math.nan
        got = within_problem_auroc(scores, correct)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_within_problem_auroc_ignores_which_problems_are_hard():
    # every problem ranked perfectly, but the hard problem's correct solution scores below the easy
    # problem's wrong ones: the pooled AUROC is not 1, the within-problem one is
    scores = [[0.9, 0.8], [0.2, 0.1]]
    correct = [[True, False], [True, False]]
    assert within_problem_auroc(scores, correct) == 1.0
    from prmlab.metrics import auroc

    assert auroc(np.ravel(scores), np.ravel(correct).astype(int)) == 0.75
    assert math.isnan(within_problem_auroc([[0.3, 0.4]], [[True, True]]))  # no problem with both outcomes
    assert within_problem_auroc([[-math.inf, 0.2]], [[False, True]]) == 1.0  # a solution with no step ranks last


def test_step_auroc_by_kind_pairs_good_prefix_steps_with_each_kind_of_first_error():
    rng = np.random.default_rng(1)
    kinds_pool = ["ok", "ok", "ok", "carry", "arithmetic", "skipped"]
    for _ in range(20):
        scores, kinds = [], []
        for _ in range(int(rng.integers(1, 8))):
            n = int(rng.integers(1, 6))
            scores.append(np.round(rng.random(n), 1))
            kinds.append([kinds_pool[i] for i in rng.integers(0, len(kinds_pool), n + int(rng.integers(-1, 2)))])
        good, bad = [], {}
        for s, k in zip(scores, kinds):
            m = min(len(s), len(k))
            first = next((i for i in range(m) if k[i] != "ok"), None)
            good += list(s[: m if first is None else first])
            if first is not None:
                bad.setdefault(k[first], []).append(s[first])
        expected = {kind: pairs_auroc(good, b) for kind, b in sorted(bad.items())}
        got = step_auroc_by_kind(scores, kinds)
        assert list(got) == list(expected)
        for kind in expected:
            assert (math.isnan(got[kind]) and math.isnan(expected[kind])) or got[kind] == pytest.approx(expected[kind])


def test_step_auroc_by_kind_leaves_out_steps_after_the_first_error():
    scores = [[0.9, 0.1, 0.95], [0.8, 0.7]]
    kinds = [["ok", "carry", "ok"], ["ok", "ok"]]  # the 0.95 after the carry error is neither good nor bad
    assert step_auroc_by_kind(scores, kinds) == {"carry": 1.0}
    with pytest.raises(ValueError, match="2 solutions but step_kinds has 1"):
        step_auroc_by_kind(scores, kinds[:1])
