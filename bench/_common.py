"""Shared helpers for benchmarks: the tiny policy to time, medians, and the BENCH line."""

from __future__ import annotations

import json
import statistics
import time

import torch

from prmlab.paths import runs_dir


FRESH_TASK = dict(n_train=5000, n_eval=10, seed=0)  # the task a fresh bench policy is given its SFT on


def bench_policy(sft_steps: int = 300):
    """The tiny policy to benchmark: the latest finished tiny run of notebook 00 if there is one,
    else a freshly built tiny policy given a short SFT so that it writes well-formed, EOS-terminated
    solutions (timings of a random policy would measure the wrong lengths)."""
    from prmlab import artifacts, models, sft, tracking
    from prmlab.tasks.arith import ArithTask

    try:
        model, tok, run = artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="tiny", device="cpu")
        return model.eval(), tok, f"00_policy_sft run {run.info.run_id[:8]}"
    except tracking.NoRunError:
        pass
    tok = models.build_char_tokenizer()
    model = models.build_policy(tok, models.PolicyConfig(), seed=0)
    task = ArithTask(**FRESH_TASK)
    cfg = sft.SFTConfig(steps=sft_steps, batch_size=32, mistake_rate=0.2, misconception_rate=0.0)  # as before SFTConfig took 00's
    sft.train_sft(model, tok, task, cfg, progress=False)
    return model.eval(), tok, f"fresh tiny policy + {sft_steps} SFT steps"


def bench_policy_task(tokenizer, n_eval: int = 10):
    """The task `bench_policy`'s policy was trained on (``tokenizer``: the policy's): that of the latest
    finished tiny run of notebook 00, rebuilt from its parameters (`prmlab.artifacts.policy_task`), if there
    is one, else the fresh policy's."""
    from prmlab import artifacts, tracking
    from prmlab.tasks.arith import ArithTask

    try:
        run = tracking.latest_run("00_policy_sft", "tiny")
    except tracking.NoRunError:
        return ArithTask(**FRESH_TASK)
    return artifacts.policy_task(run, tokenizer, n_eval=n_eval)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(name: str, value: float, unit: str, baseline: str, ratio: float, details: dict) -> None:
    """Write runs/bench/<name>.json and print the BENCH line (last line of the benchmark's output)."""
    out = runs_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
              "threads": torch.get_num_threads(), **details}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"BENCH {name} {value:.4g} {unit} vs {baseline} ratio={ratio:.2f}")


median = statistics.median
