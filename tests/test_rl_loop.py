"""Rollouts, PURE's reward recipe, the hacking meter and the RL loop, against independent references:
a fresh forward pass, hand-built rollouts, the advantage functions themselves, one process vs two."""

import copy
import textwrap

import numpy as np
import pytest
import torch

from prmlab.rl import meter
from prmlab.rl.advantages import token_level_rloo
from prmlab.rl.loop import RLConfig, evaluate_policy, ppo_update, train
from prmlab.rl.pure import credited_step_rewards, pure_rewards
from prmlab.rl.ppo import ppo_clip_loss
from prmlab.batching import length_chunks
from prmlab.rl.rollouts import Rollouts, collect
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tokens import TokenBatch, batched_logprobs, response_logprobs

from conftest import run_in_one_and_two_processes


@pytest.fixture(scope="module")
def rollouts(trained_policy, char_tokenizer, easy_task):
    sampler = Sampler(trained_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=0))
    return collect(sampler, easy_task, easy_task.train[:6], k=4, stream_base=100)


def oracle_probs(ro):
    return [np.array(v.step_labels, dtype=float) for v in ro.verdicts]


def test_rollouts_are_packed_graded_and_aligned(rollouts, trained_policy, char_tokenizer, easy_task):
    ro = rollouts
    assert ro.batch_size == 24 and ro.response_mask.shape == ro.old_logprobs.shape
    with torch.no_grad():
        fresh = response_logprobs(trained_policy, ro.tokens)
    assert torch.allclose(fresh, ro.old_logprobs, atol=1e-5)  # the sampler's log-probs are the policy's
    tb = ro.tokens
    for r in range(ro.batch_size):
        n = int(ro.response_mask[r].sum())
        p = int(tb.prompt_lens[r])
        assert tb.input_ids[r, p : p + n].tolist() == ro.samples.token_ids[r] == tb.response_ids[r, :n].tolist()
        assert char_tokenizer.decode(tb.input_ids[r, :p], skip_special_tokens=True) == ro.prompts[r]
        problem = ro.problems[r // 4]
        assert bool(ro.correct[r]) == easy_task.grade(problem, ro.samples.texts[r])
        assert list(ro.verdicts[r].kinds) == list(easy_task.judge(problem, ro.samples.texts[r]).kinds)
        assert all(b <= n for _, b in ro.step_spans[r])
    assert ro.correct.any() and not ro.correct.all()  # the trained policy solves some, not all


def same_rows(sub: Rollouts, ro: Rollouts, rows: list[int], task):
    """Every field of ``sub`` describes rows ``rows`` of ``ro`` and only them: what the old code rebuilt
    from the samples (re-judged, re-packed) is what slicing gives, bit for bit."""
    assert sub.batch_size == len(rows) and sub.prompts == [ro.prompts[r] for r in rows]
    assert sub.step_spans == [ro.step_spans[r] for r in rows]
    assert sub.samples.texts == [ro.samples.texts[r] for r in rows] and len(sub.samples.prompt_ids) == len(rows)
    assert [sub.problems[i // sub.k] for i in range(len(rows))] == [ro.problems[r // ro.k] for r in rows]
    assert sub.correct.tolist() == [bool(ro.correct[r]) for r in rows]
    judged = [task.judge(sub.problems[i // sub.k], sub.samples.steps[i]) for i in range(len(rows))]
    assert [list(v.kinds) for v in sub.verdicts] == [list(v.kinds) for v in judged]
    repacked = TokenBatch.pack(sub.samples.prompt_ids, sub.samples.token_ids, ro.tokens.pad_id)
    for name in ("input_ids", "attention_mask", "prompt_lens", "response_ids", "response_mask"):
        assert torch.equal(getattr(sub.tokens, name), getattr(repacked, name)), name
    t = sub.response_mask.shape[1]
    assert torch.equal(sub.old_logprobs, torch.stack([ro.old_logprobs[r, :t] for r in rows]))


def test_a_sub_batch_describes_only_its_rows(rollouts, easy_task):
    ro = rollouts
    sub = ro.rows([5, 2, 5])  # any rows, repeats allowed: one response per problem
    assert sub.k == 1 and sub.samples.n == 1
    same_rows(sub, ro, [5, 2, 5], easy_task)
    kept = ro.groups(torch.tensor([False, True, False, True, True, False]))  # whole groups keep k
    assert kept.k == 4 and kept.problems == [ro.problems[i] for i in (1, 3, 4)]
    same_rows(kept, ro, [r for i in (1, 3, 4) for r in range(4 * i, 4 * i + 4)], easy_task)
    joined = Rollouts.concat([ro.groups(torch.tensor([False, False, False, True, False, True])), kept])
    assert joined.k == 4 and joined.problems == [ro.problems[i] for i in (3, 5, 1, 3, 4)]
    same_rows(joined, ro, [r for i in (3, 5, 1, 3, 4) for r in range(4 * i, 4 * i + 4)], easy_task)
    ro.ref_logprobs = ro.old_logprobs + 1  # a per-token field slices with the rest (a copy: the fixture stays)
    try:
        part = ro.rows([5, 2])
        assert torch.equal(part.ref_logprobs, part.old_logprobs + 1)
    finally:
        ro.ref_logprobs = None


def test_rollouts_streams_and_temperature(trained_policy, char_tokenizer, easy_task):
    sampler = Sampler(trained_policy, char_tokenizer, SamplingConfig(max_new_tokens=30, seed=0))
    a = collect(sampler, easy_task, easy_task.train[:3], k=2, stream_base=0)
    b = collect(sampler, easy_task, easy_task.train[:3], k=2, stream_base=6)
    again = collect(sampler, easy_task, easy_task.train[:3], k=2, stream_base=0)
    assert a.samples.texts == again.samples.texts and a.samples.texts != b.samples.texts
    hot = Sampler(trained_policy, char_tokenizer, SamplingConfig(temperature=1.5, max_new_tokens=30, seed=0))
    h = collect(hot, easy_task, easy_task.train[:3], k=2)
    with torch.no_grad():  # at another temperature the old log-probs are the policy's, recomputed
        assert torch.allclose(h.old_logprobs, response_logprobs(trained_policy, h.tokens), atol=1e-6)


def test_pure_rewards_place_credit_on_step_ends(rollouts):
    ro = rollouts
    probs = oracle_probs(ro)
    for credit in ("sum", "min"):
        pr = pure_rewards(ro, probs, credit=credit)
        credited = credited_step_rewards(probs, credit)
        for r in range(ro.batch_size):
            ends = [b - 1 for _, b in ro.step_spans[r]]
            got = pr.token_rewards[r]
            assert torch.allclose(got[ends], credited[r].float())
            assert float(got.sum()) == pytest.approx(float(credited[r].sum()), abs=1e-5)
            # min-form: the credited return from the start is about the worst step's reward
            if credit == "min" and len(probs[r]):
                assert float(pr.process_returns[r]) == pytest.approx(float(2 * probs[r].min() - 1), abs=1e-3)
        assert torch.allclose(pr.advantages, token_level_rloo(pr.token_rewards.double(), ro.response_mask, 4).float(),
                              atol=1e-5)


def test_verifiable_only_arm_is_rloo_on_outcome(rollouts):
    ro = rollouts
    everyone = torch.ones(ro.batch_size, dtype=torch.bool)
    pr = pure_rewards(ro, None, credit="none", verifiable=everyone)
    last = ro.response_mask.sum(1).long() - 1
    expected = torch.zeros_like(ro.response_mask, dtype=torch.float64)
    expected[torch.arange(ro.batch_size), last] = ro.correct.double()
    assert torch.allclose(pr.token_rewards.double(), expected)
    assert pr.process_returns is None
    with pytest.raises(ValueError, match="credit"):
        pure_rewards(ro, None, credit="min")
    with pytest.raises(ValueError, match="unknown credit"):
        pure_rewards(ro, None, credit="max")
    with pytest.raises(ValueError, match="reference"):
        pure_rewards(ro, oracle_probs(ro), kl_coef=0.1)


def test_kl_term_is_zero_against_itself_and_penalises_drift(rollouts, trained_policy):
    ro = copy.copy(rollouts)
    ro.ref_logprobs = batched_logprobs(trained_policy, ro.tokens)
    assert torch.allclose(ro.ref_logprobs, ro.old_logprobs, atol=1e-5)
    probs = oracle_probs(ro)
    base = pure_rewards(ro, probs, credit="sum")
    same = pure_rewards(ro, probs, credit="sum", kl_coef=0.5, ref_logprobs=ro.ref_logprobs)
    assert torch.allclose(base.token_rewards, same.token_rewards, atol=1e-5)
    drift = pure_rewards(ro, probs, credit="sum", kl_coef=0.5, kl_estimator="k1", ref_logprobs=ro.ref_logprobs - 1.0)
    assert torch.allclose(drift.token_rewards, (base.token_rewards - 0.5) * ro.response_mask, atol=1e-5)


def test_hacking_meter_on_known_rollouts(rollouts):
    ro = rollouts
    shape = meter.rollout_shape(ro)
    assert shape["rollout/accuracy"] == pytest.approx(float(ro.correct.float().mean()))
    assert shape["rollout/steps_per_response"] == pytest.approx(np.mean([len(s) for s in ro.samples.steps]))
    kinds = [k for v in ro.verdicts for k in v.kinds]
    o = meter.oracle_meter(ro.verdicts)
    assert o["oracle/wrong_step_share"] == pytest.approx(np.mean([k != "ok" for k in kinds]))
    assert sum(o[f"oracle/wrong_steps/{k}"] for k in ("arithmetic", "carry", "skipped", "extra", "malformed")) == \
        pytest.approx(o["oracle/wrong_step_share"])
    assert meter.repeated_step_share([["a", "b", "a"], ["c"], []]) == pytest.approx(1 / 4)
    g = torch.tensor([0.9, 0.8, -0.5, -0.7])
    r = meter.reward_meter([np.array([0.9, 0.95]), np.array([0.8]), np.array([0.2]), np.array([])], g,
                           torch.tensor([True, False, False, False]))
    assert r["reward/high_return_wrong"] == pytest.approx(0.25)  # rollout 1: above the median and wrong
    assert r["reward/sign_agreement"] == pytest.approx(0.75)
    assert r["reward/prm_mean"] == pytest.approx(np.mean([0.9, 0.95, 0.8, 0.2]))


def test_ppo_update_at_ratio_one_is_the_policy_gradient(rollouts, trained_policy):
    """One PPO step from the sampling policy moves the weights exactly as SGD on the plain policy gradient
    -mean_t(A_t log pi(y_t)) would (compared through the gradient the optimizer receives)."""
    from accelerate import Accelerator

    ro = rollouts
    adv = pure_rewards(ro, oracle_probs(ro), credit="min").advantages
    model = copy.deepcopy(trained_policy)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1.0)
    ref = copy.deepcopy(trained_policy)
    logp = response_logprobs(ref, ro.tokens)
    mask = ro.response_mask
    (-(adv * logp * mask).sum() / mask.sum()).backward()
    expected = [p.detach() - p.grad for p in ref.parameters() if p.requires_grad]
    cfg = RLConfig(minibatch_size=ro.batch_size, grad_clip=0.0)
    stats = ppo_update(model, opt, params, ro, adv, cfg, Accelerator(cpu=True), step=0)
    assert stats["train/clip_frac"] == 0.0 and abs(stats["train/approx_kl"]) < 1e-6
    for got, want in zip(params, expected):
        assert torch.allclose(got, want, atol=1e-5)


def test_length_sorted_micro_batches_land_in_their_rows(rollouts, trained_policy):
    lengths = torch.tensor([5, 30, 12, 30, 7, 50, 1])
    got = length_chunks(lengths.tolist(), max_tokens=60, longest_first=True)
    assert got == [[5], [1, 3], [2, 4, 0, 6]]  # 1 x 50, 2 x 30, 4 x 12 padded tokens
    ro = rollouts  # log-probs gathered from many trimmed micro-batches land in their rows
    assert len(length_chunks(ro.tokens.lengths.tolist(), max_tokens=60, longest_first=True)) > 5
    with torch.no_grad():
        whole = response_logprobs(trained_policy, ro.tokens)
    assert torch.allclose(batched_logprobs(trained_policy, ro.tokens, max_tokens=60), whole, atol=1e-5)


def test_micro_batched_update_equals_one_pass_over_the_minibatch(rollouts, trained_policy):
    """Length-sorted micro-batches with accumulated gradients take the same step as one padded pass over
    the whole minibatch: off-policy ratios (PPO clipping active) and gradient clipping active."""
    from accelerate import Accelerator

    ro = copy.copy(rollouts)
    noise = torch.randn(ro.old_logprobs.shape, generator=torch.Generator().manual_seed(0))
    ro.old_logprobs = (ro.old_logprobs + 0.3 * noise) * ro.response_mask
    adv = pure_rewards(ro, oracle_probs(ro), credit="min").advantages
    ref = copy.deepcopy(trained_policy)
    logp, entropy = response_logprobs(ref, ro.tokens, with_entropy=True)
    loss, stats = ppo_clip_loss(logp, ro.old_logprobs, adv, ro.response_mask, 0.2)
    loss.backward()
    norm = float(torch.cat([p.grad.flatten() for p in ref.parameters()]).norm())
    clip = norm / 2
    expected = [p.detach() - p.grad * clip / norm for p in ref.parameters()]
    model = copy.deepcopy(trained_policy)
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = RLConfig(minibatch_size=ro.batch_size, grad_clip=clip, micro_batch_tokens=60)
    got = ppo_update(model, torch.optim.SGD(params, lr=1.0), params, ro, adv, cfg, Accelerator(cpu=True), step=0)
    assert stats["clip_frac"] > 0.1
    assert got["train/loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert got["train/clip_frac"] == pytest.approx(stats["clip_frac"], rel=1e-6)
    assert got["train/grad_norm"] == pytest.approx(norm, rel=1e-5)
    mask = ro.response_mask
    assert got["train/entropy"] == pytest.approx(float((entropy.detach() * mask).sum() / mask.sum()))
    moved = max(float((want - p0.detach()).abs().max()) for want, p0 in zip(expected, trained_policy.parameters()))
    assert moved > 1e-3  # the step is large next to the tolerance below
    for p, want in zip(params, expected):
        assert torch.allclose(p, want, atol=1e-6)


def test_train_loop_logs_every_metric_and_learns_from_the_outcome(trained_policy, char_tokenizer, easy_task):
    policy = copy.deepcopy(trained_policy)
    logged = []
    cfg = RLConfig(steps=3, prompts_per_step=8, k=4, max_new_tokens=40, minibatch_size=16, lr=1e-3, eval_every=2,
                   eval_samples=2)

    def outcome_only(ro, step):
        pr = pure_rewards(ro, None, credit="none", verifiable=torch.ones(ro.batch_size, dtype=torch.bool))
        return pr.advantages, {"reward/outcome_mean": float(ro.correct.float().mean())}

    before = [p.detach().clone() for p in policy.parameters()]
    history = train(policy, char_tokenizer, easy_task, outcome_only, cfg, eval_problems=easy_task.eval[:8],
                    log=lambda m, s: logged.append(s), progress=False)
    assert logged == [0, 1, 2, 3] and len(history) == 4  # three RL steps, then the final evaluation
    for key in ("rollout/accuracy", "oracle/wrong_step_share", "oracle/wrong_steps/arithmetic", "train/loss",
                "train/clip_frac", "train/entropy", "train/grad_norm", "perf/rollout_s", "reward/outcome_mean"):
        assert all(key in row for row in history[:3]), key
    assert "eval/accuracy_greedy" in history[0] and "eval/accuracy_greedy" not in history[1]
    assert "eval/accuracy" in history[2] and "eval/accuracy" in history[3]
    assert history[3]["train/rollouts_seen"] == 3 * 8 * 4
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    with pytest.raises(ValueError, match="k must be"):
        RLConfig(k=1)
    with pytest.raises(ValueError, match="kl_estimator"):
        RLConfig(kl_estimator="k2")


def test_evaluate_policy_matches_grading_by_hand(trained_policy, char_tokenizer, easy_task):
    from prmlab.sampling import sample

    cfg = RLConfig(max_new_tokens=40, eval_samples=3)
    got = evaluate_policy(trained_policy, char_tokenizer, easy_task, easy_task.eval[:10], cfg)
    greedy = Sampler(trained_policy, char_tokenizer, SamplingConfig(temperature=0, max_new_tokens=40, seed=1))
    s = sample(greedy, [easy_task.prompt(p) for p in easy_task.eval[:10]])
    assert got["eval/accuracy_greedy"] == pytest.approx(
        np.mean([easy_task.grade(p, t) for p, t in zip(easy_task.eval[:10], s.texts)]))


# ----------------------------------------------------------------------------------------------
# One process vs two accelerate processes (CPU, gloo): the same RL steps, the same weights.

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from accelerate import PartialState
    from prmlab.models import PolicyConfig, build_char_tokenizer, build_policy
    from prmlab.rl.loop import RLConfig, train
    from prmlab.rl.pure import pure_rewards
    from prmlab.tasks.arith import ArithConfig, ArithTask

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    policy = build_policy(tok, PolicyConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                                            intermediate_size=64), seed=0)
    task = ArithTask(ArithConfig(min_ops=2, max_ops=3, max_operand=9, max_value=40, ops="+-"), n_train=100, n_eval=4)

    def advantages(ro, step):  # min-form on the oracle's step labels, plus a shaped outcome so rewards vary
        probs = [np.array(v.step_labels, dtype=float) * 0.8 + 0.1 for v in ro.verdicts]
        return pure_rewards(ro, probs, credit="min").advantages, {}

    cfg = RLConfig(steps=2, prompts_per_step=4, k=4, max_new_tokens=24, minibatch_size=8, ppo_epochs=2, lr=1e-2,
                   micro_batch_tokens=48)  # several micro-batches per process: gradients synced once
    history = train(policy, tok, task, advantages, cfg, progress=False)
    state = PartialState()
    out = {"processes": state.num_processes, "losses": [h["train/loss"] for h in history],
           "grad_norms": [h["train/grad_norm"] for h in history],
           "checksum": float(sum(p.double().abs().sum() for p in policy.parameters())),
           "first": policy.model.layers[0].mlp.up_proj.weight.flatten()[:20].tolist()}
    with open(f"{sys.argv[1]}.{state.process_index}.json", "w") as f:
        json.dump(out, f)
    """
)


def test_two_accelerate_processes_match_one(tmp_path):
    one, rank0, rank1 = run_in_one_and_two_processes(tmp_path, SCRIPT)
    assert one["processes"] == 1 and rank0["processes"] == 2
    np.testing.assert_allclose(rank0["losses"], one["losses"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(rank0["grad_norms"], one["grad_norms"], rtol=1e-4)
    np.testing.assert_allclose(rank0["first"], one["first"], rtol=0, atol=1e-5)
    assert rank0["checksum"] == pytest.approx(one["checksum"], rel=1e-6)
    assert rank1["first"] == rank0["first"]  # the processes stay in sync


def test_lora_policy_trains_only_its_adapters(trained_policy, char_tokenizer, easy_task):
    """With LoRA (peft) only the adapters move; the sampler follows the adapted model (its log-probs are the
    adapted policy's, checked by the PPO ratio staying 1 on the first epoch)."""
    from prmlab.models import add_lora

    policy = add_lora(copy.deepcopy(trained_policy), r=4)
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    assert frozen and adapters

    def outcome_only(ro, step):
        return pure_rewards(ro, None, credit="none", verifiable=torch.ones(ro.batch_size, dtype=torch.bool)).advantages, {}

    cfg = RLConfig(steps=2, prompts_per_step=4, k=4, max_new_tokens=30, minibatch_size=16, lr=1e-2)
    history = train(policy, char_tokenizer, easy_task, outcome_only, cfg, progress=False)
    assert all(abs(h["train/approx_kl"]) < 1e-5 for h in history)  # one epoch: ratio 1 at every minibatch start
    assert all(torch.equal(p, frozen[n]) for n, p in policy.named_parameters() if n in frozen)
    assert any(not torch.equal(p, adapters[n]) for n, p in policy.named_parameters() if n in adapters)


def _history(accs: dict[int, float], steps: int, per_step: int = 100) -> list[dict]:
    """A loop history with evaluations ``accs`` (at the start of those steps; ``steps``: the final one)."""
    rows = []
    for s in range(steps):
        row = {"rollout/accuracy": 0.5, "rollout/sampled": float(per_step), "train/rollouts_seen": float((s + 1) * per_step)}
        if s in accs:
            row["eval/accuracy"] = accs[s]
        rows.append(row)
    rows.append({"eval/accuracy": accs[steps], "train/rollouts_seen": float(steps * per_step)})
    return rows


def test_pure_headline_reads_the_four_claims():
    from prmlab import headlines
    from prmlab.rl.arms import steps_to_reach
    from prmlab.rl.pure_arms import pure_headline

    results = {"verifiable": _history({0: 0.40, 5: 0.42, 10: 0.45}, 10),
               "prm-sum": _history({0: 0.40, 5: 0.30, 10: 0.20}, 10),
               "prm-min": _history({0: 0.40, 5: 0.46, 10: 0.44}, 10),
               "prm-min+vr": _history({0: 0.40, 5: 0.47, 10: 0.50}, 10),
               "oracle-min": _history({0: 0.40, 5: 0.60, 10: 0.70}, 10)}
    h = pure_headline(results)  # one history per arm: one seed, so no claim holds (tests/test_headlines.py: three)
    assert h["headline/seeds"] == 1.0
    assert {h[f"headline/{c}"] for c in ("sum_form_collapses", "min_form_stable", "min_vr_best", "min_form_faster")} == {0.0}
    assert h["headline/sum_form_collapses_diff"] == pytest.approx(0.2)  # start minus final
    assert h["headline/min_form_stable_diff"] == pytest.approx(0.2 - 0.02)  # falls from the best: 0.40 -> 0.20, 0.46 -> 0.44
    assert h["headline/min_vr_best_diff"] == pytest.approx(0.05)  # against verifiable; the oracle arm (0.70) is a ceiling
    # verifiable reaches its 0.45 only at step 10; prm-min passes 0.45 5/6 of the way from 0.40 (step 0) to 0.46 (step 5)
    assert h["headline/verifiable_steps_to_final"] == 10 and h["headline/min_form_steps_to_verifiable"] == pytest.approx(25 / 6)
    assert h["headline/min_form_faster_diff"] == pytest.approx(35 / 6) and np.isnan(h["headline/min_form_faster_se"])
    assert h["headline/prm-sum/accuracy_change"] == pytest.approx(-0.2)
    assert steps_to_reach(results["prm-sum"], 0.5) == float("inf")
    sentences = headlines.pure(h)
    assert len(sentences) == 4 and all("is within noise (1 seed; a claim needs at least 3;" in s for s in sentences)
    results["prm-min"] = _history({0: 0.40, 5: 0.30, 10: 0.30}, 10)
    h = pure_headline(results)
    assert h["headline/min_form_missed"] == 1.0 and h["headline/min_form_faster"] == 0.0
    assert "'min-form gets there in fewer steps' does not hold (min-form never reaches it" in headlines.pure(h)[-1]
    assert pure_headline({"prm-min": results["prm-min"]}).keys() == {
        "headline/seeds", *(f"headline/prm-min/{k}" for k in ("final_accuracy", "accuracy_change", "accuracy_change_se",
                                                              "fall_from_best", "fall_from_best_se", "improves"))}


def test_prime_headline_counts_rollouts_to_rloo_final_accuracy():
    from prmlab import headlines
    from prmlab.rl.arms import mean_history
    from prmlab.rl.prime_arms import eval_vs_rollouts, prime_headline

    rloo = _history({0: 0.30, 1: 0.35, 2: 0.38, 3: 0.40}, 3)  # evaluations before steps 0, 1, 2 and after step 2
    prime = _history({0: 0.30, 1: 0.42, 2: 0.45, 3: 0.46}, 3)
    assert eval_vs_rollouts(rloo) == {0.0: 0.30, 100.0: 0.35, 200.0: 0.38, 300.0: 0.40}
    h = prime_headline({"rloo": [rloo, rloo], "prime": [prime, rloo]})
    # RLOO reaches its 0.40 after 300 rollouts; PRIME passes it 10/12 of the way from 0.30 (0) to 0.42 (100)
    assert h["headline/sample_efficiency_max"] == pytest.approx(300 / (100 * 10 / 12))
    assert h["headline/sample_efficiency_min"] == pytest.approx(1.0)  # the same run: no gain
    assert h["headline/sample_efficiency"] == pytest.approx((3.6 + 1.0) / 2)
    assert h["headline/final_gain"] == pytest.approx(0.03) and h["headline/final_gain_max"] == pytest.approx(0.06)
    assert "2.30x fewer rollouts (seeds: 1.00 to 3.60)" in headlines.prime(h)[0]
    never = _history({0: 0.30, 1: 0.30, 2: 0.30, 3: 0.30}, 3)
    missed = prime_headline({"rloo": [rloo], "prime": [never]})
    assert missed["headline/sample_efficiency"] == 0.0 and missed["headline/prime_missed"] == 1.0
    assert h["headline/prime_missed"] == 0.0 and np.isnan(h["headline/implicit_prm_rollout_auroc"])
    prime[0]["implicit_prm/within_group_auroc"], prime[1]["implicit_prm/within_group_auroc"] = 0.4, 0.8
    assert prime_headline({"rloo": [rloo], "prime": [prime]})["headline/implicit_prm_rollout_auroc"] == pytest.approx(0.6)
    assert mean_history([rloo, prime])[1]["eval/accuracy"] == pytest.approx((0.35 + 0.42) / 2)
