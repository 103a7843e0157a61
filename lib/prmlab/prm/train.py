"""Training a process reward model on step labels, in one process or many (accelerate).

The loss (`prmlab.prm.model.prm_loss`) is binary cross-entropy between ``sigmoid(reward logit)`` at the
end of each step and the step's label (hard 0/1 or soft in [0, 1]), **averaged over all labelled steps of
the global batch**.
``target="prm"`` labels every step; ``target="orm"`` uses only the last step's label (an outcome
reward model: the same network, supervised once per solution).

Distributed runs follow accelerate's ``split_batches=True`` semantics: every process draws the same
global batch of ``batch_size`` solutions (same seed) and takes its contiguous slice, so the union of
the per-process batches is the single-process batch. Each process divides its summed loss by the
global number of labelled steps (an all-reduce) and multiplies by the number of processes, so that
DDP's gradient averaging yields exactly the single-process gradient. One process and two give the
same losses. On CPU (gloo) two processes are started with::

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1
        --mixed_precision no --dynamo_backend no --main_process_port PORT script.py

(``--cpu --num_processes 2`` is not enough: without mpirun accelerate then starts a single process.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from itertools import islice

import torch

from ..batching import epoch_order
from ..choices import check_choice
from ..metrics import auroc, step_accuracy
from ..models import unwrap
from ..schedules import lr_at
from .formats import StepwiseRecord
from .labels import LABEL_SOURCES
from .model import PRMConfig, ProcessRewardModel, prm_loss

TARGETS = ("prm", "orm")


@dataclass
class PRMTrainConfig:
    """Training of a PRM (or an ORM) on labelled solutions. The defaults are the tiny profile's (notebook
    01, `prmlab.studies`)."""

    steps: int = 400  # optimizer steps
    batch_size: int = 32  # solutions per optimizer step over all processes (split among them)
    lr: float = 1e-3  # peak learning rate (AdamW), cosine decay to 10%
    weight_decay: float = 0.0
    warmup_steps: int = 20  # linear warm-up
    grad_clip: float = 1.0  # max global gradient norm (<= 0: no clipping)
    seed: int = 0  # fixes the batch order
    target: str = "prm"  # "prm": every step's label is a target; "orm": only the last step's
    log_every: int = 10  # log metrics every this many steps (and at the last one)

    def __post_init__(self):
        check_choice(self.target, TARGETS, "target")
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError("steps, batch_size and log_every must be >= 1")


def global_batches(n_records: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Record indices of every global batch: consecutive slices of the seeded epoch order."""
    order = list(islice(epoch_order(n_records, seed), batch_size * steps))
    return [order[k * batch_size : (k + 1) * batch_size] for k in range(steps)]


def _examples(prm: ProcessRewardModel, records: list[StepwiseRecord], target: str):
    """(encoding, step ends read as targets, labels) per record; an ORM keeps only the last step as a target."""
    out = []
    encoded = prm.encode_many([r.prompt for r in records], [r.completions for r in records])
    for r, enc in zip(records, encoded):
        labels, targets = torch.tensor(r.labels, dtype=torch.float32), enc[1]
        if target == "orm":  # (the likelihood readout still counts the tokens of every step)
            targets, labels = targets[-1:], labels[-1:]
        out.append((enc, targets, labels))
    return out


def _freeze_unused_lm_head(prm: ProcessRewardModel) -> None:
    # The head readout never calls the LM head; an untied one would get no gradient, which DDP rejects.
    if prm.likelihood:
        return
    base = unwrap(prm.backbone)
    out, inp = base.get_output_embeddings(), base.get_input_embeddings()
    if out is not None and out.weight is not inp.weight:
        out.weight.requires_grad_(False)


def train_prm(prm: ProcessRewardModel, records: list[StepwiseRecord], cfg: PRMTrainConfig, log=None,
              accelerator=None, progress: bool = True) -> list[dict]:
    """Train ``prm`` in place on ``records``; returns the history (one row of metrics per step).

    Full fine-tuning or LoRA is the PRM's own choice (``PRMConfig.lora``): whatever requires a gradient
    is trained. ``accelerator`` defaults to a new ``accelerate.Accelerator`` (on CPU when there is no
    GPU); under ``accelerate launch`` every process calls this function with the same arguments.
    ``log(metrics, step)`` receives ``train/loss``, ``train/lr``, ``train/grad_norm`` and
    ``train/step_accuracy`` (sigmoid >= 0.5 against labels rounded at 0.5) on the main process.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    records = [r for r in records if r.completions]  # a solution without steps has no label
    if not records:
        raise ValueError("train_prm needs at least one record with a labelled step")
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    if acc.gradient_accumulation_steps != 1:  # acc.backward would rescale the loss
        raise ValueError("train_prm takes whole global batches: use an Accelerator without gradient accumulation")
    world, rank = acc.num_processes, acc.process_index
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the number of processes ({world})")
    share = cfg.batch_size // world
    torch.manual_seed(cfg.seed)
    examples = _examples(prm, records, cfg.target)
    _freeze_unused_lm_head(prm)
    params = [p for p in prm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    model, opt = acc.prepare(prm, opt)
    model.train()
    history = []
    t0 = time.perf_counter()
    batches = global_batches(len(records), cfg.batch_size, cfg.steps, cfg.seed)
    bar = tqdm(batches, desc="prm", disable=not (progress and acc.is_main_process))
    for step, batch in enumerate(bar):
        mine = [examples[i] for i in batch[rank * share : (rank + 1) * share]]  # split_batches slicing
        ids, _, counted = prm.collate([enc for enc, _, _ in mine])
        y = torch.cat([lab for _, _, lab in mine]).to(acc.device)
        local_sum, z = prm_loss(model(ids, counted), [targets for _, targets, _ in mine], y)
        n_steps = acc.reduce(torch.tensor(float(len(y)), device=acc.device), "sum")
        # Mean over the global batch's steps; x world because DDP averages the processes' gradients.
        loss = local_sum * world / n_steps.clamp(min=1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.steps, cfg.warmup_steps, "cosine")  # warm-up, then cosine to 10%
        acc.backward(loss)
        gnorm = acc.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        hits = ((z.detach() >= 0) == (y >= 0.5)).sum()
        total = acc.reduce(torch.stack([local_sum.detach().double(), hits.double()]), "sum")
        n = max(float(n_steps), 1.0)
        row = {"train/loss": float(total[0]) / n, "train/lr": opt.param_groups[0]["lr"],
               "train/grad_norm": float(gnorm), "train/step_accuracy": float(total[1]) / n,
               "train/elapsed_s": time.perf_counter() - t0}
        history.append(row)
        if log is not None and acc.is_main_process and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            log(row, step)
        if step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{row['train/loss']:.3f}")
    prm.eval()
    return history


def evaluate_prm(prm: ProcessRewardModel, records: list[StepwiseRecord], batch_size: int = 64) -> dict:
    """Step AUROC and accuracy (threshold 0.5) of the PRM's rewards against oracle step labels.

    The oracle labels are ``meta["oracle_labels"]`` when present (records from ``LabelSet.records``),
    else the records' own labels, which must then be hard (0/1).
    """
    records = [r for r in records if r.completions]
    scores = prm.score([r.prompt for r in records], [r.completions for r in records], batch_size=batch_size)
    labels = [r.meta.get("oracle_labels", r.labels) for r in records]
    return {"eval/step_auroc": auroc(scores, labels), "eval/step_accuracy": step_accuracy(scores, labels),
            "eval/steps": sum(len(y) for y in labels)}


# ----------------------------------------------------------------------------------------------
# Notebook 01's models: one PRM per label source and an ORM, trained alike.


FILE = "file"  # the label source of the PRM trained on a file of step labels (01's label_file)
TRAIN_LABELS = (*LABEL_SOURCES, FILE)


def label_sources(train_labels: str, main: str, has_oracle: bool, has_file: bool = False) -> list[str]:
    """The label sources to train a PRM on: the comma-separated ``train_labels``, then ``main`` if
    missing, then ``file`` if there is a label file; without a step oracle there are no oracle labels."""
    sources = [s.strip() for s in train_labels.split(",") if s.strip()]
    for extra in (main, FILE if has_file else None):
        if extra is not None and extra not in sources:
            sources.append(extra)
    if FILE in sources and not has_file:
        raise ValueError("label source 'file' needs label_file: a PRM800K, Math-Shepherd or prmlab step-wise file")
    return [s for s in sources if s != "oracle"] if not has_oracle else sources


def model_name(source: str) -> str:
    """'PRM-<source>' for a PRM, 'ORM' for the model trained on outcome labels."""
    return "ORM" if source == "outcome" else f"PRM-{source}"


def artifact_name(name: str, main: str) -> str:
    """The artifact a model is logged as: 'prm' for the main PRM (the one later notebooks load),
    'orm', else 'prm_<labels>' (e.g. PRM-mc-soft -> prm_mc_soft)."""
    if name == "ORM":
        return "orm"
    return "prm" if name == main else "prm_" + name[len("PRM-"):].replace("-", "_")


def model_metrics(metrics: dict, name: str) -> dict:
    """``train/<key>`` metrics of one model renamed ``train/<name>/<key>`` (several models, one run)."""
    return {f"train/{name}/{k[len('train/'):]}" if k.startswith("train/") else k: v for k, v in metrics.items()}


UNTRAINED = "untrained"  # the model name of the PRM readout before training
EVAL_SPLITS = ("eval", "dev")


def eval_problems(task, split: str, n_label_problems: int, n_eval: int) -> list:
    """The problems 01 evaluates on: ``eval``, the task's held-out eval split (report here); ``dev``, the
    ``n_eval`` training problems after the ``n_label_problems`` labelled ones (choose settings here; the
    task must have been built with that many training problems)."""
    check_choice(split, EVAL_SPLITS, "eval_split")
    if split == "eval":
        return list(task.eval)
    dev = list(task.train[n_label_problems : n_label_problems + n_eval])
    if len(dev) < n_eval:
        raise ValueError(f"the dev split needs {n_label_problems + n_eval} training problems, the task has {len(task.train)}")
    return dev


def untrained_model(backbone, tokenizer, prm_config: PRMConfig) -> ProcessRewardModel:
    """The PRM every model of `train_models` starts from, before it sees a label: what training adds
    is measured against it."""
    config = replace(prm_config, extra={**prm_config.extra, "labels": "none (before training)"})
    return ProcessRewardModel.from_policy(backbone, tokenizer, config).eval()


def train_models(backbone, tokenizer, label_set, sources: list[str], prm_config: PRMConfig, cfg: PRMTrainConfig,
                 log=None, progress: bool = True, file_records: list | None = None) -> tuple[dict, dict]:
    """A PRM per label source in ``sources`` and an ORM on outcome labels, each a fresh copy of
    ``backbone`` (the policy, or `prmlab.prm.backbone.clean_backbone`) built by ``prm_config`` and
    trained by ``cfg`` (its ``target`` set per model). The source ``file`` trains on ``file_records``
    (`prmlab.prm.formats.read_step_labels`), the others on ``label_set``'s sampled solutions.

    Returns ``(models, histories)`` keyed by ``model_name``; ``log(metrics, step)`` receives each
    model's metrics as ``train/<name>/...``."""
    models, histories = {}, {}
    for source, target in [(s, "prm") for s in sources] + [("outcome", "orm")]:
        name = model_name(source)
        config = replace(prm_config, extra={**prm_config.extra, "labels": source})
        model = ProcessRewardModel.from_policy(backbone, tokenizer, config)
        named_log = None if log is None else (lambda m, step, name=name: log(model_metrics(m, name), step))
        records = file_records if source == FILE else label_set.records(source)
        histories[name] = train_prm(model, records, replace(cfg, target=target), log=named_log, progress=progress)
        models[name] = model.eval()
    return models, histories
