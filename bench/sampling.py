"""Tokens per second of prmlab's KV-cached sampler against `model.generate` on the same tiny policy.

Same prompts (256 eval problems, one sample each: batch 256), same settings (temperature 1, top-p 1,
no top-k, 96 new tokens at most, stop at EOS), 2 threads. Tokens counted are real generated tokens
(up to and including EOS), not padding. Runs alternate and the medians are compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, median, report  # noqa: E402

from prmlab.sampling import Sampler, SamplingConfig  # noqa: E402
from prmlab.tasks.arith import ArithTask  # noqa: E402

BATCH, MAX_NEW, REPEATS = 256, 96, 5


def main():
    torch.set_num_threads(2)
    model, tok, source = bench_policy()
    prompts = [p.prompt for p in ArithTask(n_train=0, n_eval=BATCH, seed=0).eval]
    sampler = Sampler(model, tok, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=MAX_NEW, seed=0))
    import copy

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
        gen = out[:, enc.input_ids.shape[1]:]
        # real tokens: up to and including the first EOS of each row
        is_eos = gen == eos
        first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((gen.shape[0],), gen.shape[1]))
        return int(first.sum())

    import time

    ours(), theirs()  # warm-up
    rates = {"ours": [], "generate": []}
    for _ in range(REPEATS):
        for name, fn in (("ours", ours), ("generate", theirs)):
            t0 = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t0))
    ours_tps, gen_tps = median(rates["ours"]), median(rates["generate"])
    print(f"policy: {source}; batch {BATCH}; threads {torch.get_num_threads()}")
    print(f"prmlab sampler : {ours_tps:8.0f} tokens/s (runs: {[round(r) for r in rates['ours']]})")
    print(f"model.generate : {gen_tps:8.0f} tokens/s (runs: {[round(r) for r in rates['generate']]})")
    report("sampling", ours_tps, "tokens/s", "model.generate", ours_tps / gen_tps,
           {"policy": source, "batch": BATCH, "max_new_tokens": MAX_NEW, "runs": rates, "generate_tokens_per_s": gen_tps})


if __name__ == "__main__":
    main()
