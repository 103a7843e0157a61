"""The policy's self-certainty (notebook 00) against brute-force computations, and the likelihood
baseline and clean backbone of notebook 01."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prmlab import evaluation, headlines, self_certainty as sc
from prmlab.metrics import auroc
from prmlab.prm import train as prm_train
from prmlab.prm.backbone import clean_backbone, prm_backbone
from prmlab.prm.likelihood import likelihood_prm
from prmlab.prm.model import LIKELIHOOD_BIAS
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tasks import get_task
from prmlab.tasks.arith import Problem, judge


@pytest.fixture(scope="module")
def misconceived_task():
    return get_task("arith", n_train=300, n_eval=6, seed=0, misconceptions="no-carry", min_ops=2, max_ops=3)


@pytest.fixture(scope="module")
def sampled(tiny_policy, char_tokenizer, misconceived_task):
    sampler = Sampler(tiny_policy, char_tokenizer, SamplingConfig(temperature=1.0, max_new_tokens=40, seed=0))
    return evaluation.evaluate(sampler, misconceived_task, misconceived_task.eval, n=8, progress=False)


def test_first_wrong_token_is_where_the_text_leaves_the_right_step(char_tokenizer):
    ids = char_tokenizer("17+5=12\n", add_special_tokens=False).input_ids
    assert sc.first_wrong_token(char_tokenizer, ids, (0, len(ids)), "17+5=22") == 5  # the '1' of 12
    short = char_tokenizer("17+5=2\n", add_special_tokens=False).input_ids
    assert sc.first_wrong_token(char_tokenizer, short, (0, len(short)), "17+5=22") == 6  # stops early: the newline
    assert sc.first_wrong_token(char_tokenizer, ids, (0, len(ids)), "") == 0  # nothing was expected


def test_first_error_probabilities_equal_a_forward_pass(tiny_policy, char_tokenizer, sampled):
    records = sc.first_error_probabilities(sampled, char_tokenizer)
    assert records, "a random policy errs"
    s = sampled.samples
    for rec in records[:10]:
        r = rec["problem"] * s.n + rec["sample"]
        v = sampled.verdicts[rec["problem"]][rec["sample"]]
        # brute force: the first character of the first wrong step that differs from the right step,
        # and its probability under a fresh forward pass over prompt + generated tokens
        a, b = s.step_spans[r][v.first_error]
        step_text = char_tokenizer.decode(s.token_ids[r][a:b])
        expected = v.steps[v.first_error].expected
        lead = len(step_text) - len(step_text.lstrip("\n"))
        k = next((i for i, ch in enumerate(step_text.lstrip("\n")) if i >= len(expected) or ch != expected[i]),
                 len(step_text.lstrip("\n")) - 1)
        t = a + lead + k
        ids = torch.tensor([s.prompt_ids[r] + s.token_ids[r]])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_policy(input_ids=ids).logits[0].double(), -1)
        pos = len(s.prompt_ids[r]) + t
        assert rec["prob"] == pytest.approx(math.exp(float(logp[pos - 1, ids[0, pos]])), rel=1e-3, abs=1e-6)
        assert rec["kind"] == v.kinds[v.first_error]


def test_confidence_summary_on_hand_made_records():
    records = [{"kind": "misconception", "prob": 0.9}, {"kind": "misconception", "prob": 0.6},
               {"kind": "arithmetic", "prob": 0.1}, {"kind": "arithmetic", "prob": 0.5}]
    m = sc.confidence_summary(records)
    assert m["selfcert/confident_share"] == 0.75  # 0.5 counts as confident
    assert m["selfcert/confident_share/misconception"] == 1.0 and m["selfcert/confident_share/arithmetic"] == 0.5
    assert m["selfcert/first_wrong_prob_median"] == pytest.approx(0.55)
    assert sc.confidence_summary([]) == {"selfcert/errors": 0.0}


def test_likelihood_scores_are_the_minimum_over_counted_tokens(char_tokenizer, sampled):
    scores = sc.likelihood_scores(sampled.samples, char_tokenizer)
    s = sampled.samples
    nl, eos = char_tokenizer("\n", add_special_tokens=False).input_ids[0], char_tokenizer.eos_token_id
    for r in range(0, len(s.texts), 7):
        want = min((float(lp) for t, lp in zip(s.token_ids[r], s.logprobs[r].tolist()) if t not in (nl, eos)), default=0.0)
        assert scores[r // s.n][r % s.n] == pytest.approx(want)


def test_likelihood_equals_the_likelihood_scorer_at_temperature_one(tiny_policy, char_tokenizer, misconceived_task, sampled):
    """Two implementations of the policy's running minimum: the sampler's log-probs and the untrained
    likelihood PRM (a separate forward pass) rank the solutions alike: sigmoid(bias + m) is monotone."""
    scores = sc.likelihood_scores(sampled.samples, char_tokenizer)
    prm = likelihood_prm(tiny_policy, char_tokenizer)
    from prmlab.prm.reranking import aggregate, score_evaluation

    last = aggregate(score_evaluation(prm, misconceived_task, sampled), "last")
    for i in range(len(scores)):
        for j in range(len(scores[i])):
            if sampled.samples.steps[i * sampled.n + j] and not sampled.samples.truncated[i * sampled.n + j]:
                want = 1 / (1 + math.exp(-(LIKELIHOOD_BIAS + scores[i][j])))
                assert last[i][j] == pytest.approx(want, abs=2e-3)


def test_likelihood_aurocs_by_kind_brute_force():
    class Ev:  # two problems, hand-made verdicts
        pass

    p = Problem(17, (("+", 5),))
    texts = [["17+5=22\nA: 22", "17+5=12\nA: 12", "17+5=23\nA: 23"], ["17+5=22\nA: 22", "17+5=12\nA: 12", "17+5=22\nA: 22"]]
    ev = Ev()
    ev.verdicts = [[judge(p, t, ("no-carry",)) for t in row] for row in texts]
    ev.correct = np.array([[v.answer_correct for v in row] for row in ev.verdicts])
    scores = [[-1.0, -0.2, -3.0], [-0.5, -0.1, -0.4]]
    m = sc.likelihood_aurocs(scores, ev, [True, False])
    # problem 0: right (-1) vs misconceived (-0.2) and slip (-3): 0.5; problem 1: right (-0.5, -0.4) vs -0.1: 0
    assert m["selfcert/likelihood_within_auroc"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["selfcert/likelihood_within_auroc/misconception_problems"] == pytest.approx(0.5)
    assert m["selfcert/likelihood_within_auroc/misconception"] == pytest.approx(0.0)  # ranked above the right ones
    assert m["selfcert/likelihood_within_auroc/arithmetic"] == pytest.approx(1.0)  # only problem 0 has one
    assert auroc([-1.0, -0.2], [1, 0]) == 0.0


def test_greedy_metrics_split_by_flag():
    m = sc.greedy_metrics([True, False, True, True], [True, True, False, False])
    assert m == {"eval/greedy_accuracy": 0.75, "eval/greedy_accuracy/misconception_problems": 0.5,
                 "eval/greedy_accuracy/other_problems": 1.0}
    task = get_task("arith", n_train=10, n_eval=30, misconceptions="no-carry")
    flags = sc.misconception_problems(task, task.eval)
    assert any(flags) and not all(flags)
    assert not any(sc.misconception_problems(get_task("arith", n_train=10, n_eval=30), task.eval))


def test_self_certainty_headline_reads_each_target():
    said = headlines.self_certainty({"eval/greedy_accuracy": 0.6, "eval/pass_at_16": 0.9, "selfcert/confident_share": 0.2,
                                     "selfcert/likelihood_within_auroc/misconception_problems": 0.5,
                                     "selfcert/likelihood_within_auroc": 0.7})
    assert len(said) == 3
    assert "holds" in said[0] and "does not hold" in said[1] and "holds" in said[2] and "0.300 below" in said[0]


def test_clean_backbone_has_the_policy_shape_and_learns_only_references(tiny_policy, char_tokenizer, misconceived_task):
    model = clean_backbone(tiny_policy, char_tokenizer, misconceived_task, steps=2, batch_size=4, progress=False)
    assert model.config.to_dict()["hidden_size"] == tiny_policy.config.hidden_size
    assert model is not tiny_policy and not model.training
    assert prm_backbone("policy", tiny_policy, char_tokenizer, misconceived_task) is tiny_policy
    with pytest.raises(ValueError, match="clean"):
        prm_backbone("bogus", tiny_policy, char_tokenizer, misconceived_task)


def test_untrained_model_and_dev_split(tiny_policy, char_tokenizer, misconceived_task):
    from prmlab.prm.model import PRMConfig

    prm = prm_train.untrained_model(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood", freeze_backbone=True))
    lik = likelihood_prm(tiny_policy, char_tokenizer)
    prompts, steps = ["Q: 3 +4\n"], [["3+4=7", "A: 7"]]
    np.testing.assert_allclose(prm.score(prompts, steps)[0], lik.score(prompts, steps)[0])  # before training: the likelihood
    task = get_task("arith", n_train=30, n_eval=5)
    assert prm_train.eval_problems(task, "eval", 20, 5) == task.eval
    assert prm_train.eval_problems(task, "dev", 20, 5) == task.train[20:25]
    with pytest.raises(ValueError, match="dev split needs"):
        prm_train.eval_problems(task, "dev", 28, 5)
    with pytest.raises(ValueError, match="eval_split"):
        prm_train.eval_problems(task, "test", 20, 5)
