"""The sampler against independent references: a fresh forward pass, model.generate, itself."""

import copy

import numpy as np
import pytest
import torch

from prmlab.kv_decoder import CachedDecoder, RecomputeDecoder, make_decoder
from prmlab.sampling import Sampler, SamplingConfig, counter_uniform, draw_tokens, sample

PROMPTS = ["Q: 1 +2\n", "Q: 17 *3 -5\n", "Q: 4 -1 *2 +9\n", "Q: 8\n"]


def fresh_logprobs(model, prompt_ids, gen_ids, temperature=1.0):
    ids = torch.tensor([prompt_ids + gen_ids])
    logits = model(ids).logits[0].float() / temperature
    lp = torch.log_softmax(logits, -1)
    p = len(prompt_ids)
    return lp[p - 1 : p - 1 + len(gen_ids)].gather(-1, torch.tensor(gen_ids)[:, None])[:, 0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_equal_fresh_forward(tiny_policy, char_tokenizer, temperature):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(temperature=temperature, top_p=0.9, max_new_tokens=30, seed=1))
    g = s.start(PROMPTS * 2)
    s.extend(g)
    for r in range(g.batch_size):
        ref = fresh_logprobs(tiny_policy, g.prompt_ids[r], g.token_ids(r), temperature)
        assert torch.allclose(g.token_logprobs(r), ref, atol=1e-5)


def test_stepwise_with_resumption_equals_one_shot(tiny_policy, char_tokenizer):
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=60, seed=7)
    s = Sampler(tiny_policy, char_tokenizer, cfg)
    one = s.start(PROMPTS * 8)
    s.extend(one, until="end")
    step = s.start(PROMPTS * 8)
    calls = 0
    while not step.done:
        s.extend(step, until="step")
        calls += 1
    assert calls > 1  # the random policy does emit newlines: steps really were resumed
    assert s.texts(one) == s.texts(step)
    for r in range(one.batch_size):
        assert one.step_ends[r] == step.step_ends[r]
        assert torch.allclose(one.token_logprobs(r), step.token_logprobs(r), atol=1e-5)


@pytest.mark.parametrize("resumed", [False, True])
def test_sampling_to_the_end_with_rows_finishing_at_different_times(tiny_policy, char_tokenizer, resumed):
    """Sampling to the end moves live rows over finished ones (compaction): every row's log-probs must
    still equal a fresh forward pass over its own tokens, and its length count every token fed, whether
    the whole batch was sampled or only the rows left unfinished after step-by-step calls."""
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=3))
    g = s.start(PROMPTS * 6)
    if resumed:
        while not g.finished.any():
            s.extend(g, until="step")
    s.extend(g, until="end")
    assert g.done and len(set(g.n_generated.tolist())) > 4  # rows ended at many different times
    for r in range(g.batch_size):
        assert torch.allclose(g.token_logprobs(r), fresh_logprobs(tiny_policy, g.prompt_ids[r], g.token_ids(r)), atol=1e-5)
        # the last token (EOS or the budget's last) is never fed
        assert int(g.state.length[r]) == len(g.prompt_ids[r]) + int(g.n_generated[r]) - 1


def test_each_step_call_stops_every_row_at_a_step_end(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=60, seed=2))
    g = s.start(PROMPTS * 4)
    before = [len(e) for e in g.step_ends]
    s.extend(g, until="step")
    for r in range(g.batch_size):
        assert len(g.step_ends[r]) == before[r] + 1  # exactly one more step (or the final one)
        ends_with_delim = g.token_ids(r)[-1] == char_tokenizer.convert_tokens_to_ids("\n")
        assert ends_with_delim or bool(g.finished[r])


def test_greedy_equals_model_generate(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(temperature=0, max_new_tokens=25))
    g = s.start(PROMPTS)
    s.extend(g)
    tok = copy.deepcopy(char_tokenizer)
    tok.padding_side = "left"
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    out = tiny_policy.generate(**enc, max_new_tokens=25, do_sample=False, pad_token_id=tok.pad_token_id)
    width = enc.input_ids.shape[1]
    for r in range(len(PROMPTS)):
        mine = g.token_ids(r)
        assert out[r, width : width + len(mine)].tolist() == mine


def test_rows_do_not_depend_on_batch_composition(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=3))
    big = sample(s, PROMPTS, n=4, batch_size=16)
    small = sample(s, PROMPTS, n=4, batch_size=3)
    assert big.texts == small.texts
    assert len(set(big.of(1))) > 1  # different samples of one prompt differ


def test_select_reorders_cache_and_duplicates_diverge(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=50, seed=4))
    g = s.start(PROMPTS * 4)
    s.extend(g, until="step")
    live = (~g.finished).nonzero()[:, 0].tolist()
    assert len(live) >= 2
    a, b = live[0], live[1]
    picked = g.select([a, a, b, a])
    assert picked.token_ids(0) == g.token_ids(a) and picked.token_ids(2) == g.token_ids(b)
    assert len(set(picked.stream.tolist())) == 4  # the copies got fresh random streams
    s.extend(picked, until="end")
    texts = s.texts(picked)
    # every continuation is what a fresh forward pass over the selected prefix gives
    for r in range(picked.batch_size):
        ref = fresh_logprobs(tiny_policy, picked.prompt_ids[r], picked.token_ids(r))
        assert torch.allclose(picked.token_logprobs(r), ref, atol=1e-5)
    assert len({texts[0], texts[1], texts[3]}) > 1


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_cached_decoder_matches_full_forward_and_recompute(char_tokenizer, arch):
    from prmlab.models import PolicyConfig, build_policy

    m = build_policy(char_tokenizer, PolicyConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                                                  intermediate_size=64), seed=1).eval()
    assert isinstance(make_decoder(m), CachedDecoder)
    seqs = [char_tokenizer(t).input_ids for t in ["Q: 1 +2\n1+2=3\nA: 3", "Q: 5 *4\n5*4=20", "x"]]
    rng = np.random.default_rng(0)
    for dec in (CachedDecoder(m), RecomputeDecoder(m)):
        state = dec.empty(3, slots=4)
        pos = [0, 0, 0]
        got = [[], [], []]
        while any(pos[i] < len(seqs[i]) for i in range(3)):
            n = int(rng.integers(1, 5))
            chunk = torch.zeros(3, n, dtype=torch.long)
            valid = torch.zeros(3, dtype=torch.long)
            for i in range(3):
                part = seqs[i][pos[i] : pos[i] + n]
                chunk[i, : len(part)] = torch.tensor(part)
                valid[i] = len(part)
            logits = dec.logits(dec.forward(state, chunk, valid))
            for i in range(3):
                got[i].append(logits[i, : valid[i]])
                pos[i] += int(valid[i])
        for i in range(3):
            ref = m(torch.tensor([seqs[i]])).logits[0]
            assert torch.allclose(torch.cat(got[i]), ref, atol=1e-5)


def test_fused_weights_follow_training(tiny_policy, char_tokenizer):
    m = copy.deepcopy(tiny_policy)
    dec = CachedDecoder(m)
    ids = torch.tensor([char_tokenizer("Q: 3 +4\n").input_ids])
    first = dec.logits(dec.forward(dec.empty(1), ids))
    with torch.no_grad():
        m.model.layers[0].self_attn.q_proj.weight.mul_(1.5)  # an in-place update, as an optimizer does
        m.model.layers[1].mlp.up_proj.weight.add_(0.1)
    second = dec.logits(dec.forward(dec.empty(1), ids))
    assert not torch.allclose(first, second)
    assert torch.allclose(second[0], m(ids).logits[0], atol=1e-5)


def test_lora_model_uses_module_path(tiny_policy, char_tokenizer):
    from prmlab.models import add_lora

    m = add_lora(copy.deepcopy(tiny_policy), r=4)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # make the adapters matter
    s = Sampler(m, char_tokenizer, SamplingConfig(max_new_tokens=20, seed=0))
    g = s.start(PROMPTS[:2])
    s.extend(g)
    for r in range(2):
        assert torch.allclose(g.token_logprobs(r), fresh_logprobs(m, g.prompt_ids[r], g.token_ids(r)), atol=1e-5)


def test_counter_uniform_is_uniform_and_pure():
    u = counter_uniform(5, torch.arange(200_000), torch.zeros(200_000, dtype=torch.long))
    assert 0 < float(u.min()) and float(u.max()) < 1
    hist = np.histogram(u.numpy(), bins=20, range=(0, 1))[0]
    chi2 = ((hist - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 45  # 19 degrees of freedom: p < 0.001 would be about 43.8
    assert torch.equal(u[:10], counter_uniform(5, torch.arange(10), torch.zeros(10, dtype=torch.long)))
    assert not torch.equal(u[:10], counter_uniform(6, torch.arange(10), torch.zeros(10, dtype=torch.long)))
    v = counter_uniform(5, torch.zeros(1000, dtype=torch.long), torch.arange(1000))
    assert abs(float(np.corrcoef(v[:-1], v[1:])[0, 1])) < 0.1  # consecutive positions are unrelated


def test_draw_tokens_matches_distribution_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(40_000, 1)
    u = counter_uniform(1, torch.arange(40_000), torch.zeros(40_000, dtype=torch.long))
    tok, _ = draw_tokens(logits, u, 1.0, 1.0)
    freq = torch.bincount(tok, minlength=4).double() / 40_000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.double), atol=0.01)
    tok, lp = draw_tokens(logits, u, 1.0, 0.75)  # nucleus {0, 1}: 0.5 < 0.75 <= 0.5 + 0.3
    freq = torch.bincount(tok, minlength=4).double() / 40_000
    assert freq[2] == 0 and freq[3] == 0 and abs(freq[0] - 0.625) < 0.01
    assert torch.allclose(lp, torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))[tok])
    greedy, _ = draw_tokens(logits[:3], u[:3], 0.0, 1.0)
    assert greedy.tolist() == [0, 0, 0]


def test_budget_truncates_and_bad_config_is_rejected(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=5, seed=0))
    g = s.start(PROMPTS)
    s.extend(g)
    assert g.done and all(int(n) <= 5 for n in g.n_generated)
    assert g.truncated.any()
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="until"):
        s.extend(g, until="forever")


@pytest.mark.parametrize("index", [[0, 0, 2, 3, 2, 5, 6, 1], [5, 1, 1], [7, 6, 5, 4, 3, 2, 1, 0, 0, 3]])
def test_select_in_buffers_equals_select(tiny_policy, char_tokenizer, index):
    """``select_`` (rows moved inside the same cache buffers, fewer or more rows) continues exactly
    like ``select`` (a new copy)."""
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=5))
    a = s.start(PROMPTS * 2)
    s.extend(a, until="step")
    b = a.select(range(a.batch_size))  # an independent copy
    ref = a.select(index)
    b.select_(index)
    assert b.batch_size == len(index) and torch.equal(b.stream, ref.stream)
    assert torch.equal(b.state.length, ref.state.length)
    for r in range(len(index)):
        assert b.token_ids(r) == ref.token_ids(r) and b.step_ends[r] == ref.step_ends[r]
    s.extend(ref, until="step")
    s.extend(b, until="step")
    s.extend(ref)
    s.extend(b)
    assert s.texts(ref) == s.texts(b)
    for r in range(len(index)):
        assert torch.allclose(b.token_logprobs(r), ref.token_logprobs(r), atol=1e-5)


def test_released_cache_is_reused_and_changes_nothing(tiny_policy, char_tokenizer):
    cfg = SamplingConfig(max_new_tokens=30, seed=4)
    s = Sampler(tiny_policy, char_tokenizer, cfg)
    a = s.start(PROMPTS * 4)
    s.extend(a)
    buffer = a.state.keys.data_ptr()
    a.state.keys.fill_(float("nan"))  # as if the last batch had gone wrong: nothing may leak
    a.state.values.fill_(float("nan"))
    s.release(a)
    assert a.state is None and len(s.texts(a)) == 16  # the tokens stay
    s.start(PROMPTS[:1])  # another size allocates its own cache and leaves the spare alone
    b = s.start(PROMPTS * 4)
    assert b.state.keys.data_ptr() == buffer
    s.extend(b)
    fresh = Sampler(tiny_policy, char_tokenizer, cfg)
    c = fresh.start(PROMPTS * 4)
    fresh.extend(c)
    assert s.texts(b) == fresh.texts(c)
    assert torch.equal(b.logprobs, c.logprobs)  # bit for bit the same as with a fresh cache


def test_samples_carry_token_aligned_steps(tiny_policy, char_tokenizer, easy_task):
    """Every sample's steps are token spans: each span decodes to its step text, the spans cover every
    generated token but EOS in order, the texts are the task's own split of the sample, and the log-probs
    are the policy's on a fresh forward pass."""
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=5))
    out = sample(s, PROMPTS, n=6, batch_size=7)
    eos = set(s.eos_ids.tolist())
    assert len(out.step_spans) == len(out.steps) == len(out.texts) == len(PROMPTS) * 6
    for r, (ids, spans, steps) in enumerate(zip(out.token_ids, out.step_spans, out.steps)):
        assert out.prompt_ids[r] == char_tokenizer(PROMPTS[r // 6]).input_ids
        assert [char_tokenizer.decode(ids[a:b]).strip("\n") for a, b in spans] == steps
        assert steps == easy_task.split_steps(out.texts[r])
        covered = [t for a, b in spans for t in range(a, b)]
        assert covered == [t for t in range(len(ids)) if ids[t] not in eos] or not steps
        assert out.finished[r] == (bool(ids) and ids[-1] in eos)
        ref = fresh_logprobs(tiny_policy, out.prompt_ids[r], ids)
        assert torch.allclose(out.logprobs[r], ref, atol=1e-5)


def test_samples_do_not_depend_on_prompt_order_or_streams_base(tiny_policy, char_tokenizer):
    s = Sampler(tiny_policy, char_tokenizer, SamplingConfig(max_new_tokens=40, seed=3))
    fwd = sample(s, PROMPTS, n=3, batch_size=4)
    rev = sample(s, PROMPTS[::-1], n=3, batch_size=5, streams=[i * 3 for i in range(len(PROMPTS))][::-1])
    assert fwd.texts == [t for i in range(len(PROMPTS))[::-1] for t in rev.of(i)]
    assert fwd.step_spans == [sp for i in range(len(PROMPTS))[::-1] for sp in rev.step_spans[i * 3 : i * 3 + 3]]
    with pytest.raises(ValueError, match="streams"):
        sample(s, PROMPTS, n=2, streams=[0])


def test_blank_lines_join_the_next_step(char_tokenizer):
    """Step texts are the lines a reader sees: a blank-line span is not a step; its tokens go to the next
    step, or to the last step at the end."""
    from prmlab.sampling import step_texts

    text = "1+2=3\n\n3*4=12\n \nA: 12\n\n"
    ids = char_tokenizer(text, add_special_tokens=False).input_ids
    ends = [i + 1 for i, c in enumerate(text) if c == "\n"]
    spans = list(zip([0] + ends[:-1], ends))
    got_spans, got = step_texts(char_tokenizer, ids, spans, eos=set())
    assert got == ["1+2=3", "3*4=12", "A: 12"]
    assert got_spans == [(0, 6), (6, 14), (14, len(text))]
    lead = char_tokenizer("\n5", add_special_tokens=False).input_ids
    assert step_texts(char_tokenizer, lead, [(0, 1), (1, 2)], eos=set()) == ([(0, 2)], ["5"])
    assert step_texts(char_tokenizer, ids[5:7], [(0, 1), (1, 2)], eos=set()) == ([], [])  # blank only
    assert step_texts(char_tokenizer, [], [], eos=set()) == ([], [])
