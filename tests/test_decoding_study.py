"""Notebook 04's study: methods x scorers, the metric names, budget-to-reach tables, sensitivity sweeps,
and the scorers judged on their best-of-N pools."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from prmlab.decoding import study
from prmlab.decoding.compare import budget_to_reach
from prmlab.decoding.particle_filter import smc_decode
from prmlab.decoding.resampling import RESAMPLING_SCHEMES
from prmlab.decoding.smc import SMCConfig
from prmlab.prm.oracle import OracleScorer
from prmlab.prm.reranking import scorer_metrics
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tasks.arith import ArithTask, final_answer


def test_metric_names():
    assert study.method_metric("smc [prm]") == "acc/smc/prm"
    assert study.method_metric("beam_search [prm_oracle]", "tokens") == "tokens/beam_search/prm_oracle"
    assert study.method_metric("majority", "wall_time") == "wall_time/majority"
    assert study.method_metric("smc [oracle]", "headline/acc_at_max_n") == "headline/acc_at_max_n/smc/oracle"
    assert study.scorer_tags("p0", {"oracle": "oracle", "prm": "r1", "prm_oracle": "r1"}) == {
        "prmlab.policy_run": "p0", "prmlab.scorer.oracle": "oracle", "prmlab.scorer.prm": "r1",
        "prmlab.scorer.prm_oracle": "r1", "prmlab.prm_run": "r1"}
    assert study.scorer_tags("p0", {"oracle": "oracle"})["prmlab.prm_run"] == "oracle"


def rows_of(method, accs_by_seed, tokens=10):
    return [{"method": method, "n": n, "seed": s, "accuracy": a, "tokens": tokens * n, "prm_tokens": 2 * n,
             "wall_time": 0.1 * n} for s, accs in enumerate(accs_by_seed) for n, a in accs.items()]


def test_budget_metrics_are_means_over_seeds_with_step_n():
    rows = rows_of("smc [prm]", [{1: 0.2, 2: 0.4}, {1: 0.4, 2: 0.6}]) + rows_of("majority", [{1: 0.1}, {1: 0.3}])
    got = study.budget_metrics(rows)
    assert ({"acc/smc/prm": pytest.approx(0.3)}, 1) in got and ({"acc/smc/prm": pytest.approx(0.5)}, 2) in got
    assert ({"tokens/smc/prm": 20.0}, 2) in got and ({"prm_tokens/majority": 2.0}, 1) in got
    assert ({"wall_time/smc/prm": pytest.approx(0.2)}, 2) in got
    assert len(got) == 4 * 3  # (accuracy + 3 budget measures) x 3 (method, N) points


def test_budget_to_reach_table_and_smc_advantage():
    means = {"best_of_n [o]": {1: 0.2, 2: 0.4, 4: 0.5}, "smc [o]": {1: 0.3, 2: 0.5, 4: 0.6},
             "beam_search [o]": {2: 0.45, 4: 0.46}, "smc [other]": {1: 0.9}, "majority": {1: 0.1, 2: 0.2, 4: 0.3}}
    metrics, rows = study.budget_to_reach_table(means, "o", max_n=4)
    targets = [0.45, 0.5]  # 90% and 100% of best-of-N's best accuracy
    assert [r["target accuracy"] for r in rows] == targets
    assert set(rows[0]) == {"target accuracy", "best_of_n", "smc", "beam_search", "majority"}  # not the other scorer's
    for row in rows:
        for m in ("best_of_n", "smc", "beam_search", "majority"):
            curve = means["majority" if m == "majority" else f"{m} [o]"]
            assert row[m] == budget_to_reach(curve, row["target accuracy"])
    flat = {(k, step): v for m, step in metrics for k, v in m.items()}
    assert flat[("headline/o/n_to_reach/smc", 45)] == rows[0]["smc"]
    assert ("headline/o/n_to_reach/majority", 45) not in flat  # never reached: not logged
    assert flat[("headline/o/smc_advantage_vs_best_of_n", 50)] == pytest.approx(4 / rows[1]["smc"])
    assert flat[("headline/o/smc_advantage_vs_beam_search", 50)] == pytest.approx(4 / rows[1]["smc"])  # never: max_n / smc
    assert math.isinf(rows[1]["beam_search"])
    assert study.accuracy_at(means, 4) == {"headline/acc_at_max_n/best_of_n/o": 0.5, "headline/acc_at_max_n/smc/o": 0.6,
                                           "headline/acc_at_max_n/beam_search/o": 0.46, "headline/acc_at_max_n/majority": 0.3}


def test_sensitivity_metric_names():
    got = study.sensitivity_metrics({0.5: (0.4, 0.3, 0.5), 2.0: (0.6, 0.6, 0.6)}, {"residual": (0.7, 0.6, 0.8)})
    assert got == [({"sensitivity/tau": 0.4}, 50), ({"sensitivity/tau": 0.6}, 200),
                   ({"sensitivity/scheme/residual": 0.7}, None)]


def test_step_scorers_by_name_and_their_errors(char_tokenizer, mlflow_store):
    from prmlab import tracking

    task = ArithTask(n_train=0, n_eval=2, seed=0)
    scorers, sources = study.load_step_scorers(" oracle, ", task, task.eval, char_tokenizer)
    assert isinstance(scorers["oracle"], OracleScorer) and sources == {"oracle": "oracle"}
    with pytest.raises(ValueError, match="scorers is empty"):
        study.load_step_scorers(" , ", task, task.eval, char_tokenizer)
    with pytest.raises(ValueError, match="needs a task with a step oracle; gsm8k has none"):
        study.load_step_scorers("oracle", SimpleNamespace(has_oracle=False, name="gsm8k"), [], char_tokenizer)
    with pytest.raises(tracking.NoRunError, match="prmlab run 01 --profile smoke"):
        study.load_step_scorers("oracle,prm", task, task.eval, char_tokenizer, profile="smoke")


@pytest.fixture(scope="module")
def setup(tiny_policy, char_tokenizer):
    task = ArithTask(n_train=0, n_eval=3, seed=0)
    prompts = [p.prompt for p in task.eval]
    refs = [p.answer for p in task.eval]
    make = lambda s: Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=24, seed=s))  # noqa: E731
    scorers = {"oracle": OracleScorer(task, task.eval, eps=1e-3, tokenizer=char_tokenizer),
               "soft": OracleScorer(task, task.eval, eps=0.2, tokenizer=char_tokenizer)}
    return task, prompts, refs, make, scorers


def test_compare_scorers_names_curves_and_keeps_each_scorers_largest_pool(setup):
    task, prompts, refs, make, scorers = setup
    cfg = SMCConfig(weighting="current", max_steps=8)
    rows, pools = study.compare_scorers(make, scorers, prompts, refs, [1, 2], [0, 1], progress=False, answer_fn=final_answer,
                                        m=2, smc_config=cfg)
    methods = {r["method"] for r in rows}
    assert "majority" in methods and "majority [soft]" not in methods and "majority [oracle]" not in methods
    assert {"smc [oracle]", "smc [soft]", "beam_search [soft]", "best_of_n [oracle]"} <= methods
    assert {r["scorer"] for r in rows if r["method"] == "majority"} == {"none"}
    assert {r["scorer"] for r in rows if r["method"].endswith("[soft]")} == {"soft"}
    assert list(pools) == ["oracle", "soft"]
    for name, pool in pools.items():
        assert pool.method == "best_of_n" and all(len(p.texts) == 2 for p in pool.problems)
        assert pool.params["n"] == 2
        row = next(r for r in rows if r["method"] == f"best_of_n [{name}]" and r["n"] == 2 and r["seed"] == 0)
        assert pool.accuracy(refs) == row["accuracy"]


def test_the_scorers_are_judged_on_their_pools_as_01_judges_its_prms(setup):
    task, prompts, refs, make, scorers = setup
    from prmlab.decoding.search import best_of_n, sample_pool

    result = best_of_n(sample_pool(make(0), scorers["oracle"], prompts, 4), "min", answer_fn=final_answer)
    scores, verdicts, correct = study.judged_pool(task, task.eval, result)
    assert [len(row) for row in scores] == [4, 4, 4] and correct.shape == (3, 4)
    assert verdicts[1][2] == task.judge(task.eval[1], result.problems[1].texts[2])
    metrics, table, profiles = study.scorers_quality(task, task.eval, {"oracle": result}, "min")
    expected = scorer_metrics(scores, correct, verdicts, "min")
    np.testing.assert_equal(metrics, {f"eval/oracle/{k}": v for k, v in expected.items()})  # NaN equals NaN here
    assert table[0]["model"] == "oracle" and set(profiles) == {"all samples", "oracle"}
    assert sum(profiles["all samples"]["steps"].values()) == 12 and sum(profiles["oracle"]["steps"].values()) == 3
    real = SimpleNamespace(has_oracle=False, grade=lambda p, t: t.endswith("A: 3"))
    _, none, graded = study.judged_pool(real, task.eval, result)
    assert none is None and graded.tolist() == [[t.endswith("A: 3") for t in p.texts] for p in result.problems]


def test_sensitivity_runs_smc_per_seed_for_each_tau_and_each_scheme(setup):
    task, prompts, refs, make, scorers = setup
    cfg = SMCConfig(n_particles=2, weighting="current", resampling="multinomial", max_steps=6)
    by_tau, by_scheme = study.sensitivity(make, scorers["oracle"], prompts, refs, [0, 1], cfg, [0.5, 2.0], "last",
                                          final_answer)
    assert list(by_tau) == [0.5, 2.0] and list(by_scheme) == list(RESAMPLING_SCHEMES)
    accs = [smc_decode(make(s), scorers["oracle"], prompts, replace(cfg, temperature=2.0, seed=s), aggregation="last",
                       answer_fn=final_answer).accuracy(refs) for s in (0, 1)]
    assert by_tau[2.0] == (np.mean(accs), min(accs), max(accs))
    accs = [smc_decode(make(s), scorers["oracle"], prompts, replace(cfg, resampling="residual", seed=s), aggregation="last",
                       answer_fn=final_answer).accuracy(refs) for s in (0, 1)]
    assert by_scheme["residual"] == (np.mean(accs), min(accs), max(accs))
