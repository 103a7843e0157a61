"""The scorer protocol (`prmlab.prm.scorer`): every scorer of the library declares it, and every
incremental scorer gives each appended step the reward its own batch ``score`` gives that step, also
after ``select`` has dropped, reordered and duplicated rows; budgets count what was really read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (LlamaConfig, LlamaForTokenClassification, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForTokenClassification)

from prmlab.models import build_char_tokenizer
from prmlab.prm.adapters import MathShepherdScorer, QwenPRMScorer, TokenClassificationScorer
from prmlab.prm.likelihood import likelihood_scorer
from prmlab.prm.model import CachedPRMScorer, PRMConfig, ProcessRewardModel
from prmlab.prm.oracle import OracleScorer
from prmlab.prm.scorer import (IncrementalScorer, PrefixScorer, RescoringScorer, StepScorer, TextScorer, TextState,
                               as_incremental, score_samples)
from prmlab.tasks.arith import ArithTask

SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=0.3)
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
                 "{% endfor %}")


@pytest.fixture(scope="module")
def task():
    return ArithTask(n_train=0, n_eval=3, seed=0)


@pytest.fixture(scope="module")
def prm(tiny_policy, char_tokenizer):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.manual_seed(0)
    torch.nn.init.normal_(prm.head.weight, std=1.0)  # rewards spread over (0, 1)
    return prm.eval()


@pytest.fixture(scope="module")
def likelihood_prm(tiny_policy, char_tokenizer):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood"))
    torch.manual_seed(1)
    torch.nn.init.normal_(prm.head.weight, std=1.0)
    prm.likelihood_scale.data.fill_(0.3)  # the random policy's log-probs are near log(1/vocab)
    return prm.eval()


@pytest.fixture(scope="module")
def adapters():
    tok = build_char_tokenizer()
    tok.add_tokens(["ки"])
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>", "<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHAT_TEMPLATE

    def config(cls, **kw):
        torch.manual_seed(0)
        return cls(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                   eos_token_id=tok.eos_token_id, **SIZE, **kw)

    return {
        "math-shepherd": MathShepherdScorer(MistralForCausalLM(config(MistralConfig)), tok),
        "qwen-prm": QwenPRMScorer(Qwen2ForTokenClassification(config(Qwen2Config, num_labels=2)), tok),
        "token-classification": TokenClassificationScorer(
            LlamaForTokenClassification(config(LlamaConfig, num_labels=2)), tok),
    }


@pytest.fixture(scope="module")
def scorers(task, prm, likelihood_prm, adapters, tiny_policy, char_tokenizer):
    """Every scorer of the library, by name."""
    return {
        "prm": prm,
        "cached-prm": CachedPRMScorer(prm),
        "likelihood-prm": likelihood_prm,
        "cached-likelihood-prm": CachedPRMScorer(likelihood_prm),
        "cached-likelihood": likelihood_scorer(tiny_policy, char_tokenizer),  # the untrained baseline of 01, 02, 04
        "rescoring-prm": RescoringScorer(prm),
        "prefix-prm": PrefixScorer(prm),
        "oracle": OracleScorer(task, task.eval, eps=0.1, tokenizer=char_tokenizer),
        **adapters,
    }


INCREMENTAL = ("cached-prm", "cached-likelihood-prm", "cached-likelihood", "rescoring-prm", "prefix-prm", "oracle",
               "math-shepherd", "qwen-prm", "token-classification")


def solutions(task):
    """Three prompts with steps of different counts: the first two steps of one are wrong."""
    prompts = [p.prompt for p in task.eval]
    steps = [p.reference_steps() for p in task.eval]
    steps[1] = ["1+1=3", "3*2=5"] + steps[1][2:]
    return prompts, steps


def test_every_scorer_declares_the_protocol(scorers):
    for name, scorer in scorers.items():
        assert isinstance(scorer, StepScorer), name
        assert isinstance(scorer, IncrementalScorer) == (name in INCREMENTAL), name
        assert as_incremental(scorer) is scorer if name in INCREMENTAL else isinstance(as_incremental(scorer),
                                                                                       RescoringScorer)
    # text-based scorers share the one text state; only the KV-cached PRM keeps tensors
    assert all(isinstance(scorers[n], TextScorer) for n in INCREMENTAL if not n.startswith("cached-"))
    assert scorers["cached-prm"].select_in_place and not scorers["oracle"].select_in_place


class NoTokenCount:
    def score(self, prompts, steps):
        return [np.full(len(s), 0.5) for s in steps]


def test_a_scorer_without_a_token_count_is_not_a_step_scorer():
    assert not isinstance(NoTokenCount(), StepScorer)


class Recording(NoTokenCount):
    def __init__(self):
        self.calls = []

    def score(self, prompts, steps):
        self.calls.append((list(prompts), [list(s) for s in steps]))
        return [np.arange(len(s), dtype=float) + 100 * i for i, s in enumerate(steps)]  # says which row it was


def test_score_samples_scores_every_solution_of_every_prompt_in_one_call(scorers, task):
    """n solutions per prompt (here 2, 0 and 3) come back as [prompt][solution], each with the reward its
    own scoring gives it; the scorer is called once, on every solution in order."""
    prompts, steps = solutions(task)
    groups = [[steps[0], steps[1]], [], [steps[2], steps[0][:1], steps[1]]]
    rec = Recording()
    got = score_samples(rec, prompts, groups)
    flat = [(p, s) for p, g in zip(prompts, groups) for s in g]
    assert rec.calls == [([p for p, _ in flat], [s for _, s in flat])]
    assert [len(g) for g in got] == [2, 0, 3]
    assert [x.tolist() for g in got for x in g] == [list(np.arange(len(s)) + 100.0 * i) for i, (_, s) in enumerate(flat)]
    for name in ("prm", "oracle"):
        scored = score_samples(scorers[name], prompts, groups)
        for p, g, row in zip(prompts, groups, scored):
            for s, rewards in zip(g, row):
                np.testing.assert_allclose(rewards, scorers[name].score([p], [s])[0], atol=1e-6)


@pytest.mark.parametrize("name", INCREMENTAL)
def test_incremental_rewards_equal_batch_scores_through_select(scorers, task, name):
    scorer = scorers[name]
    prompts, steps = solutions(task)
    rows = [list(range(len(prompts)))]  # which solution each row of the state follows
    state = scorer.start(prompts)
    done = [0] * len(prompts)  # steps appended so far, per row

    def append(k_steps):
        new = [steps[r][d] if d < min(len(steps[r]), k_steps) else None for r, d in zip(rows[0], done)]
        got = scorer.append(state, new)
        assert got.shape == (len(new),)
        for j, (r, step) in enumerate(zip(rows[0], new)):
            if step is None:
                assert np.isnan(got[j])
                continue
            done[j] += 1
            want = scorer.score([prompts[r]], [steps[r][: done[j]]])[0][-1]
            assert got[j] == pytest.approx(want, abs=1e-5), (name, r, done[j])

    append(2)
    append(1)  # rows that ran out of steps get None
    # drop row 1, duplicate row 0, reorder: rows follow solutions 2, 0, 0
    index = [2, 0, 0]
    kept = scorer.select(state, index)
    assert kept.batch_size == 3 and state.batch_size == len(prompts)  # the old state is untouched
    state, rows[0], done[:] = kept, [rows[0][i] for i in index], [done[i] for i in index]
    append(len(max(steps, key=len)))
    append(len(max(steps, key=len)))
    assert state.tokens_scored > 0


@pytest.mark.parametrize("name", ["cached-prm", "cached-likelihood-prm", "cached-likelihood", "oracle", "qwen-prm"])
def test_select_in_place_equals_select(scorers, task, name):
    scorer = scorers[name]
    prompts, steps = solutions(task)
    a = scorer.start(prompts)
    scorer.append(a, [s[0] for s in steps])
    b = scorer.select(a, [1, 1, 0])
    scorer.select_(a, [1, 1, 0])
    nxt = [steps[1][1], steps[1][1], steps[0][1]]
    np.testing.assert_allclose(scorer.append(a, nxt), scorer.append(b, nxt), atol=1e-6)
    assert a.batch_size == b.batch_size == 3


@pytest.mark.parametrize("name", ["cached-prm", "oracle"])
def test_a_cached_budget_reads_each_token_once(scorers, task, name):
    """A KV-cached reader (and the oracle standing in for one) reads the prompt once and each step once:
    exactly what one pass over the whole solution reads (``count_tokens``; character tokenizer)."""
    scorer = scorers[name]
    prompt, steps = task.eval[0].prompt, task.eval[0].reference_steps()
    state = scorer.start([prompt])
    for s in steps:
        scorer.append(state, [s])
    assert state.tokens_scored == scorer.count_tokens(prompt, steps)


def test_a_rescoring_budget_reads_every_prefix(scorers, task):
    scorer = scorers["rescoring-prm"]
    prompt, steps = task.eval[0].prompt, task.eval[0].reference_steps()
    state = scorer.start([prompt])
    picked = scorer.select(state, [0, 0])  # states derived by select share the count of reads
    for s in steps:
        scorer.append(picked, [s, None])
    assert isinstance(picked, TextState)
    assert picked.tokens_scored == state.tokens_scored == sum(
        len(scorer.scorer.encode(prompt, steps[:k])[0]) for k in range(1, len(steps) + 1))


def test_prefix_scores_equal_step_scores_for_a_causal_prm(scorers, task):
    """prmlab's PRM separates steps with the newline, so a prefix read as one step is the same token
    sequence: the same reward."""
    prompts, steps = solutions(task)
    for a, b in zip(scorers["prefix-prm"].score(prompts, steps), scorers["prm"].score(prompts, steps)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert scorers["prefix-prm"].score(prompts[:1], [[]])[0].shape == (0,)
