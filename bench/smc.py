"""Particle filtering's cost per generated token against best-of-N and against recomputing prefixes.

Three ways to spend N samples per problem on the tiny policy and a PRM built from it:

(a) ``smc``: SMC as in `prmlab.decoding.particle_filter.smc_decode`: generation step by step with the KV-cached
    sampler, incremental PRM scoring of each new step (`CachedPRMScorer`), resampling by reordering
    both caches (Puri et al.'s setting: "current" weights softmax(logit(r)), multinomial resampling
    before every step);
(b) ``best_of_n``: plain batched sampling of N solutions, then one PRM forward per finished solution
    (`sample_pool`), the cheapest way to spend the same N;
(c) ``recompute``: the same SMC, but every step re-encodes each particle's whole prefix with the policy
    and rescores the whole solution with the PRM (no cache reuse across steps).

Prints the median wall time per generated token of each, then ``BENCH smc_vs_recompute ...`` and, last,
``BENCH smc_vs_best_of_n <ms> ms/token vs best_of_n ratio=<smc / best_of_n>`` (target <= 1.3), and writes
the figures to ``runs/bench/smc.json``. Wall times exclude budget bookkeeping (re-encoding solutions to
count PRM tokens). The policy is the latest finished tiny run of notebook 00 when there is one, else a
freshly built one given a short SFT (see ``_common.bench_policy``). The PRM head is
untrained; it gets random weights so that rewards vary and resampling really duplicates particles.

Usage: ``python bench/smc.py [--problems 16] [--n 16] [--reps 5] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch

from prmlab.decoding.particle_filter import smc_decode
from prmlab.decoding.search import sample_pool
from prmlab.decoding.smc import SMCConfig
from prmlab.paths import runs_dir
from prmlab.prm.model import CachedPRMScorer, ProcessRewardModel
from prmlab.prm.scorer import RescoringScorer
from prmlab.sampling import Sampler, SamplingConfig
from prmlab.tasks.arith import ArithTask, final_answer


class RecomputeSampler:
    """A `Sampler` that re-encodes every unfinished row's whole prefix (prompt + generated tokens) from
    scratch at the start of each ``extend`` instead of resuming from its cache."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler

    def __getattr__(self, name):
        return getattr(self.sampler, name)

    def extend(self, gen, until="end"):
        rows = (~gen.finished).nonzero()[:, 0]
        if len(rows):
            fresh = self.sampler.start([gen.prompt_ids[r] + gen.token_ids(r) for r in rows.tolist()])
            gen.state.put(rows.to(gen.state.length.device), fresh.state)
            gen.next_logits[rows] = fresh.next_logits
        return self.sampler.extend(gen, until)


def load_policy():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import bench_policy

    return bench_policy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=16, help="particles / samples per problem")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    policy, tok, source = load_policy()
    prm = ProcessRewardModel.from_policy(policy, tok).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(prm.head.weight, std=0.5)  # an untrained head that still varies
    incremental = CachedPRMScorer(prm)
    sampler = Sampler(policy, tok, SamplingConfig(max_new_tokens=args.max_new_tokens, seed=0))
    prompts = [p.prompt for p in ArithTask(n_train=0, n_eval=args.problems).eval]
    config = SMCConfig(n_particles=args.n, weighting="current", resampling="multinomial", ess_threshold=1.0,
                       max_steps=args.max_new_tokens, seed=0)

    methods = {
        "smc": lambda: smc_decode(sampler, incremental, prompts, config, answer_fn=final_answer).budget,
        "best_of_n": lambda: sample_pool(sampler, prm, prompts, args.n).budget,
        "recompute": lambda: smc_decode(RecomputeSampler(sampler), RescoringScorer(prm), prompts, config,
                                        answer_fn=final_answer).budget,
    }
    methods["smc"](), methods["best_of_n"]()  # warm-up (allocator, lazy init, fused weights)
    runs = {k: [] for k in methods}
    for rep in range(args.reps):  # interleaved, so that load from other processes hits all alike
        for name, fn in methods.items():
            budget = fn()
            wall = budget.wall_time  # the method's own timing, without budget bookkeeping
            runs[name].append(dict(wall_s=wall, tokens=budget.tokens, prm_tokens=budget.prm_tokens,
                                   solutions=budget.solutions, ms_per_token=1e3 * wall / budget.tokens))
            print(f"rep {rep} {name:10s} {wall:7.2f} s {budget.tokens:6d} tokens "
                  f"{runs[name][-1]['ms_per_token']:.3f} ms/token  prm_tokens={budget.prm_tokens}", flush=True)

    med = {k: statistics.median(r["ms_per_token"] for r in v) for k, v in runs.items()}
    ratio_bon = med["smc"] / med["best_of_n"]
    ratio_rec = med["smc"] / med["recompute"]
    out = dict(
        name="smc", unit="ms/token", value=med["smc"], baseline="best_of_n", ratio=ratio_bon, target_ratio=1.3,
        median_ms_per_token=med, ratio_vs_recompute=ratio_rec, runs=runs,
        setup=dict(policy=source, problems=args.problems, n=args.n, reps=args.reps,
                   max_new_tokens=args.max_new_tokens, threads=torch.get_num_threads(),
                   smc=dict(weighting=config.weighting, resampling=config.resampling,
                            ess_threshold=config.ess_threshold),
                   machine=platform.platform(), torch=torch.__version__,
                   load_average=os.getloadavg()),  # other processes on the CPU make timings noisy
    )
    path = runs_dir() / "bench" / "smc.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"BENCH smc_vs_recompute {med['smc']:.3f} ms/token vs recompute ratio={ratio_rec:.2f}")
    print(f"BENCH smc_vs_best_of_n {med['smc']:.3f} ms/token vs best_of_n ratio={ratio_bon:.2f}")


if __name__ == "__main__":
    main()
