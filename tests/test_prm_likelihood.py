"""The PRM's likelihood readout (``PRMConfig(readout="likelihood")``) against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prmlab.prm.model import LIKELIHOOD_BIAS, CachedPRMScorer, PRMConfig, ProcessRewardModel, running_min
from prmlab.prm.train import PRMTrainConfig, train_prm
from prmlab.tasks.arith import ArithConfig, make_splits

from test_prm_train import mistake_records


@pytest.fixture(scope="module")
def prm(tiny_policy, char_tokenizer):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood"))
    torch.manual_seed(0)
    torch.nn.init.normal_(prm.head.weight, std=0.5)
    prm.likelihood_scale.data.fill_(0.7)
    return prm.eval()


def brute_force_rewards(prm, tokenizer, prompt, steps):
    """Step k's reward from scratch: a fresh forward pass of the backbone LM over the prefix up to step
    k, the log-probability of every character of steps 1..k (separators not counted), their minimum,
    and the head read at step k's separator."""
    out = []
    backbone = prm.backbone
    for k in range(1, len(steps) + 1):
        text_ids = tokenizer(prompt).input_ids
        counted = []
        for step in steps[:k]:
            step_ids = tokenizer(step, add_special_tokens=False).input_ids
            counted += range(len(text_ids), len(text_ids) + len(step_ids))
            text_ids = text_ids + step_ids + tokenizer("\n", add_special_tokens=False).input_ids
        ids = torch.tensor([text_ids])
        with torch.no_grad():
            out_ = backbone(input_ids=ids, output_hidden_states=True)
            logp = torch.log_softmax(out_.logits[0].double(), -1)
            lowest = min(float(logp[t - 1, text_ids[t]]) for t in counted)
            head = float(prm.head(out_.hidden_states[-1][0, -1]).squeeze())
            scale = float(prm.likelihood_scale)
        out.append(1 / (1 + np.exp(-(head + scale * lowest))))
    return np.array(out)


def test_rewards_equal_a_brute_force_computation(prm, char_tokenizer):
    prompt = "Q: 3 +4 *2\n"
    steps = ["3+4=7", "7*2=15", "A: 15"]
    want = brute_force_rewards(prm, char_tokenizer, prompt, steps)
    got = prm.score([prompt, prompt], [steps, steps[:1]])
    np.testing.assert_allclose(got[0], want, atol=1e-5)
    np.testing.assert_allclose(got[1], want[:1], atol=1e-5)  # padding in the batch changes nothing


def test_running_min_is_the_prefix_minimum_clipped_at_log_one():
    x = torch.tensor([[0.0, -1.0, -0.5, -2.0, 0.0], [-0.2, 0.0, -0.1, -0.3, -0.25]])
    want = np.minimum.accumulate(np.minimum(x.numpy(), 0.0), axis=1)
    np.testing.assert_allclose(running_min(x).numpy(), want)


def test_rewards_never_rise_when_the_head_is_silent(tiny_policy, char_tokenizer):
    """With a zero head the reward is a function of the running minimum: monotone along a solution,
    and at initialisation sigmoid(LIKELIHOOD_BIAS + min log p)."""
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood")).eval()
    train, _ = make_splits(ArithConfig(ops="+-", max_ops=4), 6, 0, seed=0)
    rewards = prm.score([p.prompt for p in train], [p.reference_steps() for p in train])
    for r in rewards:
        assert np.all(np.diff(r) <= 1e-9)
        assert np.all(r < 1 / (1 + np.exp(-LIKELIHOOD_BIAS)) + 1e-9)


def test_frozen_backbone_trains_only_the_readout(tiny_policy, char_tokenizer):
    records = mistake_records(make_splits(ArithConfig(ops="+-", max_ops=4), 40, 0, seed=0)[0], 0)
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer,
                                         PRMConfig(readout="likelihood", freeze_backbone=True))
    before = {k: v.clone() for k, v in prm.state_dict().items()}
    history = train_prm(prm, records, PRMTrainConfig(steps=15, batch_size=8, lr=1e-2), progress=False)
    after = prm.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"head.weight", "head.bias", "likelihood_scale"}
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    with pytest.raises(ValueError, match="exclude each other"):
        PRMConfig(lora=True, freeze_backbone=True)
    with pytest.raises(ValueError, match="readout"):
        PRMConfig(readout="logits")


def test_training_loss_is_the_bce_of_the_scored_rewards(tiny_policy, char_tokenizer):
    """The training path (collate + forward with the counted-token mask) reads the same rewards as
    ``score``: the first step's loss, taken before any update (lr 0), equals the BCE of ``score``."""
    records = mistake_records(make_splits(ArithConfig(ops="+-", max_ops=4), 8, 0, seed=0)[0], 0)
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood"))
    for target in ("prm", "orm"):
        history = train_prm(prm, records, PRMTrainConfig(steps=1, batch_size=len(records), lr=0.0, warmup_steps=1,
                                                         target=target), progress=False)
        rewards = prm.score([r.prompt for r in records], [r.completions for r in records])
        if target == "orm":
            p, y = np.array([r[-1] for r in rewards]), np.array([r.labels[-1] for r in records])
        else:
            p, y = np.concatenate(rewards), np.concatenate([r.labels for r in records])
        bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        assert history[0]["train/loss"] == pytest.approx(bce, rel=1e-4), target


def test_save_and_load_keep_the_readout(prm, tmp_path, char_tokenizer):
    prompt, steps = "Q: 3 +4\n", ["3+4=7", "A: 7"]
    loaded = ProcessRewardModel.load(prm.save(tmp_path / "prm"))
    assert loaded.config.readout == "likelihood"
    np.testing.assert_allclose(loaded.score([prompt], [steps])[0], prm.score([prompt], [steps])[0], atol=1e-6)
    cached = CachedPRMScorer(loaded)
    state = cached.start([prompt])
    got = [cached.append(state, [s])[0] for s in steps]
    np.testing.assert_allclose(got, prm.score([prompt], [steps])[0], atol=1e-5)


def test_a_head_saved_before_the_likelihood_readout_still_loads(tiny_policy, char_tokenizer, tmp_path):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.nn.init.normal_(prm.head.weight)
    path = prm.save(tmp_path / "old")
    torch.save(prm.head.state_dict(), path / "head.pt")  # the old format: the head's own keys
    loaded = ProcessRewardModel.load(path)
    torch.testing.assert_close(loaded.head.weight, prm.head.weight)
