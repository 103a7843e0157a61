"""Notebook 03's arms (PRIME against outcome-only RLOO): PRIME's reward settings, its advantage function,
the hook that judges the implicit PRM as it trains, accuracy against rollouts consumed and PRIME's headline
(sample efficiency and final gain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import first_reach, seed_difference
from ..prm.reranking import scorer_metrics
from ..prm.scorer import score_samples
from .arms import ACCURACY, arm_headline, arm_seed_values, improves_policy


@dataclass
class PrimeSettings:
    """PRIME's reward recipe. The defaults are the paper profile's: PRIME's published configuration
    (verl's ``recipe/prime``); notebook 03's tiny profile trains the implicit PRM at ``prm_lr`` 1e-3."""

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
        process, metrics = ((None, {}) if implicit is None
                            else implicit.update(ro.tokens, outcomes, ro.k, settings.update_order))
        adv, _ = prime_returns(None if process is None else process.double(), ro.response_mask, outcomes, ro.k,
                               settings.process_coef, settings.outcome_coef, settings.batch_norm)
        return adv.float(), metrics

    return fn


def scorer_quality_fn(scorer, pool, every: int, prefix: str = "implicit_prm"):
    """An ``after_step`` hook that measures ``scorer`` as a PRM every ``every`` RL steps on a fixed pool
    of solutions (`prmlab.evaluation.Evaluation`, judged by the oracle where the task has one):
    within-problem AUROC, per-kind step AUROC and the ProcessBench protocol
    (`prmlab.prm.reranking.scorer_metrics`), as ``<prefix>/...`` metrics."""
    def fn(model, step):
        if step % every:
            return {}
        scores = score_samples(scorer, pool.samples.prompts, pool.samples.steps_by_prompt)
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


def prime_headline(results: dict[str, list[list[dict]]]) -> dict[str, float]:
    """PRIME's headline from the histories of every seed of both arms (``{"rloo": [...], "prime": [...]}``),
    every difference judged by `prmlab.headlines.seed_difference` (it holds only beyond two standard errors
    over at least three seeds). Per seed, the rollouts outcome-only RLOO needed to reach its final accuracy
    and the rollouts PRIME needed to reach the same accuracy (`prmlab.metrics.first_reach`: interpolated
    between the two evaluations around the crossing; inf if never):

    - ``headline/sample_efficiency``: their ratio (the paper: 2.5x; 0 for a seed where PRIME never reaches it,
      counted in ``headline/prime_missed``), mean with ``_min`` and ``_max`` over seeds;
    - ``headline/prime_faster`` (PRIME learns faster than outcome-only RLOO): 1.0 if PRIME reaches it on every
      seed, with fewer rollouts beyond noise (``headline/prime_faster_diff``: RLOO's rollouts minus PRIME's,
      mean over seeds; ``headline/prime_faster_se``: its standard error), and PRIME improves the policy
      (its greedy accuracy rises too), else 0.0;
    - ``headline/final_gain``: PRIME's final sampled accuracy minus RLOO's (the paper: +6.9 points), mean with
      ``_min`` and ``_max`` over seeds and ``_se``; ``headline/final_gain_holds``: 1.0 if the gain is beyond
      noise and PRIME improves the policy; ``headline/final_gain_greedy`` (+ ``_se``): the same gain in greedy
      accuracy;
    - `arm_headline`'s metrics of each arm (``headline/rloo/...``, ``headline/prime/...``: final sampled and
      greedy accuracy, their changes from the start, ``improves``), ``headline/seeds``;
    - ``headline/implicit_prm_rollout_auroc``: the implicit PRM's within-group AUROC on the policy's fresh
      rollouts (before it learns from them), averaged over PRIME's steps and seeds: the quality of the signal
      PRIME's process credit actually uses."""
    ratios, gains, r_needs, p_needs = [], [], [], []
    fresh = [row["implicit_prm/within_group_auroc"] for h in results["prime"] for row in h
             if np.isfinite(row.get("implicit_prm/within_group_auroc", float("nan")))]
    for rloo_h, prime_h in zip(results["rloo"], results["prime"]):
        rc, pc = eval_vs_rollouts(rloo_h), eval_vs_rollouts(prime_h)
        target = list(rc.values())[-1]
        r_need, p_need = first_reach(rc, target), first_reach(pc, target)  # rollouts
        r_needs.append(r_need)
        p_needs.append(p_need)
        ratios.append(r_need / p_need if p_need > 0 else (1.0 if r_need == 0 else float("inf")))
        gains.append(list(pc.values())[-1] - target)
    finite = [r for r in ratios if np.isfinite(r)]
    values = {a: arm_seed_values(results[a]) for a in ("rloo", "prime")}
    out: dict[str, float] = {}
    for a, v in values.items():
        out |= arm_headline(a, v)
    improves = improves_policy(values["prime"])
    faster = seed_difference(r_needs, p_needs)
    missed = sum(not np.isfinite(p) for p in p_needs)
    gain = seed_difference(values["prime"]["final"], values["rloo"]["final"])
    greedy = seed_difference(values["prime"]["final_greedy"], values["rloo"]["final_greedy"])
    return out | {
        "headline/sample_efficiency": float(np.mean(ratios)) if len(finite) == len(ratios) else float("inf"),
        "headline/sample_efficiency_min": float(min(ratios)), "headline/sample_efficiency_max": float(max(ratios)),
        "headline/prime_faster": float(faster.holds and missed == 0 and improves),
        "headline/prime_faster_diff": faster.mean, "headline/prime_faster_se": faster.se,
        "headline/final_gain": float(np.mean(gains)), "headline/final_gain_min": float(min(gains)),
        "headline/final_gain_max": float(max(gains)), "headline/final_gain_se": gain.se,
        "headline/final_gain_holds": float(gain.holds and improves),
        "headline/final_gain_greedy": greedy.mean, "headline/final_gain_greedy_se": greedy.se,
        "headline/seeds": float(len(ratios)), "headline/prime_missed": float(missed),
        "headline/implicit_prm_rollout_auroc": float(np.mean(fresh)) if fresh else float("nan")}

