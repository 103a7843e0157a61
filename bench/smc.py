"""Particle filtering's cost per generated token against best-of-N and against recomputing prefixes.

Three ways to spend N samples per problem on the tiny policy and notebook 01's default PRM (see below):

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
freshly built one given a short SFT (see ``_common.bench_policy``).

The PRM timed is the one notebook 01 logs by default as ``prm`` (the one notebooks 02-04 load): the artifact
``prm`` of the latest finished tiny run of notebook 01 when there is one. Otherwise it is built as 01 builds it
with its declared defaults (`prmlab.studies.PRM_TRAINING`: backbone ``clean``, a fresh LM of the policy's
architecture SFT-trained on reference solutions; readout ``likelihood``, a linear head at each step end plus
the backbone's running minimum token log-prob; backbone frozen; ``mc-hard`` labels), but on a shortened
recipe so that it costs about 25 s instead of 01's minutes: the clean backbone gets ``--prm-clean-steps``
(100) of 01's 1150 SFT steps, the labels come from ``--prm-label-problems`` (32) x 4 sampled solutions
instead of 400 x 4 (8 Monte Carlo completions per step, as 01), and the readout is trained for
``--prm-steps`` (50) of 01's 400 steps (``--prm-steps 0``: no labels, the readout left untrained). That
fallback PRM has 01's default architecture and readout, so scoring a step costs what it costs with 01's
PRM; its rewards are weaker than a real 01 run's, which can change which particles SMC keeps (and so how
long the solutions run) but not the cost of a step. The printed ``PRM:`` line and ``setup.prm`` in the
JSON say which PRM was timed.

Usage: ``python bench/smc.py [--problems 16] [--n 16] [--reps 5] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, bench_policy_task  # noqa: E402

from prmlab import artifacts, studies, tracking  # noqa: E402
from prmlab.decoding.particle_filter import smc_decode  # noqa: E402
from prmlab.decoding.search import sample_pool  # noqa: E402
from prmlab.decoding.smc import SMCConfig  # noqa: E402
from prmlab.paths import runs_dir  # noqa: E402
from prmlab.prm.model import CachedPRMScorer, PRMConfig, ProcessRewardModel  # noqa: E402
from prmlab.prm.scorer import RescoringScorer  # noqa: E402
from prmlab.sampling import Sampler, SamplingConfig  # noqa: E402
from prmlab.tasks.arith import ArithTask, final_answer  # noqa: E402


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


def bench_prm(policy, tokenizer, task, clean_steps: int = 100, label_problems: int = 32, prm_steps: int = 50,
              seed: int = 0) -> tuple[ProcessRewardModel, dict]:
    """The PRM notebook 01 logs by default as ``prm``, and what it is: the artifact of 01's latest finished
    tiny run if there is one, else `default_prm_of_01` (01's default build on a shortened recipe)."""
    try:
        prm, _, run = artifacts.load_model("01_prm_training", "prm", kind="prm", profile="tiny", device="cpu")
    except tracking.NoRunError:  # no such run, or it logged no 'prm'
        return default_prm_of_01(policy, tokenizer, task, clean_steps, label_problems, prm_steps, seed)
    params = run.data.params
    info = dict(source=f"01_prm_training run {run.info.run_id[:8]}, artifact 'prm'", trained=True,
                run_id=run.info.run_id, readout=prm.config.readout, freeze_backbone=prm.config.freeze_backbone,
                labels=prm.config.extra.get("labels", params.get("label_source")),
                backbone=params.get("prm_backbone"), policy_run=run.data.tags.get("prmlab.policy_run"))
    return prm.eval(), info


def default_prm_of_01(policy, tokenizer, task, clean_steps: int, label_problems: int, prm_steps: int,
                      seed: int = 0) -> tuple[ProcessRewardModel, dict]:
    """01's default PRM ('prm') built as 01 builds it from its declared defaults (backbone, readout, frozen
    backbone, label source, Monte Carlo completions, batch, learning rate), with ``clean_steps`` SFT steps for
    a clean backbone, labels on ``label_problems`` training problems of ``task`` and ``prm_steps`` training
    steps (0: the readout stays as initialised, untrained) in place of 01's."""
    from prmlab.prm import labels as prm_labels, train as prm_train
    from prmlab.prm.backbone import prm_backbone

    d = studies.PRM_TRAINING.defaults
    source = d["label_source"]
    if source == prm_train.FILE:
        raise ValueError("01's default PRM is trained on a label file: the benchmark cannot rebuild it")
    t0 = time.perf_counter()
    backbone = prm_backbone(d["prm_backbone"], policy, tokenizer, task, steps=clean_steps, seed=seed, progress=False)
    t_backbone = time.perf_counter() - t0
    config = PRMConfig(lora=d["lora"], lora_r=d["lora_r"], separator=task.step_delimiter, readout=d["prm_readout"],
                       freeze_backbone=d["prm_freeze_backbone"], extra={"labels": source})
    prm = ProcessRewardModel.from_policy(backbone, tokenizer, config)
    info = dict(source="", trained=prm_steps > 0, readout=config.readout, freeze_backbone=config.freeze_backbone,
                labels=source, backbone=d["prm_backbone"], lora=config.lora,
                clean_sft_steps=clean_steps if d["prm_backbone"] == "clean" else None,
                clean_sft_steps_of_01=d["clean_sft_steps"], backbone_s=t_backbone)
    if prm_steps > 0:
        t0 = time.perf_counter()
        sampling = SamplingConfig(temperature=d["temperature"], max_new_tokens=d["max_new_tokens"], seed=seed)
        n_mc = d["mc_n"] if source.startswith("mc-") else 0
        label_set = prm_labels.build_label_set(policy, tokenizer, task, task.train[:label_problems],
                                               n_per_problem=d["n_per_problem"], n_mc=n_mc, sampling=sampling,
                                               batch_size=d["sample_batch"], progress=False)
        t_labels = time.perf_counter() - t0
        cfg = studies.PRM_TRAINING.config(prm_train.PRMTrainConfig, {**d, "prm_steps": prm_steps, "seed": seed})
        t0 = time.perf_counter()
        history = prm_train.train_prm(prm, label_set.records(source), cfg, progress=False)
        info |= dict(label_problems=label_problems, label_problems_of_01=d["n_label_problems"],
                     n_per_problem=d["n_per_problem"], mc_n=n_mc, prm_steps=prm_steps, prm_steps_of_01=d["prm_steps"],
                     batch=cfg.batch_size, lr=cfg.lr, labels_s=t_labels, train_s=time.perf_counter() - t0,
                     train_loss_first=history[0]["train/loss"], train_loss_last=history[-1]["train/loss"])
    recipe = (f"backbone {info['backbone']}"
              + (f" ({clean_steps} of 01's {d['clean_sft_steps']} SFT steps)" if info["clean_sft_steps"] else "")
              + f", readout {config.readout}, backbone {'frozen' if config.freeze_backbone else 'trained'}")
    if prm_steps > 0:
        recipe += (f", {source} labels on {label_problems} of 01's {d['n_label_problems']} problems, "
                   f"{prm_steps} of 01's {d['prm_steps']} training steps")
        info["source"] = ("no tiny run of notebook 01: 01's default PRM rebuilt on a shortened recipe "
                          f"(trained briefly, not 01's weights): {recipe}")
    else:
        info["source"] = (f"no tiny run of notebook 01: 01's default PRM architecture and readout, UNTRAINED "
                          f"(readout as initialised): {recipe}")
    return prm.eval(), info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=16, help="particles / samples per problem")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--prm-clean-steps", type=int, default=100,
                    help="without a run of 01: SFT steps of the clean backbone (01: 1150)")
    ap.add_argument("--prm-label-problems", type=int, default=32,
                    help="without a run of 01: problems whose sampled solutions are labelled (01: 400)")
    ap.add_argument("--prm-steps", type=int, default=50,
                    help="without a run of 01: training steps of the PRM (01: 400; 0: untrained)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    policy, tok, source = bench_policy()
    t0 = time.perf_counter()
    prm, prm_info = bench_prm(policy, tok, bench_policy_task(tok), args.prm_clean_steps, args.prm_label_problems,
                              args.prm_steps)
    print(f"policy: {source}")
    print(f"PRM: {prm_info['source']} ({time.perf_counter() - t0:.0f} s to get)", flush=True)
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
        setup=dict(policy=source, prm=prm_info, problems=args.problems, n=args.n, reps=args.reps,
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
