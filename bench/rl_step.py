"""Seconds per RL step of prmlab's loop against TRL's `GRPOTrainer`, same policy and settings, same run.

One RL step: 64 prompts x 4 sampled responses (temperature 1, up to 64 new tokens, stop at EOS), the
outcome reward (the task's grader) with a group baseline, one PPO-clip update (epsilon 0.2, token-mean
loss over the 256 responses, gradient clipping 1.0, no KL term, AdamW) on CPU. TRL (an optional extra:
``pip install -e .[bench]``) samples with ``model.generate`` and updates with its GRPO loss
(``loss_type="dapo"``: token-mean over the batch); prmlab samples with its KV-cached sampler and updates
with `prmlab.rl.loop.ppo_update`. Both train a copy of the same tiny policy; the first step of each is a
warm-up and the median of the next ``STEPS`` is compared.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, median, report  # noqa: E402

from prmlab.rl.loop import RLConfig, train  # noqa: E402
from prmlab.rl.pure import pure_rewards  # noqa: E402
from prmlab.tasks.arith import ArithTask  # noqa: E402

PROMPTS, K, MAX_NEW, STEPS, LR = 64, 4, 64, 3, 1e-6


def ours(model, tok, task) -> list[float]:
    def outcome(ro, step):
        every = torch.ones(ro.batch_size, dtype=torch.bool)
        return pure_rewards(ro, None, credit="none", verifiable=every).advantages, {}

    cfg = RLConfig(steps=STEPS + 1, prompts_per_step=PROMPTS, k=K, max_new_tokens=MAX_NEW, minibatch_size=PROMPTS * K,
                   lr=LR, ppo_epochs=1, clip_eps=0.2, grad_clip=1.0)
    history = train(model, tok, task, outcome, cfg, progress=False)
    return [h["perf/rollout_s"] + h["perf/reward_s"] + h["perf/update_s"] for h in history][1:]


def theirs(model, tok, task) -> list[float] | None:
    try:
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        return None
    problems = task.train[: PROMPTS * (STEPS + 1)]
    by_prompt = {p.prompt: p for p in problems}

    def outcome(prompts, completions, **_):
        return [float(task.grade(by_prompt[p], c)) for p, c in zip(prompts, completions)]

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(output_dir=out, per_device_train_batch_size=PROMPTS * K, num_generations=K,
                         generation_batch_size=PROMPTS * K, max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0,
                         top_k=0, num_iterations=1, beta=0.0, epsilon=0.2, loss_type="dapo", learning_rate=LR,
                         max_grad_norm=1.0, max_steps=STEPS + 1, logging_steps=1, report_to=[], use_cpu=True,
                         save_strategy="no", shuffle_dataset=False, seed=0, dataloader_num_workers=0)
        trainer = GRPOTrainer(model=model, reward_funcs=outcome, args=cfg, processing_class=tok,
                              train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in problems]}),
                              callbacks=[Clock()])
        trainer.train()
    return times[1:]


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both (1 when another job shares the cores)")
    torch.set_num_threads(parser.parse_args().threads)
    model, tok, source = bench_policy()
    task = ArithTask(n_train=PROMPTS * (STEPS + 1), n_eval=1, seed=1)
    mine = ours(copy.deepcopy(model), tok, task)
    trl_times = theirs(copy.deepcopy(model), tok, task)
    print(f"policy: {source}; {PROMPTS} prompts x {K} samples, {MAX_NEW} new tokens; threads {torch.get_num_threads()}")
    print(f"prmlab RL step : {median(mine):6.2f} s (steps: {[round(t, 2) for t in mine]})")
    if trl_times is None:
        print("TRL is not installed (pip install -e .[bench]): no baseline to compare against")
        report("rl_step", median(mine), "s/step", "trl-not-installed", float("nan"), {"policy": source, "ours": mine})
        return
    print(f"TRL GRPO step  : {median(trl_times):6.2f} s (steps: {[round(t, 2) for t in trl_times]})")
    report("rl_step", median(mine), "s/step", "trl.GRPOTrainer", median(trl_times) / median(mine),
           {"policy": source, "prompts": PROMPTS, "k": K, "max_new_tokens": MAX_NEW, "ours": mine, "trl": trl_times})


if __name__ == "__main__":
    main()
