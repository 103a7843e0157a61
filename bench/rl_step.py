"""Seconds per RL step of prmlab's loop against TRL's `GRPOTrainer`, same policy and settings, same run.

One RL step: 64 prompts x 4 sampled responses (temperature 1, up to 64 new tokens, stop at EOS), the
outcome reward (the task's grader) with a group baseline, one PPO-clip update (epsilon 0.2, token-mean
loss over the 256 responses, gradient clipping 1.0, no KL term, AdamW) on CPU. TRL (an optional extra:
``pip install -e .[bench]``) samples with ``model.generate`` and updates with its GRPO loss
(``loss_type="dapo"``: token-mean over the batch); prmlab samples with its KV-cached sampler and updates
with `prmlab.rl.loop.ppo_update`. Both train a copy of the same tiny policy.

Both sides compute in float32, as prmlab does: TRL's config sets ``bf16=False`` explicitly (left unset,
TRL's ``GRPOConfig`` turns it on, and on CPU that runs TRL's forward passes under bfloat16 autocast;
``--trl-bf16`` restores that default) and ``gradient_checkpointing=False`` (TRL's default is True, which
recomputes activations in the backward pass; prmlab's update recomputes none; ``--trl-gradient-checkpointing``
restores it). The script prints what TRL actually ran with: the config's ``bf16``/``fp16``, accelerate's
mixed precision, the dtypes of the model's parameters, whether gradient checkpointing was on, and the
autocast state and output dtype seen inside the model's first linear layer during generation and training
(a hook; prmlab's side is reported alike).

The two trainings take turns step by step, prmlab, TRL, prmlab, TRL, ... (each waits, in its own thread,
while the other runs a step), so that load from other processes hits both sides alike; waiting is never
timed. The first step of each is a warm-up; the medians of the next ``STEPS`` steps of each side are
compared, and the ratio is TRL's median over prmlab's.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_policy, median, report  # noqa: E402

from prmlab.rl.loop import RLConfig, train  # noqa: E402
from prmlab.rl.pure import pure_rewards  # noqa: E402
from prmlab.tasks.arith import ArithTask  # noqa: E402

PROMPTS, K, MAX_NEW, STEPS, LR = 64, 4, 64, 3, 1e-6
OURS, THEIRS = "prmlab", "trl"


class Turns:
    """Two loops, each in its own thread, that run one step at a time in turn: a side waits for its turn
    before its first step and hands over after each step (``handover``) until it is done (``finish``)."""

    def __init__(self, first: str, sides=(OURS, THEIRS)):
        self.sides, self.turn, self.done = sides, first, set()
        self.cond = threading.Condition()

    def _other(self, me: str) -> str:
        return self.sides[1] if me == self.sides[0] else self.sides[0]

    def wait(self, me: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == me or self._other(me) in self.done)

    def handover(self, me: str) -> None:
        """Let the other side run its next step (if it has one), and wait until it has."""
        with self.cond:
            self.turn = self._other(me)
            self.cond.notify_all()
        self.wait(me)

    def finish(self, me: str) -> None:
        with self.cond:
            self.done.add(me)
            self.turn = self._other(me)
            self.cond.notify_all()


class Precision:
    """What a model computes in: parameter dtypes, and, from a hook on its first linear layer, the autocast
    state and output dtype of every forward (counted by with/without gradient: training/generation)."""

    def __init__(self, model):
        self.model = model
        self.seen: Counter = Counter()
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        self.handle = linear.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        autocast = torch.is_autocast_enabled("cpu")
        dtype = str(torch.get_autocast_dtype("cpu")) if autocast else None
        self.seen[(torch.is_grad_enabled(), autocast, dtype, str(output.dtype))] += 1

    def summary(self) -> dict:
        self.handle.remove()
        params = Counter(str(p.dtype) for p in self.model.parameters())  # after training: as trained
        forwards = [dict(phase="grad (training)" if grad else "no_grad (generation/logprobs)", autocast_cpu=autocast,
                         autocast_dtype=dtype, output_dtype=out, calls=n)
                    for (grad, autocast, dtype, out), n in sorted(self.seen.items(), key=str)]
        return dict(param_dtypes=dict(params), forwards=forwards, torch_threads=torch.get_num_threads())

    @staticmethod
    def describe(summary: dict) -> str:
        forwards = "; ".join(f"{f['phase']}: autocast {'on (' + f['autocast_dtype'] + ')' if f['autocast_cpu'] else 'off'}, "
                             f"linear outputs {f['output_dtype']} ({f['calls']} calls)" for f in summary["forwards"])
        return (f"params {summary['param_dtypes']}; {forwards or 'no forward through the modules seen'}; "
                f"torch threads {summary['torch_threads']}")


def ours(model, tok, task, turns: Turns, out: dict) -> None:
    def outcome(ro, step):
        every = torch.ones(ro.batch_size, dtype=torch.bool)
        return pure_rewards(ro, None, credit="none", verifiable=every).advantages, {}

    precision = Precision(model)
    cfg = RLConfig(steps=STEPS + 1, prompts_per_step=PROMPTS, k=K, max_new_tokens=MAX_NEW, minibatch_size=PROMPTS * K,
                   lr=LR, ppo_epochs=1, clip_eps=0.2, grad_clip=1.0)
    turns.wait(OURS)
    try:
        history = train(model, tok, task, outcome, cfg, progress=False,
                        after_step=lambda policy, step: turns.handover(OURS))  # after the step's clock stopped
    finally:
        turns.finish(OURS)
    out["times"] = [h["perf/rollout_s"] + h["perf/reward_s"] + h["perf/update_s"] for h in history]
    out["precision"] = precision.summary()


def trl_available() -> bool:
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def theirs(model, tok, task, turns: Turns, out: dict, bf16: bool, gradient_checkpointing: bool) -> None:
    """TRL's training (in its own thread): ``out`` gets its step times, config and precision, or the error."""
    try:
        _theirs(model, tok, task, turns, out, bf16, gradient_checkpointing)
    except BaseException as e:  # re-raised by the main thread
        out["error"] = e
    finally:
        turns.finish(THEIRS)  # whatever happened, prmlab's side no longer waits for this one


def _theirs(model, tok, task, turns: Turns, out: dict, bf16: bool, gradient_checkpointing: bool) -> None:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    problems = task.train[: PROMPTS * (STEPS + 1)]
    by_prompt = {p.prompt: p for p in problems}

    def outcome(prompts, completions, **_):
        return [float(task.grade(by_prompt[p], c)) for p, c in zip(prompts, completions)]

    times: list[float] = out.setdefault("times", [])
    precision = Precision(model)

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kw):
            times.append(time.perf_counter() - self.t0)
            if model is not None and "gradient_checkpointing" not in out:
                out["gradient_checkpointing"] = bool(getattr(model, "is_gradient_checkpointing", False))
            turns.handover(THEIRS)  # not timed

    turns.wait(THEIRS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GRPOConfig(output_dir=tmp, per_device_train_batch_size=PROMPTS * K, num_generations=K,
                             generation_batch_size=PROMPTS * K, max_completion_length=MAX_NEW, temperature=1.0,
                             top_p=1.0, top_k=0, num_iterations=1, beta=0.0, epsilon=0.2, loss_type="dapo",
                             learning_rate=LR, max_grad_norm=1.0, max_steps=STEPS + 1, logging_steps=1, report_to=[],
                             use_cpu=True, save_strategy="no", shuffle_dataset=False, seed=0, dataloader_num_workers=0,
                             bf16=bf16, fp16=False, gradient_checkpointing=gradient_checkpointing)
            trainer = GRPOTrainer(model=model, reward_funcs=outcome, args=cfg, processing_class=tok,
                                  train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in problems]}),
                                  callbacks=[Clock()])
            out["config"] = dict(bf16=cfg.bf16, fp16=cfg.fp16, mixed_precision=trainer.accelerator.mixed_precision,
                                 gradient_checkpointing=cfg.gradient_checkpointing)
            trainer.train()
    finally:
        out["precision"] = precision.summary()


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both (1 when another job shares the cores)")
    parser.add_argument("--trl-bf16", action="store_true", help="TRL's own default: bf16=True (autocast on CPU)")
    parser.add_argument("--trl-gradient-checkpointing", action="store_true",
                        help="TRL's own default: recompute activations in the backward pass")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, source = bench_policy()
    task = ArithTask(n_train=PROMPTS * (STEPS + 1), n_eval=1, seed=1)
    mine: dict = {}
    trl_out: dict | None = {} if trl_available() else None
    turns = Turns(first=OURS)
    worker = None
    if trl_out is not None:  # TRL trains in a second thread (same torch thread count), taking turns with prmlab
        worker = threading.Thread(target=theirs, daemon=True, name="trl",
                                  args=(copy.deepcopy(model), tok, task, turns, trl_out, args.trl_bf16,
                                        args.trl_gradient_checkpointing))
        worker.start()
    else:
        turns.finish(THEIRS)  # prmlab's steps then follow each other without waiting
    ours(copy.deepcopy(model), tok, task, turns, mine)
    if worker is not None:
        worker.join()
        if "error" in trl_out:
            raise trl_out["error"]
    mine_t = mine["times"][1:]  # the first step of each is a warm-up
    print(f"policy: {source}; {PROMPTS} prompts x {K} samples, {MAX_NEW} new tokens; threads {torch.get_num_threads()}; "
          f"steps alternate prmlab, TRL, ... (warm-up + {STEPS} timed each)")
    print(f"prmlab precision: {Precision.describe(mine['precision'])}")
    print(f"prmlab RL step : {median(mine_t):6.2f} s (steps: {[round(t, 2) for t in mine_t]})")
    if trl_out is None:
        print("TRL is not installed (pip install -e .[bench]): no baseline to compare against")
        report("rl_step", median(mine_t), "s/step", "trl-not-installed", float("nan"),
               {"policy": source, "ours": mine_t, "ours_precision": mine["precision"]})
        return
    trl_t = trl_out["times"][1:]
    c = trl_out["config"]
    print(f"TRL config: bf16={c['bf16']} fp16={c['fp16']} (accelerate mixed_precision={c['mixed_precision']!r}), "
          f"gradient_checkpointing={c['gradient_checkpointing']} (on in the model: {trl_out.get('gradient_checkpointing')})")
    print(f"TRL precision: {Precision.describe(trl_out['precision'])}")
    print(f"TRL GRPO step  : {median(trl_t):6.2f} s (steps: {[round(t, 2) for t in trl_t]})")
    report("rl_step", median(mine_t), "s/step", "trl.GRPOTrainer", median(trl_t) / median(mine_t),
           {"policy": source, "prompts": PROMPTS, "k": K, "max_new_tokens": MAX_NEW, "order": "alternating steps",
            "ours": mine_t, "trl": trl_t, "warmup": {"ours": mine["times"][0], "trl": trl_out["times"][0]},
            "ours_precision": mine["precision"], "trl_config": c,
            "trl_gradient_checkpointing_in_model": trl_out.get("gradient_checkpointing"),
            "trl_precision": trl_out["precision"]})


if __name__ == "__main__":
    main()
