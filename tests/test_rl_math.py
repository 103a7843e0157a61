"""Tests for the numerical core of prmlab.rl: each function against an independent reference (brute
force loops, hand computations, autograd, torch.distributions) or a property that must hold."""

import math

import numpy as np
import pytest
import torch

from prmlab.rl.advantages import (
    group_normalize,
    grouped,
    masked_mean,
    masked_whiten,
    returns_to_go,
    rloo,
    step_level_rloo,
    token_level_rloo,
)
from prmlab.rl.credit import (
    add_outcome_reward,
    choose_outcome_prompts,
    min_form,
    min_form_weights,
    place_on_last_response_token,
    place_on_last_tokens,
    step_rewards_from_prob,
    sum_form,
)
from prmlab.rl.ppo import kl_estimate, kl_reward, ppo_clip_loss
from prmlab.rl.prime import (
    filter_groups,
    outcome_rloo,
    prime_returns,
    process_rloo,
    scale_by_max_return,
)
from prmlab.tokens import entropy_from_logits, token_logprobs



@pytest.fixture(autouse=True)
def float64():
    """Exact comparisons with the float64 references below; restored for the other test modules."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def random_batch(seed: int, B: int = 8, T: int = 7):
    """Token rewards, a prefix mask with lengths 1..T, and the same rewards with NaN garbage at
    masked positions."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    rewards = torch.where(mask, torch.randn(B, T, generator=g), 0.0)
    garbage = torch.where(mask, rewards, torch.nan)
    return rewards, mask, garbage


def contiguous_spans(step_lengths):
    """Spans of consecutive steps with the given token lengths."""
    spans, start = [], 0
    for n in step_lengths:
        spans.append((start, start + n))
        start += n
    return spans


# ---------------------------------------------------------------- group baselines


def test_rloo_matches_brute_force_leave_one_out():
    r = torch.randn(12, generator=torch.Generator().manual_seed(0))
    K = 4
    brute = torch.tensor(
        [float(r[i]) - np.mean([float(r[j]) for j in range(i // K * K, i // K * K + K) if j != i]) for i in range(12)]
    )
    torch.testing.assert_close(rloo(r, K), brute)
    assert torch.equal(rloo(torch.full((8,), 0.7), 4), torch.zeros(8))
    assert rloo(torch.tensor([1, 0, 0, 1]), 2).tolist() == [1.0, -1.0, -1.0, 1.0]  # ints become floats


def test_group_baselines_reject_bad_groups():
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rloo(torch.randn(4), 1)
    with pytest.raises(ValueError, match="whole number of groups"):
        rloo(torch.randn(6), 4)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        group_normalize(torch.randn(4), 1)
    assert grouped(torch.arange(6), 3).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_group_normalize_matches_numpy():
    r = torch.randn(12, generator=torch.Generator().manual_seed(1))
    ref = np.concatenate([(g - g.mean()) / (g.std(ddof=1) + 1e-6) for g in r.numpy().reshape(3, 4)])
    torch.testing.assert_close(group_normalize(r, 4), torch.from_numpy(ref))
    assert torch.equal(group_normalize(torch.full((4,), 2.0), 4), torch.zeros(4))


# ---------------------------------------------------------------- masked statistics and returns


def test_masked_mean_and_whiten_match_numpy_on_selected_entries():
    x, mask, garbage = random_batch(2)
    sel = x[mask].numpy()
    assert float(masked_mean(garbage, mask)) == pytest.approx(sel.mean())
    rows = masked_mean(garbage, mask, dim=-1)
    assert rows.tolist() == pytest.approx([x[i][mask[i]].mean().item() for i in range(len(x))])
    w = masked_whiten(garbage, mask.float())  # a 0/1 float mask works too
    np.testing.assert_allclose(w[mask].numpy(), (sel - sel.mean()) / np.sqrt(sel.var(ddof=1) + 1e-8))
    assert torch.equal(w[~mask], torch.zeros(int((~mask).sum())))
    kept = masked_whiten(garbage, mask, shift_mean=False)
    np.testing.assert_allclose(kept[mask].numpy(), w[mask].numpy() + sel.mean())
    assert float(masked_mean(x, torch.zeros_like(mask))) == 0.0  # empty selection


def test_returns_to_go_matches_python_loop():
    x, mask, garbage = random_batch(3)
    ref = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for t in range(x.shape[1]):
            if mask[i, t]:
                ref[i, t] = sum(float(x[i, s]) for s in range(t, x.shape[1]) if mask[i, s])
    torch.testing.assert_close(returns_to_go(garbage, mask), ref)


# ---------------------------------------------------------------- PURE's token- and step-level baselines


def test_token_level_rloo_matches_a_loop_over_the_group():
    x, mask, garbage = random_batch(4)
    K, T = 4, x.shape[1]
    G = returns_to_go(x, mask)
    ref = torch.zeros_like(x)
    for i in range(x.shape[0]):
        others = [j for j in range(i // K * K, i // K * K + K) if j != i]
        b = sum(float(G[j].sum()) for j in others) / ((K - 1) * T)
        for t in range(T):
            ref[i, t] = (float(G[i, t]) - b) if mask[i, t] else 0.0
    torch.testing.assert_close(token_level_rloo(garbage, mask, K, whiten=False), ref)
    torch.testing.assert_close(token_level_rloo(garbage, mask, K), masked_whiten(ref, mask))


def test_step_level_rloo_matches_a_loop_over_the_group():
    K, T = 2, 6
    step_rewards = [torch.tensor([0.5, -0.2]), torch.tensor([0.9]), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([])]
    spans = [[(0, 2), (2, 5)], [(0, 6)], [(0, 1), (1, 3), (3, 4)], []]
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1] * 6, [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    per_step = [0.15, 0.9, 0.2, 0.0]  # mean reward per step; 0 without steps
    baselines = [0.9, 0.15, 0.0, 0.2]  # the other response's per-step mean (K = 2)
    ref = torch.zeros(4, T)
    for i, (r, sp) in enumerate(zip(step_rewards, spans)):
        assert per_step[i] == pytest.approx(float(r.sum()) / max(len(r), 1))
        for (_, end), v in zip(sp, r.tolist()):
            ref[i, :end] += v - baselines[i]  # a reward on token end-1 is in the return of tokens < end
    ref = torch.where(mask, ref, 0.0)
    torch.testing.assert_close(step_level_rloo(step_rewards, spans, mask, K, whiten=False), ref)
    torch.testing.assert_close(step_level_rloo(step_rewards, spans, mask, K), masked_whiten(ref, mask))


def test_pure_counterexample_more_steps_changes_only_the_step_baseline():
    """PURE issue #2: the same text cut into two steps (A) or one (B). With min-form rewards the
    first step of A is worth ~0 and A's second step, the worst, carries min(r1, r2), which is also
    B's single-step reward, so A and B have the same token rewards: they must get the same advantage.
    A third response C fills the group."""
    T, K = 6, 3
    r1, r2 = 0.9, 0.5
    a = min_form(torch.tensor([r1, r2]), temperature=0.01)
    assert a.tolist() == pytest.approx([0.0, r2], abs=1e-12)
    step_rewards = [a, torch.tensor([r2]), torch.tensor([-0.3, 0.8])]
    spans = [[(0, 3), (3, 6)], [(0, 6)], [(0, 2), (2, 4)]]
    mask = torch.tensor([[1] * 6, [1] * 6, [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    token = sum_form(step_rewards, spans, T)
    torch.testing.assert_close(token[0], token[1])
    adv_token = token_level_rloo(token, mask, K)
    torch.testing.assert_close(adv_token[0], adv_token[1])
    adv_step = step_level_rloo(step_rewards, spans, mask, K)
    assert not torch.allclose(adv_step[0], adv_step[1], atol=1e-3)
    # A has 2 steps, so it pays its baseline twice: fewer steps are favoured when baselines are positive
    raw = step_level_rloo(step_rewards, spans, mask, K, whiten=False)
    assert raw[0, 0] < raw[1, 0]


def test_masked_positions_never_change_advantages():
    x, mask, garbage = random_batch(5)
    K = 4
    for f in (
        lambda r: returns_to_go(r, mask),
        lambda r: masked_whiten(r, mask),
        lambda r: token_level_rloo(r, mask, K),
        lambda r: process_rloo(r, mask, K),
        lambda r: scale_by_max_return(r, mask),
        lambda r: prime_returns(r, mask, torch.tensor([1.0, 0, 0, 1, 1, 1, 0, 1]), K)[0],
        lambda r: add_outcome_reward(r, mask, torch.ones(8), torch.ones(8, dtype=torch.bool)),
        lambda r: kl_reward(r, r, torch.zeros_like(r), mask, 0.1, "k3"),
    ):
        clean, dirty = f(x), f(garbage)
        assert not dirty.isnan().any()
        torch.testing.assert_close(dirty, clean)
        assert torch.equal(dirty[~mask], torch.zeros(int((~mask).sum())))


# ---------------------------------------------------------------- credit assignment


def test_step_rewards_from_prob():
    p = torch.tensor([0.0, 0.25, 1.0])
    assert step_rewards_from_prob(p).tolist() == [-1.0, -0.5, 1.0]
    assert step_rewards_from_prob(p, "p").tolist() == p.tolist()
    with pytest.raises(ValueError, match="2p-1"):
        step_rewards_from_prob(p, "logit")


def test_place_on_last_tokens_by_hand():
    values = [torch.tensor([1.0, 2.0]), torch.tensor([]), torch.tensor([3.0])]
    out = place_on_last_tokens(values, [[(0, 2), (2, 5)], [], [(1, 4)]], 5)
    assert out.tolist() == [[0, 1, 0, 0, 2], [0, 0, 0, 0, 0], [0, 0, 0, 3, 0]]
    assert place_on_last_tokens([torch.tensor([]), torch.tensor([])], [[], []], 3).tolist() == [[0, 0, 0]] * 2
    with pytest.raises(ValueError, match="row 0"):
        place_on_last_tokens([torch.tensor([1.0, 2.0])], [[(0, 3), (2, 5)]], 5)  # overlapping
    with pytest.raises(ValueError, match="row 0"):
        place_on_last_tokens([torch.tensor([1.0])], [[(0, 6)]], 5)  # past T
    with pytest.raises(ValueError, match="2 steps"):
        place_on_last_tokens([torch.tensor([1.0])], [[(0, 2), (2, 4)]], 5)


def test_sum_form_return_from_start_is_the_sum():
    r = [torch.tensor([0.5, -1.0, 0.25])]
    G = returns_to_go(sum_form(r, [contiguous_spans([2, 3, 1])], 6), torch.ones(1, 6, dtype=torch.bool))
    assert G[0].tolist() == [-0.25, -0.25, -0.75, -0.75, -0.75, 0.25]


def test_min_form_tends_to_min_then_zero_after_the_worst_step():
    r = torch.tensor([0.8, -0.3, 0.6, 0.1])
    w = min_form_weights(r, temperature=1e-4)
    assert w.tolist() == pytest.approx([0, 1, 0, 0], abs=1e-12)
    spans = [contiguous_spans([2, 2, 2, 2])]
    G = returns_to_go(sum_form([min_form(r, 1e-4)], spans, 8), torch.ones(1, 8, dtype=torch.bool))[0]
    assert G[:4].tolist() == pytest.approx([-0.3] * 4)  # up to the worst step: its reward
    assert G[4:].tolist() == pytest.approx([0.0] * 4, abs=1e-12)  # after it: nothing
    # sum form on the same rewards gives a very different value
    assert float(returns_to_go(sum_form([r], spans, 8), torch.ones(1, 8, dtype=torch.bool))[0, 0]) == pytest.approx(1.2)


def test_min_form_weights_match_the_softmax_formula_and_tend_to_the_mean():
    r = torch.tensor([0.8, -0.3, 0.6, 0.1])
    e = np.exp(-r.numpy() / 0.5)
    np.testing.assert_allclose(min_form_weights(r, 0.5).numpy(), e / e.sum())
    for T in (math.inf, 1e8):
        assert min_form_weights(r, T).tolist() == pytest.approx([0.25] * 4)
        assert float(min_form(r, T).sum()) == pytest.approx(float(r.mean()))
    with pytest.raises(ValueError, match="temperature"):
        min_form_weights(r, 0.0)


def test_min_form_one_step_ties_and_masked_steps():
    assert min_form(torch.tensor([0.37]), 0.1).tolist() == pytest.approx([0.37])
    ties = min_form_weights(torch.tensor([0.5, 0.2, 0.9, 0.2]), 1e-4)
    assert ties.tolist() == pytest.approx([0, 0.5, 0, 0.5], abs=1e-12)
    assert float(min_form(torch.tensor([0.5, 0.2, 0.9, 0.2]), 1e-4).sum()) == pytest.approx(0.2)
    # a padded batch of steps: padding (even NaN or a very low value) gets weight 0
    r = torch.tensor([[0.4, -5.0, torch.nan], [0.3, 0.1, 0.7], [torch.nan, torch.nan, torch.nan]])
    valid = torch.tensor([[1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    w = min_form_weights(r, 0.1, valid)
    assert w[0].tolist() == [1.0, 0.0, 0.0] and w[2].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(w[1], min_form_weights(r[1], 0.1))
    credited = min_form(r, 0.1, valid)
    assert credited[0].tolist() == pytest.approx([0.4, 0, 0]) and not credited.isnan().any()
    assert min_form(torch.tensor([]), 0.1).shape == (0,)  # a response without steps


def test_outcome_reward_on_last_token_and_whole_group_choice():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    base = torch.where(mask, 0.5, 0.0)
    out = add_outcome_reward(base, mask, torch.tensor([1.0, 1.0, 0.0]), torch.tensor([True, False, True]), coef=2.0)
    assert out.tolist() == [[0.5, 0.5, 2.5, 0], [0.5] * 4, [0.5, 0, 0, 0]]
    placed = place_on_last_response_token(torch.tensor([3.0, 4.0, 5.0]), mask)
    assert placed.tolist() == [[0, 0, 3, 0], [0, 0, 0, 4], [5, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        place_on_last_response_token(torch.ones(2), torch.tensor([[1, 0], [0, 0]]))

    use = choose_outcome_prompts(20, 0.1, group_size=4, generator=0)
    groups = use.reshape(20, 4)
    assert use.shape == (80,) and int(groups[:, 0].sum()) == 2
    assert torch.equal(groups.all(1), groups.any(1))  # whole groups
    assert torch.equal(use, choose_outcome_prompts(20, 0.1, 4, torch.Generator().manual_seed(0)))
    assert not all(torch.equal(use, choose_outcome_prompts(20, 0.1, 4, s)) for s in range(1, 6))
    assert int(choose_outcome_prompts(8, 0.1).sum()) == 1 and int(choose_outcome_prompts(8, 1.0).sum()) == 8
    with pytest.raises(ValueError, match="fraction"):
        choose_outcome_prompts(8, 1.5)


# ---------------------------------------------------------------- PPO


def test_ppo_clip_at_ratio_one_has_the_policy_gradient():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(6, 5, 11, generator=g, requires_grad=True)
    ids = torch.randint(0, 11, (6, 5), generator=g)
    adv = torch.randn(6, 5, generator=g)
    mask = torch.rand(6, 5, generator=g) > 0.3
    logp = token_logprobs(logits, ids)
    loss, stats = ppo_clip_loss(logp, logp.detach(), adv, mask)
    (grad_ppo,) = torch.autograd.grad(loss, logits, retain_graph=True)
    pg = -(adv * logp * mask).sum() / mask.sum()
    (grad_pg,) = torch.autograd.grad(pg, logits)
    torch.testing.assert_close(grad_ppo, grad_pg)
    assert float(loss.detach()) == pytest.approx(-float(adv[mask].mean()))  # the ratio is 1 everywhere
    assert stats == {"clip_frac": 0.0, "approx_kl": 0.0, "ratio_mean": 1.0}


def test_ppo_clip_on_hand_made_ratios():
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5, 1.1, 7.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 2.0, 3.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)  # the last token is padding
    logp = ratio.log().requires_grad_()
    loss, stats = ppo_clip_loss(logp, torch.zeros(1, 6), adv, mask)
    # per token: A>0 r>1+eps clipped: -1.2; A>0 r<1: -0.5; A<0 r<1-eps clipped: 0.8; A<0 r>1: 1.5; inside: -2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8 + 1.5 - 2.2) / 5)
    (grad,) = torch.autograd.grad(loss, logp)
    # d/dlogp of -A r is -A r where unclipped; clipped tokens and padding get nothing
    assert grad[0].tolist() == pytest.approx([0, -0.5 / 5, 0, 1.5 / 5, -2.2 / 5, 0])
    assert stats["clip_frac"] == pytest.approx(2 / 5)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 0.5 + 0.5 + 1.5 + 1.1) / 5)
    k3 = [r - 1 - math.log(r) for r in (1.5, 0.5, 0.5, 1.5, 1.1)]
    assert stats["approx_kl"] == pytest.approx(sum(k3) / 5)
    # NaN in the padding changes neither the loss nor the gradient
    dirty = torch.where(mask, ratio.log(), torch.nan).requires_grad_()
    loss2, _ = ppo_clip_loss(dirty, torch.zeros(1, 6), torch.where(mask, adv, torch.nan), mask)
    (grad2,) = torch.autograd.grad(loss2, dirty)
    assert loss2.item() == pytest.approx(loss.item()) and torch.equal(grad2, grad)


def test_kl_estimators_by_hand_and_unbiased():
    # pi = 0.5, ref = 0.25: r = ref / pi = 0.5
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert float(kl_estimate(logp, ref, "k1")) == pytest.approx(math.log(2))
    assert float(kl_estimate(logp, ref, "k3")) == pytest.approx(0.5 - 1 + math.log(2))
    # averaged over pi's full distribution both give KL(pi || ref) exactly
    g = torch.Generator().manual_seed(7)
    pi, rf = torch.randn(13, generator=g).log_softmax(0), torch.randn(13, generator=g).log_softmax(0)
    exact = float((pi.exp() * (pi - rf)).sum())
    for kind in ("k1", "k3"):
        assert float((pi.exp() * kl_estimate(pi, rf, kind)).sum()) == pytest.approx(exact)
    assert (kl_estimate(pi, rf, "k3") >= 0).all() and (kl_estimate(pi, rf, "k1") < 0).any()
    with pytest.raises(ValueError, match="k1"):
        kl_estimate(pi, rf, "k2")


def test_kl_reward_subtracts_the_scaled_estimate_on_real_tokens():
    rewards = torch.tensor([[1.0, 0.0, 9.0]])
    logp, ref = torch.tensor([[-1.0, -2.0, -3.0]]), torch.tensor([[-1.5, -1.0, -3.0]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(kl_reward(rewards, logp, ref, mask, 0.1), torch.tensor([[1.0 - 0.05, 0.1, 0.0]]))


def test_entropy_and_token_logprobs_match_torch_distributions():
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 4, 9, generator=g) * 3
    dist = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(entropy_from_logits(logits), dist.entropy())
    ids = torch.randint(0, 9, (3, 4), generator=g)
    torch.testing.assert_close(token_logprobs(logits, ids), dist.log_prob(ids))
    # a causal LM's logits at position t predict token t + 1: shift before calling
    seq = torch.randint(0, 9, (3, 5), generator=g)
    lm_logits = torch.randn(3, 5, 9, generator=g)
    shifted = token_logprobs(lm_logits[:, :-1], seq[:, 1:])
    assert float(shifted[1, 2]) == pytest.approx(float(lm_logits[1, 2].log_softmax(-1)[seq[1, 3]]))


# ---------------------------------------------------------------- PRIME


def test_process_rloo_closed_form_and_totals():
    for seed in (10, 11, 12):
        x, mask, garbage = random_batch(seed)
        K = 4
        out = process_rloo(garbage, mask, K)
        L = mask.sum(-1)
        m = torch.stack([x[i][mask[i]].mean() for i in range(8)])
        for i in range(8):
            group = range(i // K * K, i // K * K + K)
            loo = sum(float(m[j]) for j in group if j != i) / (K - 1)
            # paper's text plus the code's extra term (r - m_i) / (K - 1)
            ref = [
                (float(x[i, t]) - loo + (float(x[i, t]) - float(m[i])) / (K - 1)) if mask[i, t] else 0.0
                for t in range(7)
            ]
            assert out[i].tolist() == pytest.approx(ref)
            assert float(out[i].sum()) == pytest.approx(float(x[i].sum()) - int(L[i]) * loo)


def test_outcome_rloo_identity():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    o = torch.tensor([1.0, 0.0, 0.0, 1.0])
    out = outcome_rloo(o, mask, 4)
    loo = [float(o[i] - (o.sum() - o[i]) / 3) for i in range(4)]
    expected = torch.tensor([[0, loo[0], 0], [0, 0, loo[1]], [loo[2], 0, 0], [0, 0, loo[3]]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(-1), rloo(o, 4))


def test_batch_norm_makes_largest_return_one_and_ignores_beta():
    x, mask, _ = random_batch(13)
    scaled = scale_by_max_return(x, mask)
    assert float(returns_to_go(scaled, mask).abs().max()) == pytest.approx(1.0, abs=1e-5)
    for beta in (0.05, 3.0):
        torch.testing.assert_close(scale_by_max_return(beta * x, mask), scaled, atol=1e-5, rtol=1e-5)
        o = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1])
        a_beta, g_beta = prime_returns(beta * x, mask, o, 4)
        a_one, g_one = prime_returns(x, mask, o, 4)
        torch.testing.assert_close(g_beta, g_one, atol=1e-4, rtol=1e-4)


def test_prime_returns_mix_both_rloos_then_whiten():
    x, mask, garbage = random_batch(14)
    o = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 1])
    adv, ret = prime_returns(garbage, mask, o, 4, process_coef=2.0, outcome_coef=3.0, batch_norm=False)
    mix = 2.0 * process_rloo(x, mask, 4) + 3.0 * outcome_rloo(o, mask, 4)
    ref = torch.zeros_like(x)
    for t in reversed(range(x.shape[1])):  # independent backward recursion
        ref[:, t] = mix[:, t] + (ref[:, t + 1] if t + 1 < x.shape[1] else 0)
    ref = torch.where(mask, ref, 0.0)
    torch.testing.assert_close(ret, ref)
    torch.testing.assert_close(adv, masked_whiten(ref, mask))
    only_outcome, _ = prime_returns(None, mask, o, 4, whiten=False)
    torch.testing.assert_close(only_outcome, returns_to_go(5.0 * outcome_rloo(o, mask, 4), mask))


def test_filter_groups_boundaries_at_k4():
    correct = torch.tensor([0, 0, 0, 0] + [1, 0, 0, 0] + [1, 1, 0, 0] + [1, 1, 1, 0] + [1, 1, 1, 1], dtype=torch.bool)
    assert filter_groups(correct, 4).tolist() == [False, True, True, True, False]
    assert filter_groups(correct, 4, low=0.25, high=0.75).tolist() == [False, True, True, True, False]  # inclusive
    assert filter_groups(correct, 4, low=0.0, high=1.0).all()
    assert filter_groups(torch.tensor([1, 0, 0, 0, 0]), 5).tolist() == [True]  # 1/5 is exactly 0.2
    truncated = torch.zeros(20, dtype=torch.bool)
    truncated[9] = True  # a response of the third prompt
    dropped = filter_groups(correct, 4, truncated=truncated, drop_truncated=True)
    assert dropped.tolist() == [False, True, False, True, False]
    assert filter_groups(correct, 4, truncated=truncated).tolist() == [False, True, True, True, False]
    with pytest.raises(ValueError, match="truncated"):
        filter_groups(correct, 4, drop_truncated=True)
