"""PRIME's implicit PRM against independent references: two separate forward passes, its own update
done by hand, the scorer protocol, a save/load round trip."""

import copy

import numpy as np
import pytest
import torch

from prmlab.prm.implicit import ImplicitPRM, implicit_prm_loss
from prmlab.prm.scorer import IncrementalScorer, StepScorer, as_incremental
from prmlab.rl.rollouts import collect
from prmlab.sampling import Sampler, SamplingConfig

PROMPTS = ["Q: 3 +4\n", "Q: 9 -2 +1\n"]
STEPS = [["3+4=7", "A: 7"], ["9-2=7", "7+1=8", "A: 8"]]


def perturbed(model, seed=0, scale=0.05):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return m


def logprobs_of(model, ids: list[int], start: int) -> torch.Tensor:
    """Log-prob of tokens ``ids[start:]`` under ``model``, from one plain forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return lp[start - 1 : len(ids) - 1].gather(-1, torch.tensor(ids[start:])[:, None])[:, 0]


def test_implicit_prm_loss_value_and_gradient_direction():
    q_sum = torch.tensor([0.4, -1.2, 2.0], requires_grad=True)
    outcome = torch.tensor([1.0, 0.0, 0.0])
    beta = 0.5
    loss = implicit_prm_loss(q_sum, outcome, beta)
    p = torch.sigmoid(beta * q_sum.detach())
    ref = -(outcome * p.log() + (1 - outcome) * (1 - p).log()).mean()
    assert loss.item() == pytest.approx(ref.item())
    (grad,) = torch.autograd.grad(loss, q_sum)
    # gradient descent raises sum q for the correct response and lowers it for the wrong ones
    assert grad[0] < 0 and grad[1] > 0 and grad[2] > 0
    torch.testing.assert_close(grad, beta * (p - outcome) / 3)


def test_step_reward_is_beta_times_summed_log_ratio(tiny_policy, char_tokenizer):
    phi = perturbed(tiny_policy)
    prm = ImplicitPRM(phi, tiny_policy, char_tokenizer, beta=0.05, batch_size=1)
    got = prm.step_rewards(PROMPTS, STEPS)
    for prompt, steps, rewards in zip(PROMPTS, STEPS, got):
        ids = char_tokenizer(prompt).input_ids
        start = len(ids)
        bounds = []
        for s in steps:
            ids = ids + char_tokenizer(s + "\n", add_special_tokens=False).input_ids
            bounds.append(len(ids))
        ratio = logprobs_of(phi, ids, start) - logprobs_of(tiny_policy, ids, start)
        edges = [0] + [b - start for b in bounds]
        want = [0.05 * float(ratio[a:b].sum()) for a, b in zip(edges, edges[1:])]
        np.testing.assert_allclose(rewards, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(prm.score([prompt], [steps])[0], 1 / (1 + np.exp(-np.array(want))), atol=1e-6)
    untrained = ImplicitPRM(tiny_policy, tiny_policy, char_tokenizer)
    assert all(np.allclose(s, 0.5) for s in untrained.score(PROMPTS, STEPS))  # pi_phi = pi_ref: no reward


def test_implicit_prm_is_a_scorer_and_incremental_agrees_with_batch(tiny_policy, char_tokenizer):
    prm = ImplicitPRM(perturbed(tiny_policy, 1), tiny_policy, char_tokenizer)
    assert isinstance(prm, StepScorer) and isinstance(prm, IncrementalScorer) and as_incremental(prm) is prm
    state = prm.start(PROMPTS)
    first = prm.append(state, [STEPS[0][0], STEPS[1][0]])
    state = prm.select(state, [1, 0, 1])
    second = prm.append(state, [STEPS[1][1], STEPS[0][1], None])
    batch = prm.score(PROMPTS, STEPS)
    np.testing.assert_allclose(first, [batch[0][0], batch[1][0]], atol=1e-6)
    np.testing.assert_allclose(second[:2], [batch[1][1], batch[0][1]], atol=1e-6)
    assert np.isnan(second[2])
    assert prm.count_tokens(PROMPTS[0], STEPS[0]) == len(char_tokenizer(PROMPTS[0] + "3+4=7\nA: 7\n").input_ids)


@pytest.fixture(scope="module")
def rollouts(trained_policy, char_tokenizer, easy_task):
    sampler = Sampler(trained_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=0))
    return collect(sampler, easy_task, easy_task.train[:2], k=2).tokens  # the implicit PRM reads the token batch


def test_update_orders_on_two_minibatches(rollouts, trained_policy, char_tokenizer):
    """"after": minibatch 1's rewards come from pi_phi before any update, minibatch 2's from pi_phi after
    minibatch 1's update (the forward that computes each loss); "before": all from the final pi_phi."""
    ro = rollouts
    outcomes = torch.tensor([1.0, 0.0, 0.0, 1.0])
    lr, beta = 1e-2, 0.5
    start = perturbed(trained_policy, 2, 0.01)

    def fresh():
        return ImplicitPRM(start, trained_policy, char_tokenizer, beta=beta, lr=lr, batch_size=2)

    # by hand: AdamW steps on minibatch [0, 1] then [2, 3], token rewards read before each step
    hand = fresh()
    expected_after = torch.zeros_like(ro.response_mask)
    for rows in (torch.tensor([0, 1]), torch.tensor([2, 3])):
        sub = ro.rows(rows)
        t = sub.response_mask.shape[1]
        expected_after[rows, :t] = hand.token_rewards(sub)
        q = hand.log_ratio(sub, grad=True)
        loss = implicit_prm_loss((q * sub.response_mask).sum(1), outcomes[rows], beta)
        hand.optimizer.zero_grad()
        loss.backward()
        hand.optimizer.step()
    expected_before = hand.token_rewards(ro)

    after, stats = fresh().update(ro, outcomes, 2, order="after")
    before, _ = fresh().update(ro, outcomes, 2, order="before")
    assert torch.allclose(after, expected_after, atol=1e-6)
    assert torch.allclose(before, expected_before, atol=1e-6)
    assert not torch.allclose(after[2:], before[2:], atol=1e-4)  # the orders really differ
    assert 0.0 <= stats["implicit_prm/accuracy"] <= 1.0 and stats["implicit_prm/loss"] > 0
    with pytest.raises(ValueError, match="update order"):
        fresh().update(ro, outcomes, 2, order="during")


def test_update_reports_the_ranking_of_fresh_rollouts(rollouts, trained_policy, char_tokenizer):
    """The within-group AUROC that `update` reports is that of the summed log-ratios *before* the update,
    group by group (brute force: score first with a copy, then rank by hand). The labels call the
    lower-scored response of each pair correct, so that ranking is 0 and the update, which learns
    those labels, ranks differently afterwards: reading after the update could not pass."""
    from prmlab.metrics import auroc

    start = perturbed(trained_policy, 4, 0.02)
    probe = ImplicitPRM(start, trained_policy, char_tokenizer, beta=0.5, batch_size=4)
    totals = probe.token_rewards(rollouts).sum(1).double()
    outcomes = torch.tensor([float(totals[g] < totals[g + 1]) for g in (0, 2) for _ in range(2)])
    outcomes[1::2] = 1 - outcomes[0::2]
    want = np.mean([auroc(totals[g:g + 2].numpy(), outcomes[g:g + 2].numpy()) for g in (0, 2)])
    trained = ImplicitPRM(start, trained_policy, char_tokenizer, beta=0.5, lr=1e-2, batch_size=4)
    _, stats = trained.update(rollouts, outcomes, 2)
    assert want == 0.0 and stats["implicit_prm/within_group_auroc"] == pytest.approx(want)
    later = trained.token_rewards(rollouts).sum(1).double()
    assert np.mean([auroc(later[g:g + 2].numpy(), outcomes[g:g + 2].numpy()) for g in (0, 2)]) > 0.0


def test_defaults_are_the_published_recipe():
    """verl's PRIME recipe: beta 0.05, the PRM at 1e-6 (twice the policy's 5e-7), update "before", returns
    mixed 5:5 after each source's RLOO, batch_norm on, accuracy filter [0.2, 0.8]."""
    import inspect

    from prmlab.rl.prime_arms import PrimeSettings
    from prmlab.rl.loop import RLConfig

    s = PrimeSettings()
    assert (s.beta, s.prm_lr, s.update_order, s.process_coef, s.outcome_coef, s.batch_norm) == (
        0.05, 1e-6, "before", 5.0, 5.0, True)
    assert inspect.signature(ImplicitPRM.update).parameters["order"].default == "before"
    assert inspect.signature(ImplicitPRM).parameters["lr"].default == 1e-6
    cfg = RLConfig()
    assert (cfg.filter_low, cfg.filter_high, cfg.ppo_epochs, cfg.kl_coef) == (0.2, 0.8, 1, 0.0)


def test_update_raises_the_reward_of_correct_responses(rollouts, trained_policy, char_tokenizer):
    """One small update on one response moves its summed implicit reward up if it is labelled correct and
    down if it is labelled wrong. The step is small so that the first-order change decides: AdamW's first
    step moves every parameter by about ``lr`` whatever its gradient, and at 1e-3 (where second-order effects
    of that sign step can decide) the test failed alone and passed in the full suite, whose fixtures draw
    other rollouts; at 1e-5 it passes both ways."""
    for label in (1.0, 0.0):
        one = rollouts.rows([0])
        prm = ImplicitPRM(trained_policy, trained_policy, char_tokenizer, beta=0.5, lr=1e-5, batch_size=1)
        before = float(prm.token_rewards(one).sum())
        prm.update(one, torch.tensor([label]), 1)
        after = float(prm.token_rewards(one).sum())
        assert (after > before) if label == 1.0 else (after < before)


def test_save_and_load_keep_the_scores(tmp_path, tiny_policy, char_tokenizer):
    prm = ImplicitPRM(perturbed(tiny_policy, 3), tiny_policy, char_tokenizer, beta=0.1)
    prm.save(tmp_path / "implicit")
    back = ImplicitPRM.load(tmp_path / "implicit", device="cpu")
    assert back.beta == 0.1
    for a, b in zip(prm.score(PROMPTS, STEPS), back.score(PROMPTS, STEPS)):
        np.testing.assert_allclose(a, b, atol=1e-6)
