"""Supervised fine-tuning of the base policy on generated solutions with a controlled share of mistakes.

A policy trained only on perfect solutions would be either almost always right or wrong in systematic
ways; real models err now and then, at random steps and in recognisable ways. So a share
``mistake_rate`` of the training solutions carries one realistic mistake (wrong arithmetic, a wrong
carried value, a skipped or an extra operation) after which the solution carries on faithfully, as a
model's would. The trained policy then errs at a controlled rate, and search and RL have room to help.

Every example's prompt is the task's own (``task.prompt``), the text the sampler starts from: with a chat
model's template (real data, ``chat_template``) the policy is trained on the chat-templated prompt it will
be asked. On real data the solutions are the data set's reference solutions (no mistakes to inject).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .batching import pad_id, right_pad
from .schedules import lr_at
from .tasks.arith import INJECTABLE_KINDS, misconception_applies, solution_with_misconceptions, solution_with_mistake


@dataclass
class SFTConfig:
    """Training of the tiny policy. The defaults are the tiny profile's (notebook 00, `prmlab.studies`):
    its task has misconceptions; on a task without them set ``misconception_rate`` 0."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 32  # solutions per step
    lr: float = 3e-3  # peak learning rate (AdamW)
    warmup_steps: int = 50  # linear warm-up
    schedule: str = "wsd"  # after warm-up: "wsd" holds the peak, then decays linearly to 10% over the last
    # decay_fraction of the steps (warmup-stable-decay); "cosine" decays to 10% from the start
    decay_fraction: float = 0.3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mistake_rate: float = 0.1  # share of training solutions with one injected random slip
    misconception_rate: float = 0.6  # share of training solutions written by a writer who holds the task's
    # misconceptions (`tasks.arith.MISCONCEPTIONS`), among problems where one applies
    seed: int = 0


def training_example(task, problem, rng: random.Random, mistake_rate: float,
                     misconception_rate: float = 0.0) -> tuple[str, str]:
    """(prompt, solution) for one problem of ``task``: the prompt as sampling writes it (``task.prompt``),
    and the reference solution, or (arithmetic task only) with probability ``misconception_rate`` where
    one of the task's misconceptions applies the solution of a writer who holds them (every step they
    apply to follows the wrong rule), else with probability ``mistake_rate`` one random slip."""
    rules = task.cfg.rules if misconception_rate > 0 else ()
    if rules and misconception_applies(problem, rules) and rng.random() < misconception_rate:
        return task.prompt(problem), solution_with_misconceptions(problem, rules)[0]
    if rng.random() < mistake_rate:
        text, _ = solution_with_mistake(problem, rng, rng.choice(INJECTABLE_KINDS))
        return task.prompt(problem), text
    return task.prompt(problem), task.reference_solution(problem)


def encode_batch(tokenizer, pairs: list[tuple[str, str]], device="cpu"):
    """Right-padded input ids, attention mask and labels (-100 on prompt and padding; EOS is learnt)."""
    # two batched tokenizer calls per batch (about half the time of one call per text)
    prompt_ids = tokenizer([p for p, _ in pairs]).input_ids
    solution_ids = tokenizer([s for _, s in pairs], add_special_tokens=False).input_ids
    seqs, labels = [], []
    for p, s in zip(prompt_ids, solution_ids):
        s = list(s) + [tokenizer.eos_token_id]
        seqs.append(list(p) + s)
        labels.append([-100] * len(p) + s)
    ids, mask = right_pad(seqs, pad_id(tokenizer))
    return ids.to(device), mask.to(device), right_pad(labels, -100)[0].to(device)


def lm_loss(model, ids, mask, labels) -> torch.Tensor:
    """Token cross-entropy. Padding is on the right, so with causal attention no real token ever
    sees a pad token and no mask is needed (the mask-free attention path is faster)."""
    logits = model(input_ids=ids).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def step_buckets(task) -> dict[int, list]:
    """``task.train`` grouped by the number of steps of the reference solution: batches drawn from one
    group have solutions of similar length, so they waste little compute on padding."""
    buckets: dict[int, list] = {}
    for p in task.train:
        buckets.setdefault(len(task.split_steps(task.reference_solution(p))), []).append(p)
    return buckets


def train_sft(model, tokenizer, task, cfg: SFTConfig, log=None, progress: bool = True) -> list[dict]:
    """Train ``model`` in place on ``task.train`` (examples from `training_example`); ``log(metrics, step)``
    receives ``train/...`` metrics. Returns history."""
    from tqdm.auto import tqdm

    if not task.train:
        raise ValueError("train_sft needs at least one training problem")
    if (cfg.mistake_rate > 0 or cfg.misconception_rate > 0) and not task.has_oracle:
        raise ValueError(f"mistake_rate and misconception_rate must be 0 on {task.name}: mistakes are injected "
                         f"into the arithmetic task's solutions only (got {cfg.mistake_rate}, {cfg.misconception_rate})")
    if cfg.misconception_rate > 0 and not task.cfg.rules:
        raise ValueError("misconception_rate > 0 needs the task's misconceptions (e.g. misconceptions='no-carry')")
    # Batches are drawn with replacement, one step-count bucket at a time: not `batching.epoch_order`
    # (the length buckets are what keeps padding low, and these draws fix the 00 policy).
    rng = random.Random(f"sft-{cfg.seed}")
    torch.manual_seed(cfg.seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    model.train()
    buckets = step_buckets(task)
    sizes = sorted(buckets)
    weights = [len(buckets[k]) for k in sizes]
    history = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="sft", disable=not progress)
    for step in bar:
        bucket = buckets[rng.choices(sizes, weights)[0]]
        pairs = [training_example(task, rng.choice(bucket), rng, cfg.mistake_rate, cfg.misconception_rate)
                 for _ in range(cfg.batch_size)]
        ids, mask, labels = encode_batch(tokenizer, pairs, device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.decay_fraction)
        loss = lm_loss(model, ids, mask, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        row = {"train/loss": loss.item(), "train/lr": opt.param_groups[0]["lr"], "train/grad_norm": float(gnorm),
               "train/elapsed_s": time.perf_counter() - t0}
        history.append(row)
        if log is not None and (step % 10 == 0 or step == cfg.steps - 1):
            log(row, step)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{row['train/loss']:.3f}")
    model.eval()
    return history
