"""The one batching vocabulary (`prmlab.batching`): right padding, length-sorted chunks, the pad id and the
seeded epoch order, each against a brute-force reference and against the code every site ran before it
shared them (written out here as the reference: ``old_*``), on small cases.

The old sites disagreed on one thing only: the id a tokenizer without a pad token pads with (SFT had no
rule and failed; the sampler and rollouts used the model's first EOS id; the PRM and the implicit PRM 0;
the adapters the tokenizer's EOS, else 0). Padded positions are masked everywhere, so the id cannot
change a result: the tests below check that scores and log-probs do not move when it does.
"""

from __future__ import annotations

import random
from itertools import islice

import numpy as np
import pytest
import torch

from prmlab.batching import epoch_order, length_chunks, pad_id, right_pad
from prmlab.models import build_char_tokenizer

# ---- the old per-site code, verbatim but for names (the reference) ----------------------------------------


def old_sft_pad(tokenizer, seqs, labels):  # sft.encode_batch
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(zip(seqs, labels)):
        ids[i, : len(x)] = torch.tensor(x)
        lab[i, : len(y)] = torch.tensor(y)
    return ids, (ids != tokenizer.pad_token_id).long(), lab


def old_pack(prompt_ids, response_ids, pad_id):  # rl.rollouts.pack (now prmlab.tokens.TokenBatch.pack)
    b = len(prompt_ids)
    lens = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]
    width, t = max(lens, default=1), max((len(r) for r in response_ids), default=0)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    attn = torch.zeros(b, width, dtype=torch.long)
    resp = torch.full((b, t), pad_id, dtype=torch.long)
    mask = torch.zeros(b, t)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        ids[i, : lens[i]] = torch.tensor(p + r, dtype=torch.long)
        attn[i, : lens[i]] = 1
        resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, attn, torch.tensor([len(p) for p in prompt_ids]), resp, mask


def old_prm_collate_ids(tokenizer, encoded):  # prm.model.ProcessRewardModel.collate (its ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(ids) for ids, _, _ in encoded)
    batch = torch.full((len(encoded), width), pad, dtype=torch.long)
    for i, (ids, _, _) in enumerate(encoded):
        batch[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return batch


def old_feed_pad(tokenizer, ids):  # prm.model.CachedPRMScorer._feed
    n = max(len(x) for x in ids)
    chunk = torch.full((len(ids), n), tokenizer.pad_token_id or 0, dtype=torch.long)
    for i, x in enumerate(ids):
        chunk[i, : len(x)] = torch.tensor(x, dtype=torch.long)
    return chunk, torch.tensor([len(x) for x in ids], dtype=torch.long)


def old_adapter_pad(tokenizer, rows):  # prm.adapters.HFStepScorer (pad rule and _forward)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad = pad if pad is not None else 0
    width = max(len(x) for x in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, x in enumerate(rows):
        ids[b, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[b, : len(x)] = 1
    return ids, mask


def old_sampler_pad(rows, pad):  # sampling.Sampler.start
    width = max(len(x) for x in rows)
    return torch.tensor([x + [pad] * (width - len(x)) for x in rows], dtype=torch.long)


def old_length_batches(lengths: torch.Tensor, max_tokens: int):  # rl.rollouts.length_batches
    order = torch.argsort(lengths, descending=True, stable=True)
    batches, a = [], 0
    while a < len(order):
        n = max(1, max_tokens // max(int(lengths[order[a]]), 1))
        batches.append(order[a : a + n])
        a += n
    return [b.tolist() for b in batches]


def old_sorted_slices(lengths, size):  # sampling.sample, prm.model.score, prm.adapters.score
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[a : a + size] for a in range(0, len(order), size)]


def old_epochs(n, seed, count):  # rl.loop.problem_stream and prm.train.global_batches
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < count:
        order += torch.randperm(n, generator=g).tolist()
    return order[:count]


def random_rows(rng: random.Random, n_rows: int, longest: int, vocab: int = 50) -> list[list[int]]:
    return [[rng.randrange(vocab) for _ in range(rng.randrange(longest + 1))] for _ in range(n_rows)]


# ---- right padding ---------------------------------------------------------------------------------------


def test_right_pad_against_brute_force():
    rng = random.Random(0)
    for case in range(200):
        rows = random_rows(rng, rng.randrange(1, 7), 9)
        pad = rng.choice([0, -100, 7])
        width = max(len(r) for r in rows) + (rng.randrange(3) if case % 2 else 0)
        ids, mask = right_pad(rows, pad, width if case % 2 else None)
        want = [r + [pad] * (width - len(r)) for r in rows]
        assert ids.dtype == mask.dtype == torch.long and ids.shape == (len(rows), width)
        assert ids.tolist() == want
        assert mask.tolist() == [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    ids, mask = right_pad([], 0)
    assert ids.shape == mask.shape == (0, 0)
    with pytest.raises(RuntimeError):
        right_pad([[1, 2, 3]], 0, width=2)  # a row longer than the width is an error, not a silent cut


def test_right_pad_matches_every_old_site():
    tok = build_char_tokenizer()
    rng = random.Random(1)
    for _ in range(50):
        rows = [r or [5] for r in random_rows(rng, rng.randrange(1, 6), 8, vocab=len(tok))]
        rows = [[t if t != tok.pad_token_id else 5 for t in r] for r in rows]  # real tokens are never pad
        # SFT: ids, labels and the mask (read from the ids there, from the lengths here)
        labels = [[-100] * (len(r) // 2) + r[len(r) // 2 :] for r in rows]
        ids, mask, lab = old_sft_pad(tok, rows, labels)
        new_ids, new_mask = right_pad(rows, pad_id(tok))
        assert torch.equal(new_ids, ids) and torch.equal(new_mask, mask) and torch.equal(right_pad(labels, -100)[0], lab)
        # PRM collate, the cached PRM's feed, the adapters, the sampler's prefill
        assert torch.equal(right_pad(rows, pad_id(tok))[0], old_prm_collate_ids(tok, [(r, [], 0) for r in rows]))
        chunk, lens = old_feed_pad(tok, rows)
        assert torch.equal(right_pad(rows, pad_id(tok))[0], chunk) and torch.equal(right_pad(rows, 0)[1].sum(1), lens)
        assert all(torch.equal(a, b) for a, b in zip(right_pad(rows, pad_id(tok)), old_adapter_pad(tok, rows)))
        assert torch.equal(right_pad(rows, pad_id(tok))[0], old_sampler_pad(rows, tok.pad_token_id))


def test_pack_matches_the_old_pack():
    from prmlab.tokens import TokenBatch

    rng = random.Random(2)
    for _ in range(50):
        b = rng.randrange(1, 6)
        prompts = [r or [1] for r in random_rows(rng, b, 5)]
        responses = random_rows(rng, b, 7)
        got = TokenBatch.pack(prompts, responses, pad_id=3)
        fields = (got.input_ids, got.attention_mask, got.prompt_lens, got.response_ids, got.response_mask)
        for got_field, want in zip(fields, old_pack(prompts, responses, 3)):
            assert got_field.dtype == want.dtype and torch.equal(got_field, want)


def test_the_sft_mask_no_longer_reads_a_real_pad_token_as_padding():
    """The one old output that changes: where the pad token is also a real token (a tokenizer whose pad is
    its EOS, as `models.load_causal_lm` sets for real models without one), the SFT mask read from the ids
    marked the learnt EOS as padding. `sft.lm_loss` never reads that mask, so training is unchanged."""
    from prmlab.sft import encode_batch

    tok = build_char_tokenizer()
    tok.pad_token = tok.eos_token
    pairs = [("Q: 1 +2\n", "1+2=3\nA: 3"), ("Q: 5\n", "A: 5")]
    seqs = [tok(p).input_ids + tok(s, add_special_tokens=False).input_ids + [tok.eos_token_id] for p, s in pairs]
    ids, mask, labels = encode_batch(tok, pairs)
    old_ids, old_mask, old_labels = old_sft_pad(tok, seqs, [[-100] * len(tok(p).input_ids) + x[len(tok(p).input_ids):]
                                                             for (p, _), x in zip(pairs, seqs)])
    assert torch.equal(ids, old_ids) and torch.equal(labels, old_labels)
    assert mask.tolist() == [[1] * len(x) + [0] * (ids.shape[1] - len(x)) for x in seqs]
    assert old_mask[0, len(seqs[0]) - 1] == 0  # the old mask: the EOS read as padding


# ---- the pad id -------------------------------------------------------------------------------------------


def test_pad_id_rule():
    tok = build_char_tokenizer()
    assert pad_id(tok) == tok.pad_token_id
    tok.pad_token = None
    assert tok.pad_token_id is None and pad_id(tok) == tok.eos_token_id  # no pad token: its EOS
    tok.eos_token = None
    assert tok.eos_token_id is None and pad_id(tok) == 0  # neither: 0 (a vocabulary id like any other)


@pytest.fixture
def nopad_tokenizer():
    tok = build_char_tokenizer()
    tok.pad_token = None
    return tok


def test_the_pad_id_cannot_change_prm_scores(tiny_policy, char_tokenizer, nopad_tokenizer):
    """A PRM, its cached form, an adapter and the implicit PRM read the same rewards whatever the padding
    holds (here the old rule's 0 against the new rule's EOS, and any id)."""
    from transformers import AutoModelForTokenClassification, LlamaConfig

    from prmlab.prm.adapters import TokenClassificationScorer
    from prmlab.prm.implicit import ImplicitPRM
    from prmlab.prm.model import CachedPRMScorer, PRMConfig, ProcessRewardModel

    prompts = ["Q: 1 +2\n", "Q: 17 *3 -5\n", "Q: 4\n"]
    steps = [["1+2=3", "A: 3"], ["17*3=51", "51-5=46", "A: 46"], ["A: 4"]]
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood"))
    with torch.no_grad():
        prm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    tc = AutoModelForTokenClassification.from_config(LlamaConfig(
        vocab_size=len(char_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_labels=2, initializer_range=0.3)).eval()
    implicit = ImplicitPRM(tiny_policy, tiny_policy, char_tokenizer, batch_size=2)
    with torch.no_grad():
        next(implicit.model.parameters()).add_(0.01)  # pi_phi != pi_ref: non-zero rewards

    def scores(tok):
        prm.tokenizer = implicit.tokenizer = tok
        cached = CachedPRMScorer(prm)
        state = cached.start(prompts)
        incremental = [cached.append(state, [row[k] if k < len(row) else None for row in steps]) for k in range(3)]
        return (prm.score(prompts, steps, batch_size=2), incremental,
                TokenClassificationScorer(tc, tok, batch_size=2).score(prompts, steps),
                implicit.step_rewards(prompts, steps))

    with_pad, without_pad = scores(char_tokenizer), scores(nopad_tokenizer)
    for a, b in zip(with_pad, without_pad):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_the_pad_id_cannot_change_sampling_or_log_probs(tiny_policy, char_tokenizer, nopad_tokenizer):
    from prmlab.sampling import Sampler, SamplingConfig, sample
    from prmlab.tokens import TokenBatch, response_logits

    prompts = ["Q: 1 +2\n", "Q: 17 *3 -5\n", "Q: 4 -1 *2 +9\n"]
    cfg = SamplingConfig(max_new_tokens=30, seed=1)
    a = sample(Sampler(tiny_policy, char_tokenizer, cfg), prompts, n=3)
    b = sample(Sampler(tiny_policy, nopad_tokenizer, cfg), prompts, n=3)
    assert a.token_ids == b.token_ids and a.steps == b.steps
    assert all(torch.equal(x, y) for x, y in zip(a.logprobs, b.logprobs))
    read = []  # the logits that predict each response token (what RL's log-probs are read from)
    with torch.no_grad():
        for pad in (0, 2, 77):
            batch = TokenBatch.pack(a.prompt_ids, a.token_ids, pad)
            read.append(response_logits(tiny_policy, batch)[batch.response_mask.bool()])
    assert torch.equal(read[0], read[1]) and torch.equal(read[0], read[2])


# ---- length-sorted chunks -----------------------------------------------------------------------------------


def brute_force_chunks(lengths, max_rows, max_tokens, longest_first):
    """The stable sort by length, then the first cut (from the left) that keeps every chunk within both
    limits and each chunk as long as it can be."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i] if longest_first else lengths[i], i))
    fits = lambda c: len(c) == 1 or (  # noqa: E731
        (max_rows is None or len(c) <= max_rows)
        and (max_tokens is None or len(c) * max(max(lengths[i] for i in c), 1) <= max_tokens))
    chunks, a = [], 0
    while a < len(order):
        b = a + 1
        while b < len(order) and fits(order[a : b + 1]):
            b += 1
        chunks.append(order[a:b])
        a = b
    return chunks


def test_length_chunks_against_brute_force():
    rng = random.Random(3)
    for _ in range(300):
        lengths = [rng.randrange(0, 40) for _ in range(rng.randrange(0, 15))]
        max_rows = rng.choice([None, 1, 3, 5])
        max_tokens = rng.choice([None, 10, 40, 100])
        longest_first = rng.random() < 0.5
        got = length_chunks(lengths, max_rows, max_tokens, longest_first)
        assert got == brute_force_chunks(lengths, max_rows, max_tokens, longest_first)
        assert sorted(i for c in got for i in c) == list(range(len(lengths)))


def test_length_chunks_match_every_old_site():
    rng = random.Random(4)
    for _ in range(100):
        lengths = [rng.randrange(1, 60) for _ in range(rng.randrange(1, 30))]
        budget, size = rng.choice([20, 60, 200]), rng.randrange(1, 9)
        # rollouts' micro-batches (log-probs and the PPO update): longest first, by padded tokens
        assert length_chunks(lengths, max_tokens=budget, longest_first=True) == old_length_batches(
            torch.tensor(lengths), budget)
        # the sampler's prompt batches, the PRM's and the adapters' scoring batches: shortest first, by rows
        assert length_chunks(lengths, max_rows=size) == old_sorted_slices(lengths, size)
    lengths = torch.tensor([5, 30, 12, 30, 7, 50, 1])
    assert length_chunks(lengths.tolist(), max_tokens=60, longest_first=True) == [[5], [1, 3], [2, 4, 0, 6]]
    assert length_chunks(lengths.tolist(), max_tokens=20, longest_first=True)[:2] == [[5], [1]]  # too long: alone


# ---- the seeded epoch order -------------------------------------------------------------------------------


def test_epoch_order_is_the_old_problem_stream_and_global_batches():
    from prmlab.prm.train import global_batches

    for n, seed in [(1, 0), (7, 3), (10, 4), (33, 12345)]:
        assert list(islice(epoch_order(n, seed), 5 * n + 3)) == old_epochs(n, seed, 5 * n + 3)
        order = list(islice(epoch_order(n, seed), 4 * n))
        assert all(sorted(order[e * n : (e + 1) * n]) == list(range(n)) for e in range(4))  # each epoch whole
    b = global_batches(10, 4, 5, seed=3)
    assert [i for batch in b for i in batch] == old_epochs(10, 3, 20)
    assert list(islice(epoch_order(10, 3), 20)) != list(islice(epoch_order(10, 4), 20))
    with pytest.raises(ValueError, match="at least one"):
        next(epoch_order(0, 0))


def test_ppo_minibatch_order_is_the_old_one():
    """PPO's epochs over a batch of rollouts (`rl.loop.ppo_update`) draw from the same generator as
    before: consecutive permutations from seed ``seed * 1_000_003 + step``."""
    seed, step, b = 3, 7, 12
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    old = [torch.randperm(b, generator=g) for _ in range(3)]
    shuffled = epoch_order(b, seed * 1_000_003 + step)
    assert all(torch.equal(torch.tensor(list(islice(shuffled, b))), o) for o in old)
