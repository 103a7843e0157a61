"""The RL loop shared by notebooks 02 (PURE) and 03 (PRIME): sample, reward, update, measure.

One RL step: ``prompts_per_step`` training problems, ``k`` rollouts each from the one sampling loop;
an *advantage function* turns the rollouts into per-token advantages (PURE's credit assignment, PRIME's
implicit rewards, or the outcome alone); then PPO-clip epochs over minibatches update the policy; the
hacking meter reads the rollouts with the task's oracle; every ``eval_every`` steps (before the step's
update, so step 0 measures the starting policy) and after the last step the policy is evaluated on
held-out problems. Every metric goes to ``log(metrics, step)`` (MLflow in the notebooks).

Multi-process (``accelerate launch``): every process samples the same global batch (sampling is
counter-based, so the rollouts are identical) and computes the same advantages; each minibatch is then
split among the processes, and each divides its summed token loss by the global token count and
multiplies by the number of processes, so that DDP's gradient average is exactly the single-process
gradient (as `prmlab.prm.train` does). Sampling is thus replicated, not split: the update is what scales.

Each process runs its share of a minibatch as micro-batches of rows of similar length, each trimmed to its
own longest row (``micro_batch_tokens``), and accumulates their gradients before the optimizer step: the
same update as one padded pass, without computing the padding (responses range from a few tokens to the
whole budget: padded to the longest row, a batch of the tiny profile is about 40% padding).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Callable

import torch

from ..batching import epoch_order, length_chunks
from ..choices import check_choice
from ..backends import BACKENDS, make_sampler
from ..sampling import SamplerBase, SamplingConfig, sample
from ..tokens import batched_logprobs, response_logprobs
from . import meter
from .advantages import masked_mean
from .ppo import KL_KINDS, kl_estimate, ppo_clip_loss
from .prime import filter_groups
from .rollouts import Rollouts, collect, engine_logprob_gap


@dataclass
class RLConfig:
    """One RL run. The defaults are the tiny profile's (notebooks 02 and 03, `prmlab.studies`); notebooks
    override what their arms change."""

    steps: int = 40  # RL steps: one batch of rollouts and its update each
    prompts_per_step: int = 32  # training problems per RL step
    k: int = 4  # rollouts per problem (the leave-one-out group)
    max_new_tokens: int = 64  # token budget of a rollout
    temperature: float = 1.0  # rollout sampling temperature (1: the sampler's log-probs are the policy's)
    lr: float = 1e-4  # AdamW learning rate, constant
    weight_decay: float = 0.0  # AdamW weight decay
    ppo_epochs: int = 1  # passes over each batch of rollouts
    minibatch_size: int = 64  # rollouts per optimizer step, over all processes (the batch if larger)
    micro_batch_tokens: int = 2048  # padded tokens per forward/backward pass: a minibatch runs as micro-batches
    # of rows of similar length, gradients accumulated (the same update as one pass, less padding and memory)
    clip_eps: float = 0.2  # PPO clip range
    grad_clip: float = 1.0  # max global gradient norm (<= 0: none)
    kl_coef: float = 0.0  # KL to the reference policy as a reward term (0: off, no reference forward)
    kl_estimator: str = "k3"  # "k1" (log-ratio) or "k3" (Schulman's non-negative estimator)
    accuracy_filter: bool = False  # PRIME's filter: train only on problems whose group accuracy is in [low, high]
    filter_low: float = 0.2  # lowest kept group accuracy (inclusive)
    filter_high: float = 0.8  # highest kept group accuracy (inclusive)
    filter_truncated: bool = False  # the filter also drops a problem with any truncated rollout
    filter_rounds: int = 4  # batches of problems sampled at most per RL step to refill a filtered batch
    eval_every: int = 5  # evaluate every this many RL steps (and after the last)
    eval_samples: int = 4  # sampled responses per eval problem (sampled pass@1 averages them)
    seed: int = 0  # fixes the problem order, the rollouts' random streams and the minibatch order
    backend: str = "prmlab"  # generation: prmlab's sampler | vllm (an in-process engine, weights pushed after each update)

    def __post_init__(self):
        check_choice(self.kl_estimator, KL_KINDS, "kl_estimator")
        check_choice(self.backend, BACKENDS, "backend")
        if self.k < 2:
            raise ValueError(f"k must be >= 2 (leave-one-out baselines need a group), got {self.k}")
        for name in ("steps", "prompts_per_step", "max_new_tokens", "ppo_epochs", "minibatch_size",
                     "micro_batch_tokens", "eval_every", "eval_samples", "filter_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for on-policy rollouts, got {self.temperature}")

        if not 0 <= self.filter_low <= self.filter_high <= 1:
            raise ValueError(f"need 0 <= filter_low <= filter_high <= 1, got {self.filter_low}, {self.filter_high}")

    def to_dict(self) -> dict:
        return asdict(self)


# An advantage function: (rollouts, RL step) -> ([B, T] advantages, metrics to log).
AdvantageFn = Callable[[Rollouts, int], tuple[torch.Tensor, dict]]


def evaluate_policy(policy, tokenizer, task, problems: list, cfg: RLConfig, batch_size: int = 256) -> dict[str, float]:
    """Greedy and sampled pass@1 of ``policy`` on ``problems`` (fixed streams: comparable across steps)."""
    prompts = [task.prompt(p) for p in problems]
    out = {}
    # the sampled accuracy (the headline's) is plain eval/accuracy: MLflow orders its charts and compare
    # tables by metric key, so it comes first, with eval/accuracy_greedy beside it
    for key, temp, n in (("eval/accuracy_greedy", 0.0, 1), ("eval/accuracy", 1.0, cfg.eval_samples)):
        sampler = make_sampler(policy, tokenizer, SamplingConfig(temperature=temp, max_new_tokens=cfg.max_new_tokens,
                                                                 seed=cfg.seed + 1), task.step_delimiter, cfg.backend)
        s = sample(sampler, prompts, n, batch_size)
        out[key] = sum(bool(task.grade(problems[r // n], t)) for r, t in enumerate(s.texts)) / len(s.texts)
    return out


def ppo_update(model, opt, params, ro: Rollouts, advantages: torch.Tensor, cfg: RLConfig, acc, step: int) -> dict:
    """PPO-clip epochs over minibatches of ``ro``; token-mean loss over each global minibatch."""
    world, rank = acc.num_processes, acc.process_index
    size = min(cfg.minibatch_size, ro.batch_size)
    if ro.batch_size % world or size % world:
        raise ValueError(f"a batch of {ro.batch_size} rollouts in minibatches of {size} does not split evenly "
                         f"among {world} processes")
    shuffled = epoch_order(ro.batch_size, cfg.seed * 1_000_003 + step)  # each PPO epoch in a fresh order
    sums = torch.zeros(6, dtype=torch.float64)  # loss, clip, approx_kl, entropy, grad_norm, minibatches
    model.train()
    for _ in range(cfg.ppo_epochs):
        order = torch.tensor(list(islice(shuffled, ro.batch_size)))
        for a in range(0, ro.batch_size, size):
            mb = order[a : a + size]
            share = len(mb) // world
            mine = mb[rank * share : (rank + 1) * share]  # split_batches slicing
            n_global = acc.reduce(ro.response_mask[mine].sum().to(acc.device), "sum").clamp(min=1.0)
            local = accumulate_gradient(model, ro, advantages, mine, float(n_global) / world, cfg, acc)
            gnorm = acc.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            opt.step()
            opt.zero_grad(set_to_none=True)
            tot = acc.reduce(local.to(acc.device), "sum").cpu() / float(n_global)
            sums += torch.cat([tot, torch.tensor([float(gnorm), 1.0], dtype=torch.float64)])
    model.eval()
    n = float(sums[5])
    return {"train/loss": float(sums[0]) / n, "train/clip_frac": float(sums[1]) / n,
            "train/approx_kl": float(sums[2]) / n, "train/entropy": float(sums[3]) / n,
            "train/grad_norm": float(sums[4]) / n}


def accumulate_gradient(model, ro: Rollouts, advantages: torch.Tensor, rows: torch.Tensor, scale: float,
                        cfg: RLConfig, acc) -> torch.Tensor:
    """Backward of (the PPO-clip token losses of ``rows``, summed) / ``scale``, in micro-batches of rows of
    similar length (`prmlab.batching.length_chunks`, longest first), each trimmed to its own longest row.
    With ``scale`` = global tokens / processes, DDP's average is the minibatch's token-mean gradient.
    Returns the token sums of loss, clip, approx_kl, entropy."""
    sums = torch.zeros(4, dtype=torch.float64)
    batches = length_chunks(ro.tokens.lengths[rows].tolist(), max_tokens=cfg.micro_batch_tokens, longest_first=True)
    for j, index in enumerate(batches):
        sub_rows = rows[index]
        sub = ro.rows(sub_rows)
        # Processes exchange gradients once, at the last backward: the sum over all micro-batches.
        with acc.no_sync(model) if j < len(batches) - 1 else nullcontext():
            logp, entropy = response_logprobs(model, sub.tokens, with_entropy=True)
            mask = sub.response_mask.to(logp.device)
            adv = advantages[sub_rows, : mask.shape[1]].to(logp.device)
            loss_mean, stats = ppo_clip_loss(logp, sub.old_logprobs.to(logp.device), adv, mask, cfg.clip_eps)
            n = float(mask.sum())
            acc.backward(loss_mean * (n / scale))
        sums += torch.tensor([float(loss_mean.detach()) * n, stats["clip_frac"] * n, stats["approx_kl"] * n,
                              float((entropy.detach() * mask).sum())], dtype=torch.float64)
    return sums


def rollout_batch(sampler: SamplerBase, task, cfg: RLConfig, stream, drawn: int) -> tuple[Rollouts | None, int, dict]:
    """The rollouts of one RL step, and the problems drawn so far (every problem drawn gets fresh random
    streams). With ``cfg.accuracy_filter`` (PRIME) only problems whose group accuracy lies in
    ``[filter_low, filter_high]`` are kept, and further problems are sampled (up to ``filter_rounds``
    batches) until ``prompts_per_step`` are kept; None when none was."""
    parts, kept, sampled = [], 0, 0
    for _ in range(cfg.filter_rounds if cfg.accuracy_filter else 1):
        problems = [task.train[next(stream)] for _ in range(cfg.prompts_per_step)]
        ro = collect(sampler, task, problems, cfg.k, stream_base=drawn * cfg.k)
        drawn, sampled = drawn + len(problems), sampled + ro.batch_size
        gap = engine_logprob_gap(ro) if not sampler.exact_logprobs and cfg.temperature == 1.0 else {}
        if not cfg.accuracy_filter:
            return ro, drawn, {"rollout/sampled": float(sampled), **gap}
        keep = filter_groups(ro.correct, cfg.k, cfg.filter_low, cfg.filter_high,
                             torch.tensor(ro.samples.truncated), cfg.filter_truncated)
        keep &= torch.cumsum(keep.long(), 0) <= cfg.prompts_per_step - kept  # no more than the batch needs
        if keep.any():
            parts.append(ro.groups(keep))
            kept += int(keep.sum())
        if kept >= cfg.prompts_per_step:
            break
    stats = {"rollout/sampled": float(sampled), "filter/kept_share": kept * cfg.k / sampled, **gap}
    return (Rollouts.concat(parts) if parts else None), drawn, stats


def train(policy, tokenizer, task, advantage_fn: AdvantageFn, cfg: RLConfig, eval_problems: list | None = None,
          ref_model=None, log=None, after_step=None, accelerator=None, progress: bool = True) -> list[dict]:
    """Train ``policy`` in place with PPO on ``task.train``; returns one row of metrics per RL step, and
    with ``eval_problems`` one more row (index ``cfg.steps``) with the trained policy's evaluation.

    ``advantage_fn(rollouts, step)`` gives the advantages (see `prmlab.rl.pure.pure_rewards`,
    `prmlab.rl.prime`); when ``cfg.kl_coef > 0`` the rollouts carry ``ref_logprobs`` from ``ref_model``
    for it. ``after_step(policy, step)`` runs after each RL step; a dict it returns joins the step's metrics.
    Whatever in ``policy`` requires a gradient is trained (full fine-tuning, or LoRA via peft).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    if cfg.kl_coef > 0 and ref_model is None:
        raise ValueError("kl_coef > 0 needs a ref_model")
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(cfg.seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    model, opt = acc.prepare(policy, opt)
    sampler = make_sampler(policy, tokenizer, SamplingConfig(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                                             seed=cfg.seed), task.step_delimiter, cfg.backend)
    stream, drawn, sampled = epoch_order(len(task.train), cfg.seed), 0, 0.0  # training problems, epoch by epoch
    history, t_start = [], time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="rl", disable=not (progress and acc.is_main_process))
    for step in bar:
        t0 = time.perf_counter()
        row = {}
        if eval_problems and step % cfg.eval_every == 0:  # before the step's update: step 0 is the SFT policy
            row |= evaluate_policy(policy, tokenizer, task, eval_problems, cfg)
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        ro, drawn, batch_stats = rollout_batch(sampler, task, cfg, stream, drawn)
        sampled += batch_stats["rollout/sampled"]
        row |= batch_stats | {"train/rollouts_seen": sampled}
        if ro is None:  # the filter kept nothing: no update this step
            history.append(row)
            if log is not None and acc.is_main_process:
                log(row, step)
            continue
        if cfg.kl_coef > 0:
            ro.ref_logprobs = batched_logprobs(ref_model, ro.tokens, cfg.micro_batch_tokens)
        t1 = time.perf_counter()
        advantages, reward_metrics = advantage_fn(ro, step)
        t2 = time.perf_counter()
        row |= {**meter.rollout_shape(ro), **reward_metrics}
        if ro.verdicts is not None:
            row |= meter.oracle_meter(ro.verdicts)
        if cfg.kl_coef > 0:
            row["train/kl_ref"] = float(masked_mean(kl_estimate(ro.old_logprobs, ro.ref_logprobs, cfg.kl_estimator),
                                                    ro.response_mask))
        row |= ppo_update(model, opt, params, ro, advantages, cfg, acc, step)
        t_sync = time.perf_counter()
        sampler.sync()  # the next rollouts come from the updated weights (an engine gets them pushed)
        t3 = time.perf_counter()
        if not sampler.exact_logprobs:
            row["perf/weight_sync_s"] = t3 - t_sync
        row |= {"perf/eval_s": t_eval, "perf/rollout_s": t1 - t0, "perf/reward_s": t2 - t1, "perf/update_s": t3 - t2,
                "perf/elapsed_s": t3 - t_start}
        if after_step is not None:
            row |= after_step(policy, step) or {}
        history.append(row)
        if log is not None and acc.is_main_process:
            log(row, step)
        bar.set_postfix(acc=f"{row['rollout/accuracy']:.2f}")
    if eval_problems:  # the trained policy, logged at step = steps
        final = {**evaluate_policy(policy, tokenizer, task, eval_problems, cfg),
                 "train/rollouts_seen": sampled}
        history.append(final)
        if log is not None and acc.is_main_process:
            log(final, cfg.steps)
    return history
