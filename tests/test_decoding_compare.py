"""Equal-budget comparison helpers and the genealogy figure."""

import math

import pytest

from prmlab.decoding.compare import budget_to_reach, compare_methods, subpool, summarize
from prmlab.decoding.search import sample_pool
from prmlab.decoding.smc import SMCConfig
from prmlab.prm.oracle import OracleScorer
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tasks.arith import ArithTask, final_answer


def test_budget_to_reach_interpolates_in_log_budget():
    curve = {1: 0.2, 2: 0.4, 4: 0.5, 8: 0.8}
    assert budget_to_reach(curve, 0.1) == 1
    assert budget_to_reach(curve, 0.4) == 2
    assert budget_to_reach(curve, 0.65) == pytest.approx(math.exp(math.log(4) + 0.5 * math.log(2)))
    assert budget_to_reach(curve, 0.9) == math.inf


def test_summarize_means_and_spread():
    rows = [{"method": "a", "n": 1, "seed": s, "accuracy": acc, "tokens": t} for s, acc, t in [(0, 0.2, 10), (1, 0.4, 30)]]
    assert summarize(rows)["a"][1] == pytest.approx((0.3, 0.2, 0.4))
    assert summarize(rows, "tokens")["a"] == {20.0: pytest.approx((0.3, 0.2, 0.4))}


@pytest.fixture(scope="module")
def setup(tiny_policy, char_tokenizer):
    task = ArithTask(n_train=0, n_eval=3, seed=0)
    prompts = [p.prompt for p in task.eval]
    scorer = OracleScorer(task, task.eval, eps=1e-3, tokenizer=char_tokenizer)
    make = lambda s: Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=24, seed=s))  # noqa: E731
    return task, prompts, scorer, make


def test_subpool_is_the_first_n_samples_with_their_cost(setup, char_tokenizer):
    task, prompts, scorer, make = setup
    pool = sample_pool(make(0), scorer, prompts, 4)
    sub = subpool(pool, 2, scorer, char_tokenizer)
    assert sub.texts == [row[:2] for row in pool.texts]
    full = subpool(pool, 4, scorer, char_tokenizer)
    assert full.budget.tokens == pool.budget.tokens and full.budget.prm_tokens == pool.budget.prm_tokens
    assert 0 < sub.budget.tokens < pool.budget.tokens
    with pytest.raises(ValueError):
        subpool(pool, 5, scorer, char_tokenizer)


def test_compare_methods_runs_every_method_at_equal_budget(setup):
    task, prompts, scorer, make = setup
    refs = [p.answer for p in task.eval]
    seen = []
    rows = compare_methods(make, scorer, prompts, refs, ns=[1, 2], seeds=[0, 1], m=2, answer_fn=final_answer,
                           smc_config=SMCConfig(weighting="current", max_steps=8), on_result=lambda r, res: seen.append(res))
    assert {(r["method"], r["n"]) for r in rows} == {(m, n) for m in ("smc", "best_of_n", "weighted_majority", "majority")
                                                     for n in (1, 2)} | {("beam_search", 2), ("dvts", 2)}
    assert len(rows) == len(seen) == 2 * 10
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["tokens"] > 0 and r["wall_time"] >= 0
        if r["method"] in ("best_of_n", "smc"):
            assert r["solutions"] == r["n"] * len(prompts)
    with pytest.raises(ValueError, match="unknown method 'magic'; valid choices: smc, beam_search"):
        compare_methods(make, scorer, prompts, refs, [1], [0], methods=("smc", "magic"), answer_fn=final_answer)


def test_genealogy_figure_marks_surviving_lineages(setup):
    from prmlab.decoding.particle_filter import smc_decode
    from prmlab.viz import genealogy_figure

    task, prompts, scorer, make = setup
    res = smc_decode(make(0), scorer, prompts[:1], SMCConfig(n_particles=4, weighting="current", max_steps=6),
                     answer_fn=final_answer)
    fig = genealogy_figure(res.problems[0].smc)
    names = [t.name for t in fig.data]
    assert names == ["lineage that died out", "lineage of a final particle", "particle"]
    steps = res.problems[0].smc.steps
    assert len(fig.data[2].x) == 4 * steps
    assert all(0 <= c <= 1 for c in fig.data[2].marker.color)


def test_a_pool_scored_later_equals_a_pool_scored_at_once(setup, char_tokenizer):
    from prmlab.decoding.search import score_pool
    from prmlab.sampling import sample

    task, prompts, scorer, make = setup
    at_once = sample_pool(make(0), scorer, prompts, 4)
    unscored = sample_pool(make(0), None, prompts, 4)
    later = score_pool(unscored, scorer)
    assert later.texts == at_once.texts and unscored.rewards is None
    for a, b in zip(later.rewards, at_once.rewards):
        assert all((x == y).all() for x, y in zip(a, b))
    assert later.budget.tokens == at_once.budget.tokens == sample(make(0), prompts, 4).num_tokens
    assert later.budget.prm_tokens == at_once.budget.prm_tokens > 0 and unscored.budget.prm_tokens == 0
    assert later.budget.wall_time > unscored.budget.wall_time
    with pytest.raises(ValueError, match="already scored"):
        score_pool(later, scorer)
    # the per-sample counts make a subpool's budget exact; without them it is recounted the same way
    sub = subpool(later, 3, scorer, char_tokenizer)
    recounted = subpool(type(later)(**{**vars(later), "tokens": None, "prm_tokens": None}), 3, scorer, char_tokenizer)
    assert sub.budget.tokens == recounted.budget.tokens and sub.budget.prm_tokens == recounted.budget.prm_tokens
    assert sub.budget.tokens == sum(int(t[:3].sum()) for t in later.tokens)


def test_equal_budgets_and_curves_read_at_a_budget():
    from prmlab.decoding.compare import EQUAL_TOKENS, equal_budget, value_at

    assert EQUAL_TOKENS == 1.1
    assert equal_budget(100, 110) and equal_budget(110, 100) and not equal_budget(100, 111)
    curve = {10: 0.2, 100: 0.4, 1000: 0.5}
    assert value_at(curve, 10) == 0.2 and value_at(curve, 100) == 0.4
    assert value_at(curve, 10 ** 1.5) == pytest.approx(0.3)  # halfway in log budget
    assert value_at(curve, 1) == 0.2 and value_at(curve, 10 ** 4) == 0.5  # the ends hold; never extrapolated
    assert math.isnan(value_at({}, 5))


def test_baseline_temperatures_parse_and_apply(setup):
    from prmlab.decoding.compare import parse_temperatures, with_temperature

    assert parse_temperatures(" 0.5,0.7 ,, 0.5") == [0.5, 0.7] and parse_temperatures("") == []
    with pytest.raises(ValueError, match="must be > 0 \\(greedy decoding always runs\\), got 0"):
        parse_temperatures("0.5,0")
    with pytest.raises(ValueError, match="'hot' is not a number"):
        parse_temperatures("hot")
    task, prompts, scorer, make = setup
    base = make(3)
    cold = with_temperature(base, 0.5)
    assert cold.config.temperature == 0.5 and cold.config.seed == 3 and base.config.temperature == 1.0
    assert cold.model is base.model and cold.config.max_new_tokens == base.config.max_new_tokens
