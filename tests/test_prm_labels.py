"""Step labels: oracle labels are the oracle's verdicts; Monte Carlo labels with a faithful completer are
the oracle's labels; smaller N reuse the first completions; costs count what was really sampled."""

import random
import re

import numpy as np
import pytest

from prmlab.prm.labels import (
    LabelSet,
    MonteCarlo,
    SamplerCompleter,
    build_label_set,
    label_quality,
    make_solutions,
    monte_carlo,
    sample_solutions,
)
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tasks.arith import ArithTask, apply_op, judge, parse_prompt, solution_with_mistake, split_steps

STEP_RE = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")



@pytest.fixture(scope="module")
def task():
    return ArithTask(n_train=0, n_eval=40)


def labelled_texts(task, n_problems=24, seed=0):
    """Per problem: the reference solution and one with an injected mistake whose answer is wrong."""
    rng = random.Random(seed)
    problems, texts, first_errors = [], [], []
    for p in task.eval:
        kind = rng.choice(["arithmetic", "carry", "skipped", "extra"])
        text, pos = solution_with_mistake(p, rng, kind)
        if judge(p, text).answer_correct:  # a mistake that cancels out: not the case under test
            continue
        problems.append(p)
        texts.append([p.reference_solution(), text])
        first_errors.append([-1, pos])
        if len(problems) == n_problems:
            break
    return problems, texts, first_errors


def faithful_continuation(prefix: str) -> str:
    """What a perfect, faithful completer writes: the remaining operations applied correctly to the value
    the prefix last stated (so a wrong prefix ends in a wrong answer, a right one in the right answer)."""
    prompt, _, body = prefix.partition("\n")
    problem = parse_prompt(prompt)
    ops, value, k = list(problem.ops), problem.start, 0
    for step in split_steps(body):
        m = STEP_RE.match(step)
        op, x = m.group(2), int(m.group(3))
        later = [j for j in range(k, len(ops)) if ops[j] == (op, x)]
        k = later[0] + 1 if later else k  # the oracle's bookkeeping of operations applied so far
        value = int(m.group(4))
    lines = []
    for op, x in ops[k:]:
        lines.append(f"{value}{op}{x}={apply_op(value, op, x)}")
        value = apply_op(value, op, x)
    return "\n".join(lines + [f"A: {value}"])


def faithful_completer(prefixes, keys, n):
    texts = [[faithful_continuation(p)] * n for p in prefixes]
    return texts, [[len(t[0]) + 1] * n for t in texts]


def noisy_completer(prefixes, keys, n):
    """Faithful or wrong depending on a hash of (prefix key, completion index): mixed outcomes."""
    texts = []
    for p, key in zip(prefixes, keys):
        good = faithful_continuation(p)
        texts.append([good if (key * 7 + j * 3) % 5 < 2 else "A: -1" for j in range(n)])
    return texts, [[len(t) + 1 for t in row] for row in texts]


def test_oracle_and_outcome_labels_are_the_oracles_verdicts(task):
    problems, texts, first_errors = labelled_texts(task)
    ls = LabelSet(problems, make_solutions(task, problems, texts))
    records = ls.records("oracle")
    assert len(records) == 2 * len(problems)
    for r, s in zip(records, ls.solutions):
        p = problems[s.problem_index]
        v = judge(p, texts[s.problem_index][s.sample_index])
        assert r.prompt == p.prompt and r.completions == split_steps(texts[s.problem_index][s.sample_index])
        assert r.labels == [float(y) for y in v.step_labels]
        assert r.meta["first_error"] == v.first_error == first_errors[s.problem_index][s.sample_index]
        assert r.meta["oracle_labels"] == v.step_labels
    for r, s in zip(ls.records("outcome"), ls.solutions):
        assert r.labels == [float(s.correct)] * len(s.steps)
        assert s.correct == (s.sample_index == 0)
    with pytest.raises(ValueError, match="valid choices: oracle, mc-hard"):
        ls.records("human")
    with pytest.raises(ValueError, match="Monte Carlo"):
        ls.records("mc-hard")


def test_sampled_solutions_carry_the_oracle_verdict(task, tiny_policy, char_tokenizer):
    sampler = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=24, seed=3))
    sols = sample_solutions(sampler, task, task.eval[:4], n_per_problem=3, batch_size=5)
    assert sols and all(s.steps for s in sols)
    for s in sols:
        v = judge(task.eval[s.problem_index], s.steps)
        assert s.oracle == v.step_labels and s.correct == v.answer_correct and 1 <= s.num_tokens <= 24


def test_mc_with_a_faithful_completer_recovers_oracle_labels(task):
    problems, texts, _ = labelled_texts(task)
    sols = make_solutions(task, problems, texts)
    mc = monte_carlo(faithful_completer, task, problems, sols, n=3)
    ls = LabelSet(problems, sols, mc)
    for r in ls.records("mc-hard"):
        assert r.labels == [float(y) for y in r.meta["oracle_labels"]]
    for r in ls.records("mc-soft"):
        assert r.labels == [float(y) for y in r.meta["oracle_labels"]]  # every completion agrees
    rows = ls.quality()
    assert [r["n"] for r in rows] == [0, 1, 2, 3]
    for r in rows[1:]:
        assert r["agreement"] == r["bad_precision"] == r["bad_recall"] == 1.0
        assert r["soft_mae"] == 0.0 and r["soft_auroc"] == 1.0
    assert rows[0]["labels"] == "outcome" and rows[0]["bad_recall"] == 1.0 and rows[0]["bad_precision"] < 1.0


def test_soft_hard_and_smaller_n_are_consistent(task):
    problems, texts, _ = labelled_texts(task, n_problems=10)
    sols = make_solutions(task, problems, texts)
    mc = monte_carlo(noisy_completer, task, problems, sols, n=5)
    assert isinstance(mc, MonteCarlo) and mc.n == 5
    soft_all = np.concatenate([np.asarray(x) for x in mc.soft_labels()])
    assert 0 < soft_all.mean() < 1 and ((soft_all > 0) & (soft_all < 1)).any()  # really mixed
    for n in range(1, 6):
        for h, soft, hard, sol in zip(mc.hits, mc.soft_labels(n), mc.hard_labels(n), sols):
            assert all(0.0 <= y <= 1.0 for y in soft)
            assert hard == [float(y > 0) for y in soft]
            assert soft == pytest.approx(h[:, :n].mean(1))  # the first n completions of the N_max run
            assert hard[-1] == soft[-1] == float(sol.correct)  # last step: the solution's own outcome
        assert mc.num_tokens(n) == sum(int(t[:, :n].sum()) for t in mc.tokens)
        assert mc.num_completions(n) == n * sum(len(s.steps) - 1 for s in sols)
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        mc.soft_labels(6)
    rows = LabelSet(problems, sols, mc).quality(ns=[1, 5])
    assert [r["completions"] for r in rows] == [0, mc.num_completions(1), mc.num_completions(5)]


def test_label_quality_counts_bad_steps():
    q = label_quality([[1, 0, 0], [1, 1]], [[1, 1, 0], [1, 0]])
    assert q["agreement"] == pytest.approx(3 / 5)
    assert q["bad_precision"] == pytest.approx(1 / 2) and q["bad_recall"] == pytest.approx(1 / 2)
    assert q["steps"] == 5 and q["bad_steps"] == 2


def test_sampler_completer_is_seeded_and_independent_of_batching(task, tiny_policy, char_tokenizer):
    sampler = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=10, seed=5))
    prefixes = [p.prompt + "1+2=3\n" for p in task.eval[:4]]
    keys = [3, 0, 7, 1]
    t4, n4 = SamplerCompleter(sampler, batch_size=64)(prefixes, keys, 4)
    t4b, n4b = SamplerCompleter(sampler, batch_size=3)(prefixes, keys, 4)  # 1 prefix (4 rows) per batch
    t2, n2 = SamplerCompleter(sampler, batch_size=7)(prefixes, keys, 2)
    assert (t4, n4) == (t4b, n4b)
    assert t2 == [row[:2] for row in t4] and n2 == [row[:2] for row in n4]
    assert len({t for row in t4 for t in row}) > 8  # completions of one prefix differ
    t4k, _ = SamplerCompleter(sampler)(prefixes[::-1], keys[::-1], 4)  # a prefix's key fixes its streams
    assert t4k == t4[::-1]


def test_mc_cost_counts_the_tokens_sampled(task, tiny_policy, char_tokenizer, monkeypatch):
    problems, texts, _ = labelled_texts(task, n_problems=2)
    sols = make_solutions(task, problems, texts)
    sampler = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=10, seed=1))
    sampled = []
    extend = sampler.extend

    def counting_extend(gen, until="end"):
        before = int(gen.n_generated.sum())
        out = extend(gen, until)
        sampled.append(int(gen.n_generated.sum()) - before)
        return out

    monkeypatch.setattr(sampler, "extend", counting_extend)
    mc = monte_carlo(sampler, task, problems, sols, n=3, batch_size=16)
    assert len(sampled) > 1  # several batches
    assert mc.num_tokens() == sum(sampled) > 0
    assert mc.num_completions() == 3 * sum(len(s.steps) - 1 for s in sols)
    again = monte_carlo(sampler, task, problems, sols, n=3, batch_size=100)
    assert all((a == b).all() for a, b in zip(mc.tokens, again.tokens))
    assert all((a == b).all() for a, b in zip(mc.hits, again.hits))


def test_build_label_set_is_deterministic(task, tiny_policy, char_tokenizer):
    kw = dict(n_per_problem=2, n_mc=2, sampling=SamplingConfig(max_new_tokens=20, seed=4), progress=False)
    a = build_label_set(tiny_policy, char_tokenizer, task, task.eval[:3], **kw)
    b = build_label_set(tiny_policy, char_tokenizer, task, task.eval[:3], **kw)
    for source in ("oracle", "mc-hard", "mc-soft", "outcome"):
        ra, rb = a.records(source), b.records(source)
        assert [(r.completions, r.labels) for r in ra] == [(r.completions, r.labels) for r in rb]
        assert len(ra) == len(a.solutions)
    assert a.mc.num_tokens() == b.mc.num_tokens()
    assert a.records("mc-soft", n=1)[0].meta["mc_n"] == 1
