import random

import pytest
import torch

from prmlab import sft
from prmlab.schedules import lr_at
from prmlab.sft import SFTConfig, encode_batch, train_sft, training_example
from prmlab.tasks.arith import ArithTask, judge


@pytest.mark.parametrize("schedule", ["wsd", "cosine"])
def test_lr_schedules_warm_up_peak_and_end_at_ten_percent(schedule):
    lrs = [lr_at(s, 1.0, 100, 10, schedule, 0.3) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=0.04)  # 10% reached at the end
    assert all(a >= b - 1e-12 for a, b in zip(lrs[10:], lrs[11:]))  # never increases after warm-up
    if schedule == "wsd":
        assert lrs[69] == pytest.approx(1.0) and lrs[85] < 1.0
    with pytest.raises(ValueError, match="valid"):
        lr_at(20, 1.0, 100, 10, "linear")


def test_training_examples_carry_mistakes_at_the_requested_rate():
    task = ArithTask(n_train=200, n_eval=5, seed=0)
    rng = random.Random(0)
    flawed = 0
    for i in range(2000):
        p = task.train[i % 200]
        prompt, solution = training_example(task, p, rng, 0.3)
        assert prompt == p.prompt
        flawed += judge(p, solution).first_error >= 0
    assert abs(flawed / 2000 - 0.3) < 0.03


def test_encode_batch_learns_solution_and_eos_only(char_tokenizer):
    ids, mask, labels = encode_batch(char_tokenizer, [("Q: 1 +2\n", "1+2=3\nA: 3"), ("Q: 5\n", "A: 5")])
    p = len(char_tokenizer("Q: 1 +2\n").input_ids)
    assert (labels[0, :p] == -100).all()
    assert labels[0, p:].tolist()[-1] == char_tokenizer.eos_token_id
    assert char_tokenizer.decode(labels[0, p:-1].tolist()) == "1+2=3\nA: 3"
    assert (labels[1][mask[1] == 0] == -100).all()  # padding is never a target
    for row, (prompt, solution) in enumerate([("Q: 1 +2\n", "1+2=3\nA: 3"), ("Q: 5\n", "A: 5")]):  # text by text
        expected = (char_tokenizer(prompt).input_ids + char_tokenizer(solution, add_special_tokens=False).input_ids
                    + [char_tokenizer.eos_token_id])
        assert ids[row, : int(mask[row].sum())].tolist() == expected


def test_train_sft_lowers_the_loss(char_tokenizer, easy_task):
    from prmlab.models import PolicyConfig, build_policy

    torch.manual_seed(0)
    model = build_policy(char_tokenizer, PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                                      intermediate_size=64))
    logged = []
    cfg = SFTConfig(steps=80, batch_size=16, warmup_steps=5, mistake_rate=0.2, misconception_rate=0.0)
    hist = train_sft(model, char_tokenizer, easy_task, cfg,
                     log=lambda m, s: logged.append(s), progress=False)
    assert hist[-1]["train/loss"] < 0.6 * hist[0]["train/loss"]
    assert logged[0] == 0 and logged[-1] == 79
    with pytest.raises(ValueError, match="at least one"):
        train_sft(model, char_tokenizer, ArithTask(n_train=0, n_eval=1), SFTConfig(steps=1), progress=False)


# ChatML, as SmolLM2 and Qwen write it; the tiny character tokenizer spells its markers out
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_sft_on_real_data_trains_on_the_chat_templated_prompt_that_sampling_uses(monkeypatch):
    from prmlab.models import PolicyConfig, build_char_tokenizer, build_policy
    from prmlab.sampling import Sampler
    from prmlab.tasks.real import RealTask

    tok = build_char_tokenizer()  # a fresh one: the session's is shared and stays without a template
    tok.chat_template = CHAT_TEMPLATE
    task = RealTask("gsm8k", n_eval=5, seed=0, step_format="paragraph").with_chat_template(tok)
    model = build_policy(tok, PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=2,
                                           intermediate_size=32, max_positions=2048))
    seen = []
    encode = sft.encode_batch
    monkeypatch.setattr(sft, "encode_batch", lambda t, pairs, device: seen.extend(pairs) or encode(t, pairs, device))
    train_sft(model, tok, task, SFTConfig(steps=2, batch_size=3, warmup_steps=1, mistake_rate=0.0, misconception_rate=0.0), progress=False)
    assert len(seen) == 6
    by_prompt = {task.prompt(p): p for p in task.train}
    sampler = Sampler(model, tok, step_delimiter=task.step_delimiter)
    for prompt, solution in seen:
        p = by_prompt[prompt]  # the prompt sampling starts from: one user turn of the template, written out here
        assert prompt == f"<|im_start|>user\n{p.prompt_for('paragraph').strip()}<|im_end|>\n<|im_start|>assistant\n"
        assert solution == task.reference_solution(p) and task.grade(p, solution)
        ids, mask, labels = encode_batch(tok, [(prompt, solution)])
        prompt_ids = sampler.encode([prompt])[0]
        assert ids[0, : len(prompt_ids)].tolist() == prompt_ids and (labels[0, : len(prompt_ids)] == -100).all()
    with pytest.raises(ValueError, match="mistake_rate and misconception_rate must be 0 on gsm8k"):
        train_sft(model, tok, task, SFTConfig(steps=1, mistake_rate=0.2), progress=False)
