"""Notebook 04's study: methods x scorers, the metric names, budget-to-reach tables, sensitivity sweeps,
and the scorers judged on their best-of-N pools."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from prmlab import scorer_artifacts
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
    assert scorer_artifacts.scorer_tags("p0", {"oracle": "oracle", "prm": "r1", "prm_oracle": "r1"}) == {
        "prmlab.policy_run": "p0", "prmlab.scorer.oracle": "oracle", "prmlab.scorer.prm": "r1",
        "prmlab.scorer.prm_oracle": "r1", "prmlab.prm_run": "r1"}
    assert scorer_artifacts.scorer_tags("p0", {"oracle": "oracle"})["prmlab.prm_run"] == "oracle"


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
    scorers, sources = scorer_artifacts.load_step_scorers(" oracle, ", task, task.eval, char_tokenizer)
    assert isinstance(scorers["oracle"], OracleScorer) and sources == {"oracle": "oracle"}
    with pytest.raises(ValueError, match="scorers is empty"):
        scorer_artifacts.load_step_scorers(" , ", task, task.eval, char_tokenizer)
    with pytest.raises(ValueError, match="needs a task with a step oracle; gsm8k has none"):
        scorer_artifacts.load_step_scorers("oracle", SimpleNamespace(has_oracle=False, name="gsm8k"), [], char_tokenizer)
    with pytest.raises(tracking.NoRunError, match="prmlab run 01 --profile smoke"):
        scorer_artifacts.load_step_scorers("oracle,prm", task, task.eval, char_tokenizer, profile="smoke")


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


# ---- the baselines a search method must beat, the likelihood scorer, the worth-its-tokens verdict -------------


def test_baseline_and_scorer_names_are_valid_mlflow_metric_names():
    from mlflow.utils.validation import _validate_metric_name

    from prmlab.decoding.compare import temperature_method

    names = ["greedy", temperature_method("majority", 0.5), f"{temperature_method('best_of_n', 0.7)} [prm]",
             f"{temperature_method('majority', 1)}", "smc [likelihood]"]
    assert names[1:4] == ["majority_t0.5", "best_of_n_t0.7 [prm]", "majority_t1"]
    metrics = [study.method_metric(m, measure) for m in names for measure in ("acc", "tokens", "headline/acc_at_max_n")]
    assert "acc/best_of_n_t0.7/prm" in metrics and "tokens/majority_t0.5" in metrics and "acc/greedy" in metrics
    for name in metrics + ["headline/prm/best_search_minus_best_sampling_at_tokens_se", "headline/acc/greedy"]:
        _validate_metric_name(name)  # raises on '@' and the like
    assert all(study.no_scorer(m) for m in ("greedy", "majority", "majority_t0.5"))
    assert not any(study.no_scorer(m) for m in ("best_of_n_t0.5", "smc", "weighted_majority"))
    # the likelihood scorer comes from the policy: it is not the PRM run
    assert scorer_artifacts.scorer_tags("p0", {"likelihood": scorer_artifacts.POLICY, "prm": "r1"})["prmlab.prm_run"] == "r1"


def test_the_likelihood_scorer_by_name_needs_the_policy(tiny_policy, char_tokenizer):
    from prmlab.prm.model import CachedPRMScorer

    task = ArithTask(n_train=0, n_eval=2, seed=0)
    with pytest.raises(ValueError, match="'likelihood' scorer reads the policy's own token log-probs: pass policy="):
        scorer_artifacts.load_step_scorers("oracle,likelihood", task, task.eval, char_tokenizer)
    before = {k: v.clone() for k, v in tiny_policy.state_dict().items()}
    scorers, sources = scorer_artifacts.load_step_scorers("likelihood, oracle", task, task.eval, char_tokenizer,
                                                          policy=tiny_policy)
    assert list(scorers) == ["likelihood", "oracle"] and sources == {"likelihood": "policy", "oracle": "oracle"}
    lik = scorers["likelihood"]
    assert isinstance(lik, CachedPRMScorer) and lik.prm.config.readout == "likelihood" and lik.prm.config.freeze_backbone
    assert lik.prm.backbone is not tiny_policy
    rewards = lik.score([p.prompt for p in task.eval], [p.reference_steps() for p in task.eval])
    assert all(np.all(np.diff(r) <= 1e-9) for r in rewards)  # untrained: a running minimum never rises
    assert all(torch.equal(v, before[k]) for k, v in tiny_policy.state_dict().items())  # a copy reads: policy untouched


def test_the_arms_of_02_can_use_the_likelihood_scorer():
    from prmlab.rl.pure_arms import arm_scorer_names, parse_arms

    arms = parse_arms("verifiable, likelihood-min,prm-sum, likelihood-sum")
    assert [a.scorer for a in arms] == ["none", "likelihood", "prm", "likelihood"]
    assert arm_scorer_names(arms, "prm_mc_soft") == "likelihood,prm_mc_soft"
    assert arm_scorer_names(parse_arms("verifiable")) == ""
    with pytest.raises(ValueError, match="unknown arm 'likelihood'; valid choices: verifiable, prm-sum, .*likelihood-min"):
        parse_arms("likelihood")


def direct_sampler(policy, tokenizer, seed, temperature):
    return Sampler(policy, tokenizer, SamplingConfig(temperature=temperature, max_new_tokens=24, seed=seed))


def test_greedy_and_lower_temperature_baselines_equal_direct_runs(setup, tiny_policy, char_tokenizer):
    from prmlab.decoding.compare import compare_baselines, subpool
    from prmlab.decoding.search import best_of_n, majority, sample_pool
    from prmlab.sampling import sample

    task, prompts, refs, make, scorers = setup
    seen = {}
    rows = compare_baselines(make, scorers["soft"], prompts, refs, [1, 2, 4], [0, 1], [0.5], "min", answer_fn=final_answer,
                             on_result=lambda r, res: seen.__setitem__((r["method"], r["n"], r["seed"]), (r, res)))
    assert {(r["method"], r["n"]) for r in rows} == {("greedy", 1)} | {(m, n) for m in ("majority_t0.5", "best_of_n_t0.5")
                                                                       for n in (1, 2, 4)}
    # greedy: one solution per problem at temperature 0, its tokens; the same for every seed
    greedy = sample(direct_sampler(tiny_policy, char_tokenizer, 0, 0.0), prompts, 1)
    for s in (0, 1):
        row, res = seen[("greedy", 1, s)]
        assert row["solutions"] == len(prompts) and row["tokens"] == greedy.num_tokens
        assert [p.texts for p in res.problems] == [[t] for t in greedy.texts]
    # temperature 0.5: the seed's sampler at 0.5, one pool of max N, its first N samples at every N
    for s in (0, 1):
        pool = sample_pool(direct_sampler(tiny_policy, char_tokenizer, s, 0.5), scorers["soft"], prompts, 4)
        assert pool.texts != sample_pool(make(s), None, prompts, 4).texts  # the temperature is really applied
        for n in (1, 2, 4):
            sub = subpool(pool, n, scorers["soft"], char_tokenizer)
            for method, want in (("majority_t0.5", majority(sub, answer_fn=final_answer)),
                                 ("best_of_n_t0.5", best_of_n(sub, "min", answer_fn=final_answer))):
                row, res = seen[(method, n, s)]
                assert res.method == method and res.answers == want.answers
                assert [p.text for p in res.problems] == [p.text for p in want.problems]
                assert row["accuracy"] == want.accuracy(refs) and row["tokens"] == sub.budget.tokens
                assert row["solutions"] == n * len(prompts) and row["prm_tokens"] == sub.budget.prm_tokens
    assert {r["method"] for r in compare_baselines(make, None, prompts, refs, [1, 2], [0], [0.7],
                                                   answer_fn=final_answer)} == {"greedy", "majority_t0.7"}


def test_compare_scorers_adds_the_baselines_and_runs_chosen_methods_per_scorer(setup):
    task, prompts, refs, make, scorers = setup
    cfg = SMCConfig(weighting="current", max_steps=8)
    rows, pools = study.compare_scorers(make, scorers, prompts, refs, [1, 2], [0], progress=False, answer_fn=final_answer,
                                        m=2, smc_config=cfg, methods={"soft": "smc,best_of_n", "absent": "smc"},
                                        baseline_temperatures=[0.5])
    methods = {r["method"] for r in rows}
    assert {"greedy", "majority_t0.5", "best_of_n_t0.5 [oracle]", "beam_search [oracle]", "majority"} <= methods
    assert {m for m in methods if m.endswith("[soft]")} == {"smc [soft]", "best_of_n [soft]"}
    assert "best_of_n_t0.5 [soft]" not in methods  # best-of-N at lower temperatures: the first scorer only
    assert {r["scorer"] for r in rows if r["method"] in ("greedy", "majority_t0.5")} == {"none"}
    # the scorers' best-of-N rerank the same samples (one pool per seed)
    assert [p.texts for p in pools["oracle"].problems] == [p.texts for p in pools["soft"].problems]
    bon = {r["method"]: r for r in rows if r["n"] == 2 and r["method"].startswith("best_of_n [")}
    assert bon["best_of_n [oracle]"]["tokens"] == bon["best_of_n [soft]"]["tokens"]
    with pytest.raises(ValueError, match="unknown method for scorer 'soft' 'beam'; valid choices: smc, beam_search"):
        study.compare_scorers(make, scorers, prompts, refs, [1], [0], progress=False, answer_fn=final_answer,
                              methods={"soft": "beam"})


def test_shared_pools_equal_pools_sampled_per_scorer(setup, char_tokenizer):
    from prmlab.decoding.compare import compare_methods

    task, prompts, refs, make, scorers = setup
    kw = dict(methods=("best_of_n", "weighted_majority"), answer_fn=final_answer)
    shared = {}
    for name in ("oracle", "soft"):
        alone = compare_methods(make, scorers[name], prompts, refs, [1, 2], [0, 1], **kw)
        cached = compare_methods(make, scorers[name], prompts, refs, [1, 2], [0, 1], samples=shared, **kw)
        assert [{k: v for k, v in r.items() if k != "wall_time"} for r in alone] == \
               [{k: v for k, v in r.items() if k != "wall_time"} for r in cached]
    assert set(shared) == {0, 1} and shared[0].rewards is None


def rows_for(method, accs, tokens, seeds=(0, 1, 2)):
    """Hand-made rows of one curve: accs[seed][i], tokens[i] at N = 1, 2, 4, ...; ``accs`` a list per seed."""
    return [{"method": method, "n": 2 ** i, "seed": s, "accuracy": a, "tokens": t, "prm_tokens": 0, "wall_time": 0.0}
            for s in seeds for i, (a, t) in enumerate(zip(accs[s], tokens))]


def test_versus_baselines_at_equal_n_and_equal_tokens():
    rows = (rows_for("smc [prm]", [[0.5, 0.8], [0.52, 0.82], [0.54, 0.84]], [100, 220])
            + rows_for("best_of_n [prm]", [[0.4, 0.6]] * 3, [100, 200])
            + rows_for("smc [other]", [[0.9, 0.99]] * 3, [100, 200])
            + rows_for("greedy", [[0.7]] * 3, [50])
            + rows_for("majority", [[0.4, 0.5]] * 3, [100, 200])
            + rows_for("majority_t0.5", [[0.6, 0.7]] * 3, [100, 190])
            + rows_for("best_of_n_t0.5 [prm]", [[0.75, 0.78], [0.75, 0.80], [0.75, 0.82]], [110, 440])
            + rows_for("best_of_n_t0.5 [other]", [[1.0, 1.0]] * 3, [100, 200]))
    v = study.versus_baselines(rows, "prm", 2)
    assert v["method"] == "smc [prm]" and v["acc"] == pytest.approx(0.82) and v["tokens"] == 220 and v["seeds"] == 3
    assert v["greedy"]["diff"] == pytest.approx(0.12) and v["greedy"]["se"] == pytest.approx(0.02 / 3 ** 0.5)
    assert v["greedy"]["beats"]
    # at N = 2 the strongest sampling baseline with this scorer (not the other scorer's) is best_of_n_t0.5 [prm]
    assert v["at_n"]["method"] == "best_of_n_t0.5 [prm]" and v["at_n"]["diff"] == pytest.approx(0.02)
    assert v["at_n"]["se"] == pytest.approx(0.0, abs=1e-12) and v["at_n"]["beats"]  # se 0: any lead counts
    # at 220 tokens (halfway from 110 to 440 in log tokens) best_of_n_t0.5 [prm] reads 0.765, 0.775, 0.785
    assert v["at_tokens"]["method"] == "best_of_n_t0.5 [prm]" and v["at_tokens"]["acc"] == pytest.approx(0.775)
    assert v["at_tokens"]["diff"] == pytest.approx(0.045) and v["at_tokens"]["covered"]
    assert v["worth"]
    m = study.versus_metrics(v)
    assert m["headline/acc/greedy"] == pytest.approx(0.7) and m["headline/tokens/greedy"] == 50
    assert m["headline/prm/best_search_minus_greedy"] == pytest.approx(0.12)
    assert m["headline/prm/best_search_minus_best_sampling"] == pytest.approx(0.02)
    assert m["headline/prm/best_search_minus_best_sampling_at_tokens"] == pytest.approx(0.045)
    assert m["headline/prm/worth_its_tokens"] == 1.0 and "headline/prm/best_search_minus_greedy_se" in m
    # behind majority_t0.5 at equal tokens when it is strong there; with two seeds nothing is a claim
    strong = [dict(r, accuracy=0.95) if r["method"] == "majority_t0.5" else r for r in rows]
    w = study.versus_baselines(strong, "prm", 2)
    assert w["at_tokens"]["method"] == "majority_t0.5" and w["at_tokens"]["diff"] < 0 and not w["worth"]
    assert not w["at_tokens"]["covered"]  # 220 tokens is more than 1.1x the 190 it spent at its largest N
    two = study.versus_baselines([r for r in rows if r["seed"] < 2], "prm", 2)
    assert two["greedy"]["diff"] > 0 and not two["greedy"]["beats"] and not two["worth"]
    assert study.versus_baselines([r for r in rows if r["method"] != "greedy"], "prm", 2) is None
    assert study.versus_metrics(None) == {}


def test_budget_to_reach_table_lists_the_baselines_without_a_scorer():
    means = {"best_of_n [o]": {1: 0.2, 2: 0.4}, "smc [o]": {1: 0.3, 2: 0.5}, "greedy": {1: 0.38},
             "majority_t0.5": {1: 0.3, 2: 0.45}, "best_of_n_t0.5 [o]": {1: 0.25, 2: 0.42}}
    metrics, rows = study.budget_to_reach_table(means, "o", max_n=2)
    assert [r["target accuracy"] for r in rows] == [0.36, 0.4]
    assert rows[0]["greedy"] == 1.0 and math.isinf(rows[1]["greedy"])
    assert rows[1]["best_of_n_t0.5"] == budget_to_reach(means["best_of_n_t0.5 [o]"], 0.4)
    flat = {(k, step): v for m, step in metrics for k, v in m.items()}
    assert flat[("headline/o/n_to_reach/greedy", 36)] == 1.0 and ("headline/o/n_to_reach/greedy", 40) not in flat
    assert study.budget_to_reach_table({"smc [x]": {1: 0.5}, "greedy": {1: 0.4}}, "x", 1) == ([], [])


def test_sensitivity_reuses_a_known_run_and_runs_a_repeated_configuration_once(setup, monkeypatch):
    task, prompts, refs, make, scorers = setup
    cfg = SMCConfig(n_particles=2, weighting="current", resampling="multinomial", max_steps=6)
    calls = []
    monkeypatch.setattr(study, "smc_accuracy", lambda *a: calls.append(a[5]) or (0.5, 0.4, 0.6))
    by_tau, by_scheme = study.sensitivity(make, scorers["oracle"], prompts, refs, [0, 1], cfg, [0.5, 1.0], "last",
                                          final_answer, known={0: 0.1, 1: 0.3})
    assert by_tau[1.0] == by_scheme["multinomial"] == (pytest.approx(0.2), 0.1, 0.3)  # cfg itself: the known run
    assert by_tau[0.5] == (0.5, 0.4, 0.6) and len(calls) == 1 + len(RESAMPLING_SCHEMES) - 1
    calls.clear()
    study.sensitivity(make, scorers["oracle"], prompts, refs, [0, 1], cfg, [1.0], "last", final_answer, known={0: 0.1})
    assert len(calls) == len(RESAMPLING_SCHEMES)  # a known run for some seeds only is not used; cfg still runs once


def test_the_comparisons_smc_rows_are_the_run_sensitivity_would_repeat(setup):
    """What lets notebook 04 pass the comparison's SMC accuracies to `sensitivity` as known: the same
    configuration on the same seed's sampler gives the same result."""
    task, prompts, refs, make, scorers = setup
    cfg = SMCConfig(weighting="current", resampling="multinomial", max_steps=8)
    rows, _ = study.compare_scorers(make, {"oracle": scorers["oracle"]}, prompts, refs, [1, 2], [0, 1], progress=False,
                                    answer_fn=final_answer, m=2, smc_config=cfg, methods={"oracle": "smc,best_of_n"})
    known = study.accuracy_by_seed(rows, "smc [oracle]", 2)
    for s in (0, 1):
        assert known[s] == study.smc_accuracy(make, scorers["oracle"], prompts, refs, [s], replace(cfg, n_particles=2),
                                              "last", final_answer)[0]
