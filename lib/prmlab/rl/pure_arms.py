"""Notebook 02's arms (PURE, min-form against sum-form credit): the arms themselves, PURE's reward
settings, the advantage function of an arm and PURE's four headline claims.

An arm is a step scorer (the trained PRM, the exact oracle, the policy's own likelihood, or none), a credit
assignment (sum-form, min-form) and the share of prompts that also get the verifiable reward. The oracle arms
are the ceiling: the same credit assignment with a perfect PRM, which separates credit-assignment error from
PRM error; the likelihood arms are the floor a trained PRM must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..choices import check_choice
from ..metrics import seed_difference
from . import meter
from .arms import (ACCURACY, ArmResult, arm_headline, arm_seed_values, curve, improves_policy, per_seed, put_claim,
                   run_arm, steps_to_reach)
from .credit import choose_outcome_prompts
from .loop import RLConfig
from .pure import pure_rewards


@dataclass(frozen=True)
class Arm:
    name: str
    scorer: str  # "prm" | "oracle" | "likelihood" | "none" (ARM_SCORERS)
    credit: str  # "sum" | "min" | "none"
    verifiable_fraction: float  # share of training prompts that also get the outcome reward


PURE_ARMS = {a.name: a for a in (
    Arm("verifiable", "none", "none", 1.0),
    Arm("prm-sum", "prm", "sum", 0.0),
    Arm("prm-min", "prm", "min", 0.0),
    Arm("prm-min+vr", "prm", "min", 0.1),
    Arm("oracle-sum", "oracle", "sum", 0.0),
    Arm("oracle-min", "oracle", "min", 0.0),
    # the policy's own likelihood as the PRM (`prmlab.prm.likelihood`): the baseline a trained PRM must beat
    Arm("likelihood-sum", "likelihood", "sum", 0.0),
    Arm("likelihood-min", "likelihood", "min", 0.0),
)}
ARM_SCORERS = ("prm", "oracle", "likelihood", "none")  # the step scorers arms name (load_step_scorers' names)


def parse_arms(spec: str) -> list[Arm]:
    """Arms from a comma-separated list of names (see ``PURE_ARMS``)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError(f"no arm given; valid choices: {', '.join(PURE_ARMS)}")
    return [PURE_ARMS[check_choice(n, tuple(PURE_ARMS), "arm")] for n in names]


def arm_scorer_names(arms: list[Arm], prm_name: str = "prm") -> str:
    """The ``load_step_scorers`` spec of the scorers ``arms`` need (comma-separated; "" for none): the
    arms' ``"prm"`` is the 01 PRM artifact ``prm_name``; ``"likelihood"`` needs ``policy=`` there."""
    for a in arms:
        check_choice(a.scorer, ARM_SCORERS, f"scorer of arm {a.name!r}")
    return ",".join(prm_name if s == "prm" else s for s in sorted({a.scorer for a in arms} - {"none"}))



@dataclass
class PureSettings:
    """How step rewards become advantages in every PRM arm. The defaults are the paper profile's: PURE's
    published recipe (notebook 02's tiny profile keeps it too)."""

    convention: str = "2p-1"  # step reward from the scorer's p: PURE's p(good) - p(bad), or "p"
    min_temperature: float = 0.1  # min-form softmax temperature
    baseline: str = "token"  # PURE's token-level RLOO baseline, or "step" (invites the "one huge step" hack)
    verifiable_coef: float = 1.0  # weight of the outcome reward



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



def run_pure_arm(arm: Arm, policy, tokenizer, task, scorers: dict, cfg: RLConfig, settings: PureSettings,
                 eval_problems: list, parent_run=None, ref_model=None, n_examples: int = 8,
                 progress: bool = True) -> ArmResult:
    """`run_arm` with PURE's recipe for ``arm`` (its nested run named by arm and seed); ``scorers``
    maps ``"prm"``, ``"oracle"`` and ``"likelihood"`` to step scorers. The rollouts of the last step are kept for the
    explorer."""
    if arm.scorer != "none" and arm.scorer not in scorers:
        raise ValueError(f"arm {arm.name!r} needs a {arm.scorer!r} scorer; given: {', '.join(scorers) or 'none'}")
    kept: list = []
    fn = advantage_fn(arm, scorers.get(arm.scorer), task, settings, cfg, kept)
    params = {**vars(settings), "arm": arm.name, "scorer": arm.scorer, "credit": arm.credit,
              "verifiable_fraction": arm.verifiable_fraction}
    result = run_arm(arm.name, fn, policy, tokenizer, task, cfg, eval_problems, params, parent_run, ref_model,
                     progress=progress)
    result.examples = explorer_items(kept[0], kept[1].step_probs, n_examples) if kept else []
    return result



def pure_headline(results: dict[str, list[list[dict]]]) -> dict[str, float]:
    """PURE's four claims, measured on every seed's history of each arm (``{arm name: [history per seed]}``;
    a single history counts as one seed). Every difference is judged by
    `prmlab.headlines.seed_difference` on the per-seed values: it holds only beyond two standard errors
    over at least three seeds. Metrics: `arm_headline`'s per arm, ``headline/seeds`` (the fewest seeds of
    any arm), and per claim its verdict as 1.0 (held) or 0.0, absent where its arms did not run, with the
    difference it rests on as ``headline/<claim>_diff`` and that difference's standard error as
    ``headline/<claim>_se`` (positive differences point the claim's way):

    - ``sum_form_collapses`` (sum-form is hacked and collapses): prm-sum's final accuracy is below its start
      (``_diff``: start minus final) and, where the oracle judged the rollouts, its wrong-step share rises
      (its ``wrong_step_rise``), each beyond noise;
    - ``min_form_stable`` (min-form trains stably, read against sum-form's course as PURE states it: sum-form
      collapses through reward hacking, min-form does not): sum-form falls further from its best evaluation
      than min-form (``_diff``: prm-sum's ``fall_from_best`` minus prm-min's) and, where the oracle judged
      the rollouts, sum-form's wrong-step share rises more than min-form's (``_wrong_diff``, ``_wrong_se``),
      each beyond noise; and min-form itself neither falls from its best nor gains wrong steps beyond
      noise. Needs both arms;
    - ``min_vr_best`` (+10% verifiable is the best arm): prm-min+vr's final accuracy is above that of every
      other non-oracle arm beyond noise, and prm-min+vr improves the policy (greedy accuracy rises too);
      ``_diff`` / ``_se``: against the runner-up (the other non-oracle arm with the highest final accuracy);
    - ``min_form_faster`` (min-form reaches the verifiable-only arm's final accuracy in fewer RL steps):
      per seed, the RL step at which the verifiable arm first reaches its own final accuracy (`steps_to_reach`:
      interpolated between evaluations)
      (``headline/verifiable_steps_to_final``, mean over seeds) and at which prm-min first reaches it
      (``headline/min_form_steps_to_verifiable``, inf if it never does on some seed, counted in
      ``headline/min_form_missed``); ``_diff``: the first minus the second. Holds if min-form reaches it on
      every seed, earlier beyond noise, and improves the policy.
    """
    values = {a: arm_seed_values(h) for a, h in results.items()}
    values = {a: v for a, v in values.items() if v["final"]}
    out: dict[str, float] = {}
    for a, v in values.items():
        out |= arm_headline(a, v)
    if not values:
        return out
    out["headline/seeds"] = float(min(len(v["final"]) for v in values.values()))
    wrong = {a for a, v in values.items() if v["wrong_last"]}
    if "prm-sum" in values:
        s = values["prm-sum"]
        fell = seed_difference(s["start"], s["final"])
        hacked = seed_difference(s["wrong_last"], s["wrong_first"]).holds if "prm-sum" in wrong else True
        out["headline/sum_form_collapses"] = float(fell.holds and hacked)
        put_claim(out, "sum_form_collapses", fell)
    if "prm-min" in values and "prm-sum" in values:
        s, m = values["prm-sum"], values["prm-min"]
        falls = seed_difference([b - f for b, f in zip(s["best"], s["final"])],
                                [b - f for b, f in zip(m["best"], m["final"])])
        ok = falls.holds and not seed_difference(m["best"], m["final"]).holds
        put_claim(out, "min_form_stable", falls)
        if {"prm-sum", "prm-min"} <= wrong:
            rises = seed_difference([la - fi for la, fi in zip(s["wrong_last"], s["wrong_first"])],
                                    [la - fi for la, fi in zip(m["wrong_last"], m["wrong_first"])])
            ok = ok and rises.holds and not seed_difference(m["wrong_last"], m["wrong_first"]).holds
            put_claim(out, "min_form_stable", rises, "_wrong")
        out["headline/min_form_stable"] = float(ok)
    plain = {a: v for a, v in values.items() if not a.startswith("oracle")}
    if "prm-min+vr" in plain and len(plain) > 1:
        vr = plain["prm-min+vr"]
        others = {a: v for a, v in plain.items() if a != "prm-min+vr"}
        runner = max(others, key=lambda a: float(np.mean(others[a]["final"])))
        beats = {a: seed_difference(vr["final"], v["final"]) for a, v in others.items()}
        out["headline/min_vr_best"] = float(all(d.holds for d in beats.values()) and improves_policy(vr))
        put_claim(out, "min_vr_best", beats[runner])
    if "prm-min" in values and "verifiable" in values:
        ver, mins = per_seed(results["verifiable"]), per_seed(results["prm-min"])
        v_steps, m_steps = [], []
        for vh, mh in zip(ver, mins):
            if curve(vh, ACCURACY) and curve(mh, ACCURACY):
                target = list(curve(vh, ACCURACY).values())[-1]
                v_steps.append(steps_to_reach(vh, target))
                m_steps.append(steps_to_reach(mh, target))
        if v_steps:
            d = seed_difference(v_steps, m_steps)
            missed = sum(not np.isfinite(x) for x in m_steps)
            out["headline/verifiable_steps_to_final"] = float(np.mean(v_steps))
            out["headline/min_form_steps_to_verifiable"] = float(np.mean(m_steps))
            out["headline/min_form_missed"] = float(missed)
            out["headline/min_form_faster"] = float(d.holds and missed == 0 and improves_policy(values["prm-min"]))
            put_claim(out, "min_form_faster", d)
    return out

