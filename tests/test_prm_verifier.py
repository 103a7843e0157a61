"""The feature verifier of real GSM8K solutions: features read only the solution texts, and the
logistic regression learns a separable problem deterministically."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from prmlab.prm.verifier import FEATURE_NAMES, answer_value, feature_matrix, solution_features, train_verifier
from prmlab.tasks.real import load_gsm8k_model_solutions


def test_features_shape_and_garbage_input():
    text = "He buys 3 * 4 = <<3*4=12>>12 apples.\nThen 12 + 1 = <<12+1=14>>14.\nA: 14"
    f = solution_features(text)
    assert f.shape == (len(FEATURE_NAMES),) and f.dtype == np.float64
    named = dict(zip(FEATURE_NAMES, f))
    assert named["any_wrong_annotation"] == 1 and named["annotation_check_frac"] == 0.5
    assert named["first_wrong_rel"] == pytest.approx(2 / 3)  # step 1 of 3
    assert named["answer_from_annotation"] == 1 and named["answer_is_integer"] == 1
    for junk in ("", "no numbers here", None, "<<1+=>>"):
        assert np.isfinite(solution_features(junk)).all()


def test_agreement_feature_only_reads_other_answers():
    text = "3 + 4 = <<3+4=7>>7\nA: 7"
    base = solution_features(text)
    agree = solution_features(text, [answer_value("A: 7.0"), answer_value("A: 8"), None])
    diff = np.flatnonzero(base != agree)
    assert list(diff) == [FEATURE_NAMES.index("agree_frac")]
    assert agree[diff[0]] == pytest.approx(1 / 3)


def test_features_never_depend_on_the_ground_truth():
    solved = load_gsm8k_model_solutions(limit=60)
    rng = random.Random(0)
    problems = [sp.problem for sp in solved]
    rng.shuffle(problems)  # other questions' ground truth and answers
    shuffled = [
        dataclasses.replace(
            sp,
            problem=p,
            solutions=tuple(dataclasses.replace(s, is_correct=rng.random() < 0.5) for s in sp.solutions),
        )
        for sp, p in zip(solved, problems)
    ]
    for agreement in (False, True):
        assert np.array_equal(feature_matrix(solved, agreement), feature_matrix(shuffled, agreement))


def _separable(seed=0, n=400, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, size=d) + rng.normal(size=d)  # unstandardized
    logits = X @ rng.normal(size=d)
    y = (logits > np.median(logits)).astype(float)  # balanced classes
    return X, y


def test_verifier_learns_a_separable_problem_and_is_deterministic():
    X, y = _separable()
    v1 = train_verifier(X, y, seed=3)
    v2 = train_verifier(X, y, seed=3)
    acc = np.mean((v1.predict_proba(X) > 0.5) == y)
    assert acc > 0.95
    assert np.array_equal(v1.weight, v2.weight) and v1.bias == v2.bias and v1.losses == v2.losses
    p = v1.predict_proba(X)
    assert p.shape == (len(X),) and ((p >= 0) & (p <= 1)).all()
    assert v1.losses[-1] < v1.losses[0]


def test_verifier_rejects_bad_input():
    X, y = _separable()
    with pytest.raises(ValueError, match="0/1"):
        train_verifier(X, y * 2)
    with pytest.raises(ValueError, match="rows"):
        train_verifier(X, y[:-1])
    with pytest.raises(ValueError, match="epochs"):
        train_verifier(X, y, epochs=0)
