"""Adapters for published PRM conventions, each checked on a tiny model built locally.

Every convention is checked against an independent reimplementation of its reference code (the
Math-Shepherd and Qwen2.5-Math-PRM model cards, TRL's ``PRMTrainer.tokenize_row``), not against the
adapter's own encoding.
"""

import json
from itertools import chain

import numpy as np
import pytest
import torch
from transformers import (AutoModelForTokenClassification, LlamaConfig, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForTokenClassification)

from prmlab.models import build_char_tokenizer
from prmlab.prm.adapters import CONVENTIONS, MathShepherdScorer, QwenPRMScorer, TokenClassificationScorer, load_scorer
from prmlab.prm.scorer import TextState

CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PROMPTS = ["Q: 3 +4", "Q: 12 *2 -1", "Q: 5"]
STEPS = [["3+4=7", "A: 7"], ["12*2=24", "24-1=23", "A: 23"], ["A: 5"]]
SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=0.3)  # wide init: rewards spread over (0, 1)



@pytest.fixture(scope="module")
def tok():
    """Character tokenizer plus the tokens the conventions need, and a Qwen-style chat template."""
    t = build_char_tokenizer()
    t.add_tokens(["ки"])  # a plain vocabulary token in Mistral's tokenizer
    t.add_special_tokens({"additional_special_tokens": ["<extra_0>", "<|im_start|>", "<|im_end|>"]})
    t.chat_template = CHAT_TEMPLATE
    return t


def _config(cls, tok, **kw):
    torch.manual_seed(0)
    return cls(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id, **SIZE, **kw)


@pytest.fixture(scope="module")
def shepherd(tok):
    return MathShepherdScorer(MistralForCausalLM(_config(MistralConfig, tok)).eval(), tok)


@pytest.fixture(scope="module")
def qwen(tok):
    return QwenPRMScorer(Qwen2ForTokenClassification(_config(Qwen2Config, tok, num_labels=2)).eval(), tok)


@pytest.fixture(scope="module")
def trl(tok):
    model = AutoModelForTokenClassification.from_config(_config(LlamaConfig, tok, num_labels=2)).eval()
    return TokenClassificationScorer(model, tok)


@pytest.fixture(scope="module")
def scorers(shepherd, qwen, trl):
    return {"math-shepherd": shepherd, "qwen-prm": qwen, "token-classification": trl}


# -- independent references -------------------------------------------------------------------


def shepherd_reference(model, tok, question, steps):
    """The Math-Shepherd model card's scoring code, one solution at a time."""
    candidate_tokens = [tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")]
    step_tag_id = tok.encode("ки")[-1]
    output = "\n".join(f"{s} ки" for s in steps)
    input_id = torch.tensor([tok.encode(f"{question} {output}")])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return scores[input_id == step_tag_id].numpy()


def qwen_reference(model, tok, question, steps):
    """The Qwen2.5-Math-PRM model card's scoring code (make_step_rewards), one solution at a time."""
    system = "Please reason step by step, and put your final answer within \\boxed{}."
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    conversation = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tok.encode(conversation, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=input_ids)[0]
    token_masks = input_ids == tok.encode("<extra_0>", add_special_tokens=False)[0]
    probabilities = torch.softmax(logits, dim=-1) * token_masks.unsqueeze(-1)
    return probabilities[0][probabilities[0] != 0].view(-1, 2)[:, 1].numpy()


def trl_tokenize_row(tok, prompt, completions, labels, step_separator="\n"):
    """TRL's former PRMTrainer.tokenize_row (no truncation, all steps labelled)."""
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    completions_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    separator_ids = tok.encode(step_separator, add_special_tokens=False)
    completions_ids = [c + separator_ids for c in completions_ids]
    labels = [[-100] * (len(c) - 1) + [int(label)] for c, label in zip(completions_ids, labels)]
    completion_ids, labels = list(chain(*completions_ids)), list(chain(*labels))
    if tok.bos_token_id is not None:
        prompt_ids = [tok.bos_token_id] + prompt_ids
    return {"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids) + labels}


def trl_reference(model, tok, prompt, steps):
    row = trl_tokenize_row(tok, prompt, steps, [1] * len(steps))
    ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    return logits[labels != -100].softmax(-1)[:, 1].numpy()


REFERENCES = {"math-shepherd": shepherd_reference, "qwen-prm": qwen_reference, "token-classification": trl_reference}


# -- scoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", list(REFERENCES))
def test_rewards_match_reference_code(scorers, tok, convention):
    scorer = scorers[convention]
    got = scorer.score(PROMPTS, STEPS)
    for prompt, steps, r in zip(PROMPTS, STEPS, got):
        want = REFERENCES[convention](scorer.model, tok, prompt, steps)
        assert r.shape == (len(steps),) and want.shape == (len(steps),)
        np.testing.assert_allclose(r, want, atol=1e-5)
        assert np.all((r > 0) & (r < 1))
    assert np.ptp(np.concatenate(got)) > 0.01  # the tiny models do not give every step the same reward


@pytest.mark.parametrize("convention", list(REFERENCES))
def test_batching_with_padding_equals_one_by_one(scorers, convention):
    scorer = scorers[convention]
    prompts, steps = PROMPTS + ["Q: 1 +1 +1 +1 +1 +1"], STEPS + [[]]
    batched = scorer.score(prompts, steps, batch_size=8)
    for p, s, r in zip(prompts, steps, batched):
        np.testing.assert_allclose(r, scorer.score([p], [s], batch_size=1)[0], atol=1e-5)
    assert batched[-1].shape == (0,)  # a solution without steps gets no rewards


def test_trl_read_positions_are_the_labelled_ones(trl, tok):
    labels = [1, 0, 1]
    row = trl_tokenize_row(tok, PROMPTS[1], STEPS[1], labels)
    ids, positions = trl.encode(PROMPTS[1], STEPS[1])
    assert ids == row["input_ids"]
    assert positions == [i for i, y in enumerate(row["labels"]) if y != -100]
    assert [row["labels"][p] for p in positions] == labels
    assert all(ids[p] == tok.convert_tokens_to_ids("\n") for p in positions)  # a separator after every step


def test_qwen_input_is_the_chat_template(qwen, tok):
    text = qwen.text("Q: 5", ["a", "b"])
    assert text == ("<|im_start|>system\n" + qwen.system_prompt + "<|im_end|>\n<|im_start|>user\nQ: 5<|im_end|>\n"
                    "<|im_start|>assistant\na<extra_0>b<extra_0><|im_end|>\n")
    plain = QwenPRMScorer(qwen.model, tok, use_chat_template=False)
    assert plain.text("Q: 5", ["a", "b"]) == "Q: 5a<extra_0>b<extra_0>"


def test_shepherd_input_and_step_numbering(shepherd, tok):
    assert shepherd.text("Q", ["a", "b"]) == "Q a ки\nb ки"
    numbered = MathShepherdScorer(shepherd.model, tok, number_steps=True)
    assert numbered.text("Q", ["a", "Step 2: b"]) == "Q Step 1: a ки\nStep 2: b ки"
    ids = (tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-"))
    assert shepherd.candidate_ids == list(ids)
    swapped = MathShepherdScorer(shepherd.model, tok, candidate_ids=ids[::-1]).score(PROMPTS, STEPS)
    for a, b in zip(swapped, shepherd.score(PROMPTS, STEPS)):
        np.testing.assert_allclose(a, 1 - b, atol=1e-6)  # the pair read the other way round


def test_tag_in_prompt_warns_and_reads_the_steps(shepherd):
    with pytest.warns(UserWarning, match="more time"):
        r = shepherd.score(["Q: ки"], [["1+1=2"]])[0]
    assert r.shape == (1,)


def test_bad_tokens_are_named(qwen, tok):
    with pytest.raises(ValueError, match="single token"):
        QwenPRMScorer(qwen.model, tok, separator="ab")
    with pytest.raises(ValueError, match="single token"):
        MathShepherdScorer(qwen.model, tok, good_token="ok")


def test_trained_classifier_rewards_good_steps_higher(tok):
    """Train a tiny token classifier on TRL-labelled rows (a step ending in =1 is good, in =2 bad)."""
    config = _config(LlamaConfig, tok, num_labels=2)
    config.num_hidden_layers, config.initializer_range = 1, 0.02
    model = AutoModelForTokenClassification.from_config(config)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(16):
        labels = rng.integers(0, 2, size=3).tolist()
        rows.append(trl_tokenize_row(tok, "Q:", [f"{rng.integers(10, 99)}={2 - y}" for y in labels], labels))
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [tok.pad_token_id] * (width - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([r["labels"] + [-100] * (width - len(r["labels"])) for r in rows])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = TokenClassificationScorer(model, tok).score(["Q:", "Q:"], [["31=1", "47=2", "58=1"], ["12=2", "66=1"]])
    good, bad = [r[0][0], r[0][2], r[1][1]], [r[0][1], r[1][0]]
    assert min(good) > 0.8 and max(bad) < 0.2, r


# -- incremental ------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", list(REFERENCES))
def test_incremental_equals_full_score(scorers, convention):
    scorer = scorers[convention]
    full = scorer.score(PROMPTS, STEPS)
    state = scorer.start(PROMPTS)
    for k in range(max(len(s) for s in STEPS)):
        out = scorer.append(state, [s[k] if k < len(s) else None for s in STEPS])
        for i, s in enumerate(STEPS):
            assert np.isnan(out[i]) if k >= len(s) else out[i] == pytest.approx(full[i][k], abs=1e-5)
    # every append re-read its row's whole prefix: the budget counts each prefix's encoding
    want = sum(len(scorer.encode(p, s[:k])[0]) for p, s in zip(PROMPTS, STEPS) for k in range(1, len(s) + 1))
    assert state.tokens_scored == want > 0
    # Rows are copied, not shared: appending to a duplicate leaves its source alone.
    picked = scorer.select(state, [1, 1, 0])
    assert isinstance(picked, TextState) and picked.batch_size == 3
    r = scorer.append(picked, ["A: 23", None, None])
    assert len(picked.steps[0]) == 4 and len(picked.steps[1]) == 3 and len(state.steps[1]) == 3
    assert r[0] == pytest.approx(scorer.score([PROMPTS[1]], [STEPS[1] + ["A: 23"]])[0][-1], abs=1e-5)


# -- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", list(REFERENCES))
def test_load_scorer_round_trip(scorers, convention, tmp_path):
    scorer = scorers[convention]
    scorer.model.save_pretrained(tmp_path)
    scorer.tokenizer.save_pretrained(tmp_path)
    loaded = load_scorer(tmp_path, convention, device="cpu", dtype="float32")
    assert type(loaded) is type(scorer)
    for a, b in zip(loaded.score(PROMPTS, STEPS), scorer.score(PROMPTS, STEPS)):
        np.testing.assert_allclose(a, b, atol=1e-6)


REMOTE_CODE = '''
import torch
from transformers import Qwen2Model, Qwen2PreTrainedModel


class TinyProcessRewardModel(Qwen2PreTrainedModel):
    """Stands in for Qwen2ForProcessRewardModel: a 2-class head on every token, tuple output."""

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.score = torch.nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return (self.score(hidden),)
'''


def test_load_qwen_prm_with_remote_code(qwen, tok, tmp_path):
    """The real Qwen2.5-Math-PRM ships its class as remote code (config auto_map): load it via AutoModel."""
    qwen.model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "modeling_tiny_prm.py").write_text(REMOTE_CODE)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_tiny_prm.TinyProcessRewardModel"}
    cfg["architectures"] = ["TinyProcessRewardModel"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = load_scorer(tmp_path, "qwen-prm", device="cpu", dtype="float32")
    assert type(loaded.model).__name__ == "TinyProcessRewardModel"
    # Same backbone weights; its head is the checkpoint's "score" layer, as in Qwen2ForTokenClassification.
    for a, b in zip(loaded.score(PROMPTS, STEPS), qwen.score(PROMPTS, STEPS)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_load_prmlab_convention(tiny_policy, char_tokenizer, tmp_path):
    from prmlab.prm.model import CachedPRMScorer, ProcessRewardModel

    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.nn.init.normal_(prm.head.weight, std=1.0)
    prm.save(tmp_path / "prm")
    loaded = load_scorer(tmp_path / "prm", "prmlab", device="cpu")
    assert isinstance(loaded, CachedPRMScorer)
    for a, b in zip(loaded.score(PROMPTS, STEPS), prm.score(PROMPTS, STEPS)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_unknown_convention_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown PRM convention 'orm'; valid choices: math-shepherd, qwen-prm, "
                                         "token-classification, prmlab"):
        load_scorer(tmp_path, "orm")
    with pytest.raises(TypeError, match="separator"):
        load_scorer(tmp_path, "prmlab", separator="\n")
    assert CONVENTIONS == ("math-shepherd", "qwen-prm", "token-classification", "prmlab")
