"""The LM binding of SMC and the search baselines: against the generic core run per problem, against
fresh forward passes and independent sampling, and with a perfect verifier (the arithmetic oracle)."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch

from prmlab.decoding.particle_filter import problem_rngs, smc_decode, step_log_potentials
from prmlab.decoding.potentials import log_potential
from prmlab.decoding.results import choose
from prmlab.decoding.rows import RowBatch, fresh_stream
from prmlab.decoding.search import beam_search, best_of_n, dvts, majority, sample_pool, weighted_majority
from prmlab.decoding.smc import SMCConfig, SMCModel, lineage, run_smc
from prmlab.prm.oracle import OracleScorer
from prmlab.prm.scorer import RescoringScorer
from prmlab.sampling import Sampler, SamplingConfig, decode_steps, sample
from prmlab.tasks.arith import ArithTask, final_answer, solution_with_mistake

PROMPTS = ["Q: 1 +2\n", "Q: 17 *3 -5\n", "Q: 4 -1 *2 +9\n"]


class HashScorer:
    """A toy PRM for a random policy: a fixed pseudo-random reward in (0, 1) per (prompt, prefix); a
    character counts as a token."""

    def score(self, prompts, steps):
        return [np.array([(zlib.crc32((p + "\n".join(s[: k + 1])).encode()) % 997 + 0.5) / 997
                          for k in range(len(s))]) for p, s in zip(prompts, steps)]

    def count_tokens(self, prompt, steps):
        return len(prompt) + sum(len(s) + 1 for s in steps)


@pytest.fixture(scope="module")
def task():
    return ArithTask(n_train=0, n_eval=200)


@pytest.fixture(scope="module")
def tiny_sampler(tiny_policy, char_tokenizer):
    return Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=3))


@pytest.fixture(scope="module")
def trained_sampler(trained_policy, char_tokenizer):
    return Sampler(trained_policy, char_tokenizer, SamplingConfig(max_new_tokens=48, seed=0))


# ---- the oracle scorer ---------------------------------------------------------------------------


def test_oracle_scorer_labels_prefixes_and_is_incremental(task):
    problem = task.eval[0]
    scorer = OracleScorer(task, task.eval[:5], eps=0.1)
    good = problem.reference_steps()
    bad, pos = solution_with_mistake(problem, random.Random(0), "arithmetic")
    bad = bad.split("\n")
    assert scorer.score([problem.prompt], [good])[0].tolist() == [0.9] * len(good)
    assert scorer.score([problem.prompt], [bad])[0].tolist() == [0.9] * pos + [0.1] * (len(bad) - pos)
    joined = ["\n".join(bad[: k + 1]) for k in range(len(bad))]  # a whole prefix read as one step
    assert [scorer.score([problem.prompt], [[j]])[0][0] for j in joined] == [0.9] * pos + [0.1] * (len(bad) - pos)
    state = scorer.select(scorer.start([problem.prompt]), [0, 0])
    rewards = np.array([scorer.append(state, [a, b]) for a, b in zip(good, bad)]).T
    assert rewards.tolist() == [[0.9] * len(good), [0.9] * pos + [0.1] * (len(bad) - pos)]
    assert state.tokens_scored == len(problem.prompt) + sum(len(s) + 1 for s in good + bad)
    with pytest.raises(KeyError, match="no problem"):
        scorer.start(["Q: 1 +1\n"])


# ---- exactness of the batched binding ------------------------------------------------------------


def core_model(sampler, scorer, prompt, problem_id, config, aggregation, potential):
    """The same particles driven by the generic core, one problem at a time (the reference)."""
    batch = RowBatch(sampler, scorer, [prompt], config.n_particles, aggregation, problem_ids=[problem_id])
    rows = np.arange(config.n_particles)
    return batch, SMCModel(
        init=lambda n, rng: rows,
        extend=lambda p, alive, rng: (batch.step(), rows)[1],
        log_potential=lambda p, t: step_log_potentials(batch, aggregation, potential, config.weighting),
        is_finished=lambda p: batch.finished,
        select=lambda p, index: (batch.select(index), rows)[1],
    )


@pytest.mark.parametrize("weighting,scheme,threshold,potential", [
    ("current", "multinomial", 1.0, "logit"),
    ("ratio", "systematic", 0.6, "log"),
    ("incremental", "residual", 0.8, "logit"),
])
def test_batched_smc_equals_core_per_problem(tiny_sampler, weighting, scheme, threshold, potential):
    config = SMCConfig(n_particles=5, weighting=weighting, resampling=scheme, ess_threshold=threshold,
                       temperature=0.5, max_steps=12, seed=4)
    out = smc_decode(tiny_sampler, HashScorer(), PROMPTS, config, aggregation="min", potential=potential,
                     answer_fn=final_answer)
    assert [out.params[k] for k in ("resampling", "ess_threshold", "weighting")] == [scheme, threshold, weighting]
    rngs = problem_rngs(config.seed, len(PROMPTS))
    resampled_somewhere = False
    for i, prompt in enumerate(PROMPTS):
        batch, model = core_model(tiny_sampler, HashScorer(), prompt, i, config, "min", potential)
        ref = run_smc(model, config, rng=rngs[i])
        got = out.problems[i].smc
        assert got.steps == ref.steps
        assert got.particles == [batch.text(r) for r in range(batch.size)]
        np.testing.assert_allclose(got.log_weights, ref.log_weights, atol=1e-12)
        np.testing.assert_allclose(got.log_marginal, ref.log_marginal, atol=1e-9)
        for g, r in zip(got.history, ref.history):
            assert (g.ancestors == r.ancestors).all() and g.resampled == r.resampled
            np.testing.assert_allclose(g.log_potentials, r.log_potentials, atol=1e-12)
            resampled_somewhere |= bool((g.ancestors != np.arange(5)).any())
        assert lineage(got, 0)[-1] == 0
    assert resampled_somewhere


def fresh_logprobs(model, ids, n_prompt):
    logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return logp[n_prompt - 1 : len(ids) - 1].gather(-1, torch.tensor(ids[n_prompt:])[:, None])[:, 0]


def test_reordered_cache_is_exact(tiny_sampler, tiny_policy):
    """After resampling with duplicates, every finished row's log-probs equal a fresh forward pass over
    its whole sequence, and a row that kept an original stream reads exactly as independent sampling."""
    n = 4
    batch = RowBatch(tiny_sampler, HashScorer(), PROMPTS, n)
    pool = sample_pool(tiny_sampler, None, PROMPTS, n)
    rng = np.random.default_rng(0)
    streams = []
    while True:
        batch.step()
        gen = batch.gen
        for r in np.flatnonzero(gen.finished.numpy()):  # each row is checked once, when it finishes
            ids = gen.prompt_ids[r] + gen.token_ids(r)
            ref = fresh_logprobs(tiny_policy, ids, len(gen.prompt_ids[r]))
            assert torch.allclose(gen.token_logprobs(r), ref, atol=1e-5)
            s = int(gen.stream[r])
            if s < fresh_stream(0, 0):  # stream i * n + j all along: the same text as sample j of prompt i
                assert tiny_sampler.texts(gen)[r] == pool.texts[s // n][s % n]
            streams.append(s)
        if batch.finished.all():
            break
        batch.select(np.concatenate([i * n + np.sort(rng.integers(0, n // 2, n)) for i in range(len(PROMPTS))]))
    assert min(streams) < fresh_stream(0, 0) <= max(streams)  # both kinds were checked


@pytest.mark.parametrize("delimiter", ["\n", "\n\n"])
def test_rows_score_the_steps_samples_find(tiny_policy, char_tokenizer, delimiter):
    """One rule for a step's text (`sampling.decode_steps`): a growing row hands its scorer the text of
    each step span as it ends, and `sample` finds the same steps in the finished text (but that it folds a
    blank step, which a growing row scores as it comes, into the next one)."""
    sampler = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=5), step_delimiter=delimiter)
    n = 4
    batch = RowBatch(sampler, HashScorer(), PROMPTS, n)  # row j of prompt i: stream i * n + j, as in `sample`
    for _ in range(40):
        if batch.finished.all():
            break
        batch.step()
    whole = sample(sampler, PROMPTS, n)
    eos = set(sampler.eos_ids.tolist())
    for r in range(batch.size):  # no select: row r still sits in row r of the generation
        assert batch.text(r) == whole.texts[r]
        ids = batch.gen.token_ids(r)
        seen = batch.state.steps[r]
        assert seen == decode_steps(char_tokenizer, [ids[a:b] for a, b in batch.gen.step_spans(r)], eos, delimiter)
        assert [s for s in seen if s.strip()] == whole.steps[r]


def test_no_resampling_is_independent_sampling_and_budgets_add_up(tiny_sampler, task):
    n, prompts = 4, [p.prompt for p in task.eval[:3]]
    scorer = OracleScorer(task, task.eval[:3])  # counts a character as a token
    pool = sample_pool(tiny_sampler, scorer, prompts, n)
    out = smc_decode(tiny_sampler, scorer, prompts, SMCConfig(n_particles=n, ess_threshold=0.0, weighting="current"),
                     answer_fn=final_answer)
    assert [p.texts for p in out.problems] == pool.texts
    assert all(not h.resampled for p in out.problems for h in p.smc.history)
    # every generated token is counted once; PRM tokens: prompts once per problem vs once per solution
    assert out.budget.tokens == pool.budget.tokens == sample(tiny_sampler, prompts, n).num_tokens
    assert out.budget.prm_tokens == pool.budget.prm_tokens - (n - 1) * sum(len(p) for p in prompts)
    assert out.budget.solutions == pool.budget.solutions == n * len(prompts)
    assert out.budget.wall_time > 0


def test_infinite_temperature_removes_selection_pressure(tiny_sampler):
    n = 4
    config = SMCConfig(n_particles=n, temperature=1e12, weighting="current", resampling="systematic")
    out = smc_decode(tiny_sampler, HashScorer(), PROMPTS, config, answer_fn=final_answer)
    pool = sample_pool(tiny_sampler, None, PROMPTS, n)
    for p, texts in zip(out.problems, pool.texts):
        np.testing.assert_allclose(p.weights, 1 / n, rtol=1e-9)
        assert all(h.resampled and (h.ancestors == np.arange(n)).all() for h in p.smc.history[1:])
        assert p.texts == texts  # uniform systematic resampling keeps every particle: plain sampling


def test_prefix_aggregation_equals_last_for_a_causal_prm(tiny_sampler, tiny_policy, char_tokenizer):
    from prmlab.prm.model import CachedPRMScorer, ProcessRewardModel

    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.nn.init.normal_(prm.head.weight, std=1.0)
    config = SMCConfig(n_particles=3, max_steps=6, weighting="current")
    kw = dict(answer_fn=final_answer)
    last = smc_decode(tiny_sampler, CachedPRMScorer(prm), PROMPTS[:2], config, aggregation="last", **kw)
    prefix = smc_decode(tiny_sampler, prm, PROMPTS[:2], config, aggregation="prefix", **kw)
    rescored = smc_decode(tiny_sampler, RescoringScorer(prm), PROMPTS[:2], config, aggregation="last", **kw)
    for a, b, c in zip(last.problems, prefix.problems, rescored.problems):
        assert a.texts == b.texts == c.texts
        for x, y, z in zip(a.step_rewards, b.step_rewards, c.step_rewards):
            np.testing.assert_allclose(x, y, atol=1e-5)
            np.testing.assert_allclose(x, z, atol=1e-5)
    # the prefix variants re-read the whole prefix every step
    assert prefix.budget.prm_tokens > last.budget.prm_tokens
    assert rescored.budget.prm_tokens > last.budget.prm_tokens


# ---- answer selection, configuration ------------------------------------------------------------


def test_weighted_majority_chooses_the_answer_with_most_weight():
    answers, weights = [1, 2, 2, 3, None], np.array([0.4, 0.25, 0.2, 0.1, 0.05])
    assert choose(answers, weights, "max_weight") == 0
    assert answers[choose(answers, weights, "weighted_majority")] == 2
    assert choose(answers, weights, "weighted_majority") == 1  # the heaviest solution with that answer
    assert choose([None, None], np.array([0.2, 0.8]), "weighted_majority") == 1
    with pytest.raises(ValueError, match="valid choices"):
        choose(answers, weights, "best")


def test_smc_weighted_majority_answer_has_the_most_weight(tiny_sampler):
    answer_fn = lambda text: len(text) % 3  # noqa: E731 (any answer will do)
    config = SMCConfig(n_particles=6, weighting="current", max_steps=4)
    out = smc_decode(tiny_sampler, HashScorer(), PROMPTS, config, select_answer="weighted_majority",
                     answer_fn=answer_fn)
    for p in out.problems:
        totals = {a: sum(w for b, w in zip(p.answers, p.weights) if b == a) for a in p.answers}
        assert totals[p.answer] == max(totals.values()) and p.answer == answer_fn(p.text)
        np.testing.assert_allclose(p.weights.sum(), 1.0)


def test_bad_arguments_name_the_valid_choices(tiny_sampler):
    for kwargs in (dict(aggregation="median"), dict(potential="exp"), dict(select_answer="vote")):
        with pytest.raises(ValueError, match="valid choices"):
            smc_decode(tiny_sampler, HashScorer(), PROMPTS[:1], SMCConfig(n_particles=2), answer_fn=final_answer,
                       **kwargs)
    with pytest.raises(ValueError, match="multiple of m"):
        beam_search(tiny_sampler, HashScorer(), PROMPTS[:1], n=6, m=4, answer_fn=final_answer)


def test_search_structure_and_budgets(tiny_sampler):
    n, m = 4, 2
    beam = beam_search(tiny_sampler, HashScorer(), PROMPTS, n, m, aggregation="prod", answer_fn=final_answer)
    tree = dvts(tiny_sampler, HashScorer(), PROMPTS, n, m, select_answer="weighted_majority", answer_fn=final_answer)
    for res in (beam, tree):
        assert res.budget.tokens > 0 and res.budget.prm_tokens > 0 and res.budget.solutions >= len(PROMPTS)
    for p in beam.problems:
        assert 1 <= len(p.texts) <= n and list(p.weights) == sorted(p.weights, reverse=True)
        assert p.chosen == 0 and all(len(r) > 0 for r in p.step_rewards)
    assert all(len(p.texts) == n // m for p in tree.problems)


# ---- with a perfect verifier --------------------------------------------------------------------


def test_oracle_guided_search_beats_random_choice(trained_sampler, easy_task):
    dev_sampler, task = trained_sampler, easy_task
    problems, n = task.eval[:30], 8
    prompts, refs = [p.prompt for p in problems], [p.answer for p in problems]
    oracle = OracleScorer(task, problems, eps=1e-3)
    kw = dict(answer_fn=final_answer)
    pool = sample_pool(dev_sampler, oracle, prompts, n)
    bon = best_of_n(pool, **kw)
    random_choice = np.mean([[a == r for a in p.answers] for p, r in zip(bon.problems, refs)])
    smc = smc_decode(dev_sampler, oracle, prompts, SMCConfig(n_particles=n, weighting="current"), **kw)
    beam = beam_search(dev_sampler, oracle, prompts, n, 2, **kw)
    tree = dvts(dev_sampler, oracle, prompts, n, 2, **kw)
    accs = {r.method: r.accuracy(refs) for r in (smc, beam, tree, bon, weighted_majority(pool, **kw))}
    assert all(a >= random_choice + 0.2 for a in accs.values()), (random_choice, accs)
    assert majority(pool, **kw).accuracy(refs) <= accs["best_of_n"]
    for p in smc.problems:  # max_weight: the particle with the highest final weight
        assert p.weights[p.chosen] == p.weights.max()


def test_log_potential_is_logit_or_log_and_finite_at_the_ends():
    r = np.array([0.0, 0.25, 0.5, 1.0])
    logit, log = log_potential(r, "logit"), log_potential(r, "log")
    assert np.isfinite(logit).all() and np.isfinite(log).all()
    np.testing.assert_allclose(logit[1:3], [np.log(0.25 / 0.75), 0.0])
    np.testing.assert_allclose(log[1:3], np.log([0.25, 0.5]))
    assert logit[0] < logit[1] < logit[2] < logit[3] and logit[0] == -logit[3]  # eps clip is symmetric
    with pytest.raises(ValueError, match="unknown potential 'exp'; valid choices: logit, log"):
        log_potential(r, "exp")
