"""PRM steps scored per second: one forward pass per solution (all steps read at once) against one
forward pass per step prefix (what search libraries commonly do). Expect a ratio near the mean number
of steps per solution.

Same PRM (initialised from the tiny policy; the head's values do not matter for timing), same 512
solutions (eval problems, half with one injected mistake), same batch size, 2 threads.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, median, report, timed  # noqa: E402

from prmlab.prm.model import ProcessRewardModel  # noqa: E402
from prmlab.tasks.arith import INJECTABLE_KINDS, ArithTask, solution_with_mistake, split_steps  # noqa: E402

N_SOLUTIONS, BATCH, REPEATS = 512, 64, 5


def main():
    torch.set_num_threads(2)
    policy, tok, source = bench_policy()
    prm = ProcessRewardModel.from_policy(policy, tok).eval()
    task = ArithTask(n_train=0, n_eval=N_SOLUTIONS, seed=0)
    rng = random.Random(0)
    prompts, steps = [], []
    for i, p in enumerate(task.eval):
        text = p.reference_solution() if i % 2 else solution_with_mistake(p, rng, rng.choice(INJECTABLE_KINDS))[0]
        prompts.append(p.prompt)
        steps.append(split_steps(text))
    n_steps = sum(len(s) for s in steps)

    # the alternative: every step prefix is its own sequence, and only its last step is read
    pre_prompts = [p for p, s in zip(prompts, steps) for _ in s]
    pre_steps = [s[: i + 1] for s in steps for i in range(len(s))]

    one = lambda: prm.score(prompts, steps, batch_size=BATCH)  # noqa: E731
    per_prefix = lambda: prm.score(pre_prompts, pre_steps, batch_size=BATCH)  # noqa: E731
    # the two give the same rewards (a prefix's last step sees exactly what it sees in the full solution)
    a, b = one(), per_prefix()
    flat_b = iter([r[-1] for r in b])
    assert np.allclose(np.concatenate(a), [next(flat_b) for s in steps for _ in s], atol=1e-5)

    t_one, t_prefix = [], []
    for _ in range(REPEATS):
        t_one += timed(one, 1)
        t_prefix += timed(per_prefix, 1)
    ours, theirs = n_steps / median(t_one), n_steps / median(t_prefix)
    print(f"PRM from: {source}; {N_SOLUTIONS} solutions, {n_steps} steps (mean {n_steps / N_SOLUTIONS:.2f} per solution)")
    print(f"one forward per solution  : {ours:8.0f} steps/s")
    print(f"one forward per step prefix: {theirs:8.0f} steps/s")
    report("prm_scoring", ours, "steps/s", "per-prefix scoring", ours / theirs,
           {"policy": source, "solutions": N_SOLUTIONS, "steps": n_steps, "mean_steps": n_steps / N_SOLUTIONS,
            "seconds_one_forward": t_one, "seconds_per_prefix": t_prefix})


if __name__ == "__main__":
    main()
