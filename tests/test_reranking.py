"""Judging step scorers on sampled solutions (notebooks 01 and 04): step-level and within-problem
quality, the ProcessBench protocol, what best-of-N picks, and the metric names 01 logs."""

import math
import random
from collections import Counter

import numpy as np
import pytest

from prmlab.prm import reranking
from prmlab.tasks.arith import ArithConfig, judge, make_splits, solution_with_mistake


@pytest.fixture(scope="module")
def judged():
    """4 problems x 3 samples: the reference solution, one with a carry mistake, one with an
    arithmetic mistake (each at a random step), judged by the oracle."""
    _, problems = make_splits(ArithConfig(min_ops=3, max_ops=4), 0, 4, seed=0)
    rng = random.Random(0)
    verdicts = []
    for p in problems:
        texts = [p.reference_solution(), solution_with_mistake(p, rng, "carry")[0], solution_with_mistake(p, rng, "arithmetic")[0]]
        verdicts.append([judge(p, t) for t in texts])
    correct = np.array([[v.answer_correct for v in row] for row in verdicts])
    return verdicts, correct


def oracle_scores(verdicts, noise=0.0, seed=0):
    """Step rewards that follow the oracle: near 1 before the first error, near 0 from it on."""
    rng = np.random.default_rng(seed)
    return [[np.asarray(v.step_labels, dtype=float) * 0.8 + 0.1 + noise * rng.random(len(v.steps)) for v in row]
            for row in verdicts]


def test_a_scorer_that_follows_the_oracle_is_perfect_on_every_measure(judged):
    verdicts, correct = judged
    m = reranking.scorer_metrics(oracle_scores(verdicts, noise=0.05), correct, verdicts, "min")
    assert m["within_problem_auroc"] == 1.0 and m["step_auroc"] == 1.0 and m["step_accuracy"] == 1.0
    assert m["step_auroc/carry"] == 1.0 and m["step_auroc/arithmetic"] == 1.0
    assert m["processbench_f1"] == 1.0 and m["processbench_error_acc"] == m["processbench_correct_acc"] == 1.0
    assert set(m) == {"within_problem_auroc", "step_auroc", "step_accuracy", "processbench_f1", "processbench_error_acc",
                      "processbench_correct_acc", "threshold", "step_auroc/arithmetic", "step_auroc/carry"}


def test_a_scorer_blind_to_one_kind_of_error_shows_it_in_that_kind_only(judged):
    verdicts, correct = judged
    scores = oracle_scores(verdicts)
    for row_s, row_v in zip(scores, verdicts):
        for s, v in zip(row_s, row_v):
            if v.first_error >= 0 and v.kinds[v.first_error] == "carry":
                s[:] = 0.9  # every step of a solution with a carry mistake looks fine
    m = reranking.scorer_metrics(scores, correct, verdicts, "min")
    assert m["step_auroc/arithmetic"] == 1.0
    assert m["step_auroc/carry"] == 0.5  # carry errors tie with the good steps: chance
    assert m["within_problem_auroc"] == pytest.approx(0.75)  # per problem: right above arithmetic, tied with carry


def test_without_an_oracle_only_within_problem_auroc_is_reported(judged):
    verdicts, correct = judged
    m = reranking.scorer_metrics(oracle_scores(verdicts), correct, None, "last")
    assert list(m) == ["within_problem_auroc"]


def test_processbench_chooses_the_threshold_on_the_first_half_of_the_problems(judged):
    verdicts, correct = judged
    scores = oracle_scores(verdicts)
    for s in scores[2]:  # the second half (problems 2, 3) scored backwards: the threshold no longer fits
        s[:] = 1.0 - s
    for s in scores[3]:
        s[:] = 1.0 - s
    pb = reranking.processbench(scores, verdicts)
    assert pb["dev_f1"] == 1.0  # chosen on problems 0 and 1, where the scores are right
    assert pb["f1"] < 1.0
    one_class = [[v for v in row if v.first_error >= 0] for row in verdicts]  # no correct solution at all
    assert math.isnan(reranking.processbench([r[1:] for r in scores], one_class)["f1"])


def test_picks_and_what_they_look_like(judged):
    verdicts, _ = judged
    scores = [[np.array([0.5]), np.array([0.9, 0.2]), np.array([0.9, 0.9])] for _ in verdicts]
    assert reranking.picks(scores, "min").tolist() == [2, 2, 2, 2]  # min: 0.5, 0.2, 0.9
    assert reranking.picks(scores, "last").tolist() == [2, 2, 2, 2]
    assert reranking.picks([[np.array([0.7]), np.array([0.7])]], "min").tolist() == [0]  # ties: the first
    profiles = reranking.picks_profiles({"A": scores}, verdicts, {"A": ("min",)})
    assert profiles["A"]["first_error"] == Counter({"arithmetic": 4})
    assert sum(profiles["all samples"]["first_error"].values()) == 12
    assert profiles["all samples"]["first_error"]["none"] == 4
    assert profiles["A"]["steps"] == Counter(len(row[2].steps) for row in verdicts)


def test_model_aggregations_and_curve_metric_names():
    agg = reranking.model_aggregations(["PRM-mc-hard", "PRM-oracle", "ORM"], main="PRM-mc-hard")
    assert agg == {"PRM-mc-hard": ("min", "last", "prod", "mean"), "PRM-oracle": ("min",), "ORM": ("last",)}
    assert reranking.curve_metric("PRM-oracle (min)") == "bon/PRM-oracle/min"
    assert reranking.curve_metric("PRM-mc-hard-weighted majority (min)") == "bon/PRM-mc-hard-weighted_majority/min"
    assert reranking.curve_metric("oracle pass@N") == "bon/oracle_pass@N"
    assert reranking.curve_metrics({"majority vote": {1: 0.5, 2: 0.6}}) == [({"bon/majority_vote": 0.5}, 1),
                                                                           ({"bon/majority_vote": 0.6}, 2)]


def curves_for(names, main, ns, value):
    curves = {f"{name} (min)": {n: value(name, n) for n in ns} for name in names if name.startswith("PRM-")}
    curves |= {"ORM (last)": {n: 0.3 for n in ns}, "majority vote": {n: 0.4 for n in ns},
               f"{main}-weighted majority (min)": {n: 0.45 for n in ns}, "oracle pass@N": {n: 0.9 for n in ns}}
    return curves


def test_headline_at_16_with_gaps_to_the_oracle_labelled_prm():
    names = ["PRM-oracle", "PRM-mc-hard", "PRM-mc-soft", "ORM"]
    value = lambda name, n: {"PRM-oracle": 0.6, "PRM-mc-hard": 0.55, "PRM-mc-soft": 0.62}[name] + n / 1000  # noqa: E731
    h = reranking.headline(curves_for(names, "PRM-mc-hard", [1, 2, 4, 8, 16, 32], value), names, "PRM-mc-hard",
                           [1, 2, 4, 8, 16, 32])
    assert h["headline/n"] == 16 and h["headline/prm_best_of_n"] == pytest.approx(0.566)
    assert (h["headline/majority"], h["headline/weighted_majority"], h["headline/orm_best_of_n"],
            h["headline/oracle_pass_at_n"]) == (0.4, 0.45, 0.3, 0.9)
    assert h["headline/PRM-mc-hard_gap_to_oracle"] == pytest.approx(0.05)
    assert h["headline/PRM-mc-soft_gap_to_oracle"] == pytest.approx(-0.02)
    no_oracle = reranking.headline(curves_for(["PRM-mc-hard", "ORM"], "PRM-mc-hard", [1, 2, 4], value),
                                   ["PRM-mc-hard", "ORM"], "PRM-mc-hard", [1, 2, 4])
    assert no_oracle["headline/n"] == 4 and not any(k.endswith("_gap_to_oracle") for k in no_oracle)


def test_evaluation_metrics_name_every_models_metrics_and_build_the_table(judged):
    verdicts, correct = judged
    scores = {"PRM-oracle": oracle_scores(verdicts), "ORM": oracle_scores(verdicts, noise=0.5, seed=1)}
    metrics, rows = reranking.evaluation_metrics(scores, correct, verdicts, {"PRM-oracle": ("min",), "ORM": ("last",)})
    for name in scores:
        m = reranking.scorer_metrics(scores[name], correct, verdicts, "min" if name == "PRM-oracle" else "last")
        assert {f"eval/{name}/{k}": v for k, v in m.items()}.items() <= metrics.items()
    assert [r["model"] for r in rows] == ["PRM-oracle", "ORM"]
    assert rows[0]["step AUROC"] == 1.0 and rows[0]["AUROC vs first carry"] == 1.0 and rows[0]["F1"] == 1.0
    assert list(rows[0])[:2] == ["model", "step AUROC"]
