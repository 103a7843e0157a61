"""The arms of notebook 02 (PURE) and how one arm is run: a fresh copy of the SFT policy, trained with
one reward recipe, logged as a nested MLflow run, its rollouts kept for the explorer.

An arm is a step scorer (the trained PRM, the exact oracle, or none), a credit assignment (sum-form,
min-form) and the share of prompts that also get the verifiable reward. The oracle arms are the ceiling:
the same credit assignment with a perfect PRM, which separates credit-assignment error from PRM error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from ..choices import check_choice
from . import meter
from .credit import choose_outcome_prompts
from .loop import RLConfig, train
from .pure import pure_rewards


@dataclass(frozen=True)
class Arm:
    name: str
    scorer: str  # "prm" | "oracle" | "none"
    credit: str  # "sum" | "min" | "none"
    verifiable_fraction: float  # share of training prompts that also get the outcome reward


PURE_ARMS = {a.name: a for a in (
    Arm("verifiable", "none", "none", 1.0),
    Arm("prm-sum", "prm", "sum", 0.0),
    Arm("prm-min", "prm", "min", 0.0),
    Arm("prm-min+vr", "prm", "min", 0.1),
    Arm("oracle-sum", "oracle", "sum", 0.0),
    Arm("oracle-min", "oracle", "min", 0.0),
)}


def parse_arms(spec: str) -> list[Arm]:
    """Arms from a comma-separated list of names (see ``PURE_ARMS``)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError(f"no arm given; valid choices: {', '.join(PURE_ARMS)}")
    return [PURE_ARMS[check_choice(n, tuple(PURE_ARMS), "arm")] for n in names]


@dataclass
class PureSettings:
    """How step rewards become advantages in every PRM arm (PURE's defaults)."""

    convention: str = "2p-1"  # step reward from the scorer's p: PURE's p(good) - p(bad), or "p"
    min_temperature: float = 0.1  # min-form softmax temperature
    baseline: str = "token"  # PURE's token-level RLOO baseline, or "step" (invites the "one huge step" hack)
    verifiable_coef: float = 1.0  # weight of the outcome reward


@dataclass
class ArmResult:
    name: str
    history: list[dict]
    examples: list[dict] = field(default_factory=list)  # rollouts of the last step, for the explorer
    run_id: str | None = None


def advantage_fn(arm: Arm, scorer, task, settings: PureSettings, cfg: RLConfig, keep: list | None = None):
    """The advantage function of ``arm`` for `prmlab.rl.loop.train`: scores the rollouts' steps, credits
    them (`prmlab.rl.pure.pure_rewards`) and reports the reward meters. The prompts with a verifiable
    reward are a fixed subset of the training set (PURE's recipe), drawn once from ``cfg.seed``; the KL term
    follows ``cfg``.
    ``keep``, if given, receives the last call's rollouts and rewards (for the explorer)."""
    chosen = choose_outcome_prompts(len(task.train), arm.verifiable_fraction, 1, cfg.seed)
    index = {id(p): i for i, p in enumerate(task.train)}

    def fn(ro, step):
        probs = scorer.score(ro.prompts, ro.samples.steps) if arm.scorer != "none" else None
        use = torch.tensor([bool(chosen[index[id(ro.problems[r // ro.k])]]) for r in range(ro.batch_size)])
        pr = pure_rewards(ro, probs, arm.credit, settings.convention, settings.min_temperature, use,
                          settings.verifiable_coef, settings.baseline, cfg.kl_coef, cfg.kl_estimator, ro.ref_logprobs)
        if keep is not None:
            keep[:] = [ro, pr]
        metrics = meter.reward_meter(probs, pr.process_returns, ro.correct)
        metrics["reward/verifiable_share"] = float(use.float().mean())
        return pr.advantages, metrics

    return fn


def explorer_items(ro, step_probs, n: int) -> list[dict]:
    """The first ``n`` rollouts of a batch as explorer items: steps, the oracle's kinds, step rewards."""
    items = []
    for r in range(min(n, ro.batch_size)):
        items.append({
            "prompt": ro.prompts[r],
            "steps": list(ro.samples.steps[r]),
            "kinds": list(ro.verdicts[r].kinds) if ro.verdicts is not None else None,
            "scores": None if step_probs is None else [float(x) for x in step_probs[r]],
            "correct": bool(ro.correct[r]),
        })
    return items


def run_arm(name: str, advantage, policy, tokenizer, task, cfg: RLConfig, eval_problems: list, params: dict | None = None,
            parent_run=None, ref_model=None, on_step=None, progress: bool = True) -> ArmResult:
    """Train a fresh copy of ``policy`` with the advantage function ``advantage`` and return its history
    (``policy`` itself is not touched). With ``parent_run`` the arm is logged as a nested run called
    ``name``, with the RL config and ``params`` as parameters. ``on_step(model, step)`` runs after every
    RL step (e.g. to evaluate a learned PRM as it trains); the metrics it returns are logged too."""
    model = copy.deepcopy(policy)
    child = parent_run.child(name, {**cfg.to_dict(), **(params or {})}) if parent_run is not None else None
    log = None if child is None else child.log_metrics
    try:
        history = train(model, tokenizer, task, advantage, cfg, eval_problems=eval_problems, ref_model=ref_model,
                        log=log, progress=progress, after_step=on_step)
    except BaseException:
        if child is not None:
            child.finish("FAILED")
        raise
    if child is not None:
        child.finish()
    return ArmResult(name, history, run_id=None if child is None else child.id)


def run_pure_arm(arm: Arm, policy, tokenizer, task, scorers: dict, cfg: RLConfig, settings: PureSettings,
                 eval_problems: list, parent_run=None, ref_model=None, n_examples: int = 8, suffix: str = "",
                 progress: bool = True) -> ArmResult:
    """`run_arm` with PURE's recipe for ``arm`` (its nested run named ``arm.name + suffix``); ``scorers``
    maps ``"prm"`` and ``"oracle"`` to step scorers. The rollouts of the last step are kept for the
    explorer."""
    if arm.scorer != "none" and arm.scorer not in scorers:
        raise ValueError(f"arm {arm.name!r} needs a {arm.scorer!r} scorer; given: {', '.join(scorers) or 'none'}")
    kept: list = []
    fn = advantage_fn(arm, scorers.get(arm.scorer), task, settings, cfg, kept)
    params = {**vars(settings), "arm": arm.name, "scorer": arm.scorer, "credit": arm.credit,
              "verifiable_fraction": arm.verifiable_fraction}
    result = run_arm(arm.name + suffix, fn, policy, tokenizer, task, cfg, eval_problems, params, parent_run, ref_model,
                     progress=progress)
    result.examples = explorer_items(kept[0], kept[1].step_probs, n_examples) if kept else []
    return result


def mean_history(histories: list[list[dict]]) -> list[dict]:
    """Step by step, the mean over seeds of every metric that all the seeds' histories logged at that step."""
    out = []
    for rows in zip(*histories):
        keys = set.intersection(*(set(r) for r in rows))
        out.append({k: float(np.mean([r[k] for r in rows])) for k in sorted(keys)})
    return out


def curve(history: list[dict], key: str) -> dict[int, float]:
    """``{RL step: value}`` of ``key`` over the steps that logged it."""
    return {s: row[key] for s, row in enumerate(history) if key in row and np.isfinite(row[key])}


ACCURACY = "eval/accuracy_sampled"  # the headline accuracy: sampled pass@1 on the eval problems
COLLAPSE_MARGIN = 0.05  # "collapses" / "stable": the final accuracy falls below / stays within this of the start


def steps_to_reach(history: list[dict], target: float, key: str = ACCURACY) -> float:
    """The first RL step whose evaluation reaches ``target`` (inf if none does)."""
    return next((float(s) for s, v in curve(history, key).items() if v >= target - 1e-12), float("inf"))


def pure_headline(results: dict[str, list[dict]], margin: float = COLLAPSE_MARGIN) -> dict[str, float]:
    """PURE's four claims, measured on the arms' histories (``{arm name: history}``); ``headline/*``
    metrics, each claim's verdict as 1.0 (held) or 0.0, absent where its arms did not run:

    - sum-form is hacked and collapses: prm-sum's final accuracy is more than ``margin`` below its start;
    - min-form trains stably: prm-min's final accuracy is no more than ``margin`` below its start;
    - +10% verifiable is the best arm: prm-min+vr's final accuracy is the highest of the non-oracle arms;
    - min-form reaches the verifiable-only arm's final accuracy in fewer RL steps than that arm does.
    """
    out: dict[str, float] = {}
    final = {a: list(curve(h, ACCURACY).values())[-1] for a, h in results.items() if curve(h, ACCURACY)}
    start = {a: list(curve(h, ACCURACY).values())[0] for a, h in results.items() if curve(h, ACCURACY)}
    for a in final:
        out[f"headline/{a}/final_accuracy"] = final[a]
        out[f"headline/{a}/accuracy_change"] = final[a] - start[a]
    if "prm-sum" in final:
        out["headline/sum_form_collapses"] = float(final["prm-sum"] < start["prm-sum"] - margin)
    if "prm-min" in final:
        out["headline/min_form_stable"] = float(final["prm-min"] >= start["prm-min"] - margin)
    plain = {a: v for a, v in final.items() if not a.startswith("oracle")}
    if "prm-min+vr" in plain and len(plain) > 1:
        out["headline/min_vr_best"] = float(plain["prm-min+vr"] >= max(plain.values()))
    if "prm-min" in results and "verifiable" in final:
        target = final["verifiable"]
        out["headline/verifiable_steps_to_final"] = steps_to_reach(results["verifiable"], target)
        out["headline/min_form_steps_to_verifiable"] = steps_to_reach(results["prm-min"], target)
        out["headline/min_form_faster"] = float(
            out["headline/min_form_steps_to_verifiable"] < out["headline/verifiable_steps_to_final"])
    return out


# ----------------------------------------------------------------------------------------------
# Notebook 03: PRIME against outcome-only RLOO.


@dataclass
class PrimeSettings:
    """PRIME's reward recipe (defaults: PRIME's published configuration, verl's ``recipe/prime``)."""

    beta: float = 0.05  # implicit reward r_t = beta * (log pi_phi - log pi_ref)
    prm_lr: float = 1e-6  # AdamW rate of the implicit PRM's online update (published: twice the policy's 5e-7)
    update_order: str = "before"  # "before" (the recipe's default): update, then re-score; "after": rewards from
    # the forward that computes the PRM loss
    process_coef: float = 5.0  # weight of the process-RLOO rewards in the return
    outcome_coef: float = 5.0  # weight of the outcome-RLOO reward in the return
    batch_norm: bool = True  # divide the process rewards by the batch's largest absolute return first


def prime_advantage_fn(implicit, settings: PrimeSettings):
    """PRIME's advantage function for `prmlab.rl.loop.train`: the implicit PRM (``None``: outcome-only
    RLOO) is updated on the rollouts' outcomes and gives token rewards; process RLOO and outcome RLOO
    are mixed into returns and whitened (`prmlab.rl.prime.prime_returns`)."""
    from .prime import prime_returns

    def fn(ro, step):
        outcomes = ro.correct.double()
        process, metrics = (None, {}) if implicit is None else implicit.update(ro, outcomes, settings.update_order)
        adv, _ = prime_returns(None if process is None else process.double(), ro.response_mask, outcomes, ro.k,
                               settings.process_coef, settings.outcome_coef, settings.batch_norm)
        return adv.float(), metrics

    return fn


def scorer_quality_fn(scorer, pool, every: int, prefix: str = "implicit_prm"):
    """An ``after_step`` hook that measures ``scorer`` as a PRM every ``every`` RL steps on a fixed pool
    of solutions (`prmlab.evaluation.Evaluation`, judged by the oracle where the task has one):
    within-problem AUROC, per-kind step AUROC and the ProcessBench protocol
    (`prmlab.prm.reranking.scorer_metrics`), as ``<prefix>/...`` metrics."""
    from ..prm.reranking import scorer_metrics

    prompts = [pool.samples.prompts[i] for i in range(len(pool.problems))]

    def fn(model, step):
        if step % every:
            return {}
        scores = [scorer.score([prompts[i]] * pool.n, pool.samples.steps_of(i)) for i in range(len(pool.problems))]
        return {f"{prefix}/{k}": v for k, v in scorer_metrics(scores, pool.correct, pool.verdicts).items()}

    return fn


def eval_vs_rollouts(history: list[dict], key: str = ACCURACY) -> dict[float, float]:
    """``{rollouts sampled before the evaluation: accuracy}``: evaluations run before their step's
    rollouts (the last one after the last step's)."""
    out, before = {}, 0.0
    for row in history:
        if key in row and np.isfinite(row[key]):
            out[row["train/rollouts_seen"] if "rollout/accuracy" not in row and "rollout/sampled" not in row
                else before] = row[key]
        before = row.get("train/rollouts_seen", before)
    return out


def rollouts_to_reach(curve_: dict[float, float], target: float) -> float:
    """The fewest rollouts after which ``curve_`` reaches ``target`` (inf if it never does)."""
    return next((float(x) for x, v in sorted(curve_.items()) if v >= target - 1e-12), float("inf"))


def prime_headline(results: dict[str, list[list[dict]]]) -> dict[str, float]:
    """PRIME's headline from the histories of every seed of both arms (``{"rloo": [...], "prime": [...]}``):
    per seed, the rollouts outcome-only RLOO needed to reach its final accuracy and the rollouts PRIME
    needed to reach the same accuracy; their ratio is PRIME's sample efficiency (the paper: 2.5x; 0 for
    a seed where PRIME never reaches it, counted in ``headline/prime_missed``). Means and spreads (min,
    max) over seeds, and the final accuracy gain (the paper: +6.9%). Also the implicit PRM's within-group
    AUROC on the policy's fresh rollouts (before it learns from them), averaged over PRIME's steps and
    seeds: the quality of the signal PRIME's process credit actually uses."""
    ratios, gains = [], []
    fresh = [row["implicit_prm/within_group_auroc"] for h in results["prime"] for row in h
             if np.isfinite(row.get("implicit_prm/within_group_auroc", float("nan")))]
    for rloo_h, prime_h in zip(results["rloo"], results["prime"]):
        rc, pc = eval_vs_rollouts(rloo_h), eval_vs_rollouts(prime_h)
        target = list(rc.values())[-1]
        r_need, p_need = rollouts_to_reach(rc, target), rollouts_to_reach(pc, target)
        ratios.append(r_need / p_need if p_need > 0 else (1.0 if r_need == 0 else float("inf")))
        gains.append(list(pc.values())[-1] - target)
    finite = [r for r in ratios if np.isfinite(r)]
    return {"headline/sample_efficiency": float(np.mean(ratios)) if len(finite) == len(ratios) else float("inf"),
            "headline/sample_efficiency_min": float(min(ratios)), "headline/sample_efficiency_max": float(max(ratios)),
            "headline/final_gain": float(np.mean(gains)), "headline/final_gain_min": float(min(gains)),
            "headline/final_gain_max": float(max(gains)), "headline/seeds": float(len(ratios)),
            "headline/prime_missed": float(sum(r == 0.0 for r in ratios)),
            "headline/implicit_prm_rollout_auroc": float(np.mean(fresh)) if fresh else float("nan")}
