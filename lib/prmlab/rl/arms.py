"""The arms of notebook 02 (PURE) and how one arm is run: a fresh copy of the SFT policy, trained with
one reward recipe, logged as a nested MLflow run, its rollouts kept for the explorer.

An arm is a step scorer (the trained PRM, the exact oracle, the policy's own likelihood, or none), a credit
assignment (sum-form, min-form) and the share of prompts that also get the verifiable reward. The oracle arms
are the ceiling: the same credit assignment with a perfect PRM, which separates credit-assignment error from
PRM error; the likelihood arms are the floor a trained PRM must beat.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from ..choices import check_choice
from ..metrics import Difference, paired_difference, seed_difference
from . import meter
from .credit import choose_outcome_prompts
from .loop import RLConfig, train
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
    (``policy`` itself is not touched). With ``parent_run`` the arm is logged as a nested run of arm
    ``name`` and seed ``cfg.seed`` ("prm-min · seed 0"), with the RL config and ``params`` as parameters.
    ``on_step(model, step)`` runs after every RL step (e.g. to evaluate a learned PRM as it trains); the
    metrics it returns are logged too."""
    model = copy.deepcopy(policy)
    config = {**cfg.to_dict(), **(params or {})}
    child = parent_run.child(name, config, seed=cfg.seed) if parent_run is not None else None
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


ACCURACY = "eval/accuracy"  # the headline accuracy: sampled pass@1 on the eval problems
GREEDY = "eval/accuracy_greedy"  # greedy pass@1 on the same problems, reported beside it (PURE and PRIME evaluate greedily)
WRONG = "oracle/wrong_step_share"  # the oracle's share of wrong steps in each RL step's rollouts (the hacking meter)
WINDOW = 5  # RL steps averaged at each end of the wrong-step share curve (one evaluation interval at the defaults)


def steps_to_reach(history: list[dict], target: float, key: str = ACCURACY) -> float:
    """The first RL step whose evaluation reaches ``target`` (inf if none does)."""
    return next((float(s) for s, v in curve(history, key).items() if v >= target - 1e-12), float("inf"))


def _seeds(histories) -> list[list[dict]]:
    """A list of per-seed histories; a single history (a list of rows) counts as one seed."""
    return [histories] if histories and isinstance(histories[0], dict) else list(histories)


def _ends(values: list[float], window: int = WINDOW) -> tuple[float, float]:
    """The means of the first and the last ``window`` values (fewer where the curve is short, so that
    the two ends never overlap)."""
    w = max(1, min(window, len(values) // 2))
    return float(np.mean(values[:w])), float(np.mean(values[-w:]))


def arm_seed_values(histories) -> dict[str, list[float]]:
    """Per seed (one entry per history with an evaluation): ``start``, ``final`` and ``best`` sampled
    accuracy (first, last and highest evaluation), ``start_greedy`` and ``final_greedy`` (where greedy
    accuracy was evaluated), and ``wrong_first`` / ``wrong_last``, the oracle's wrong-step share averaged
    over the first and the last ``WINDOW`` RL steps (where the oracle judged the rollouts)."""
    out: dict[str, list[float]] = {k: [] for k in ("start", "final", "best", "start_greedy", "final_greedy",
                                                     "wrong_first", "wrong_last")}
    for h in _seeds(histories):
        acc = list(curve(h, ACCURACY).values())
        if not acc:
            continue
        out["start"].append(acc[0])
        out["final"].append(acc[-1])
        out["best"].append(max(acc))
        greedy = list(curve(h, GREEDY).values())
        if greedy:
            out["start_greedy"].append(greedy[0])
            out["final_greedy"].append(greedy[-1])
        wrong = list(curve(h, WRONG).values())
        if len(wrong) >= 2:
            first, last = _ends(wrong)
            out["wrong_first"].append(first)
            out["wrong_last"].append(last)
    return out


def _improves(v: dict[str, list[float]]) -> bool:
    """An arm improves the policy only if its sampled and its greedy accuracy both rise beyond noise."""
    return seed_difference(v["final"], v["start"]).holds and seed_difference(v["final_greedy"], v["start_greedy"]).holds


def arm_headline(name: str, v: dict[str, list[float]]) -> dict[str, float]:
    """``headline/<name>/...`` metrics of one arm from `arm_seed_values` (means over seeds; ``_se``: the
    standard error of that difference, `prmlab.headlines.seed_difference`):

    - ``final_accuracy``, ``accuracy_change`` (+ ``_se``): sampled pass@1 at the last evaluation, minus the first;
    - ``final_accuracy_greedy``, ``greedy_change`` (+ ``_se``): the same for greedy accuracy (where evaluated);
    - ``improves``: 1.0 if sampled and greedy accuracy both rise beyond two standard errors over at least 3
      seeds (an arm whose greedy accuracy does not rise does not count as improving the policy), else 0.0;
    - ``fall_from_best`` (+ ``_se``): the highest evaluation minus the last (how far the arm fell from its peak);
    - ``wrong_step_rise`` (+ ``_se``): the oracle's wrong-step share over the last ``WINDOW`` RL steps minus
      over the first (where the oracle judged the rollouts)."""
    p = f"headline/{name}/"
    change, fall = seed_difference(v["final"], v["start"]), seed_difference(v["best"], v["final"])
    out = {p + "final_accuracy": float(np.mean(v["final"])), p + "accuracy_change": change.mean,
           p + "accuracy_change_se": change.se, p + "fall_from_best": fall.mean, p + "fall_from_best_se": fall.se}
    if v["final_greedy"]:
        greedy = seed_difference(v["final_greedy"], v["start_greedy"])
        out |= {p + "final_accuracy_greedy": float(np.mean(v["final_greedy"])), p + "greedy_change": greedy.mean,
                p + "greedy_change_se": greedy.se}
    out[p + "improves"] = float(_improves(v))
    if v["wrong_last"]:
        rise = seed_difference(v["wrong_last"], v["wrong_first"])
        out |= {p + "wrong_step_rise": rise.mean, p + "wrong_step_rise_se": rise.se}
    return out


SUMMARY_COLUMNS = {  # the per-arm summary's columns -> the `arm_seed_values` each averages over seeds
    "final sampled accuracy": "final", "final greedy accuracy": "final_greedy",
    f"wrong-step share, last {WINDOW} steps": "wrong_last",  # the hacking meter: the oracle's share of wrong steps
    "wrong-step share rise": "wrong_rise",  # ... and how far it rose from the first WINDOW steps
}


def arm_summary(results: dict) -> list[dict]:
    """One row per arm of ``results`` (``{arm: [history per seed]}``, or one history): ``seeds``, and for each
    of ``SUMMARY_COLUMNS`` (where measured) the mean over seeds and, as ``<column> se``, its standard error
    (nan with one seed)."""
    rows = []
    for arm, histories in results.items():
        v = arm_seed_values(histories)
        v["wrong_rise"] = [last - first for last, first in zip(v["wrong_last"], v["wrong_first"])]
        row = {"arm": arm, "seeds": len(v["final"])}
        for column, key in SUMMARY_COLUMNS.items():
            if v[key]:
                d = paired_difference(v[key], [0.0] * len(v[key]))  # against 0: the mean and its standard error
                row |= {column: d.mean, f"{column} se": d.se}
        rows.append(row)
    return rows


def log_arm_summary(run, results: dict, name: str = "arm_summary"):
    """`arm_summary` logged on ``run`` (the parent of the arms' runs) as MLflow's table artifact
    ``<name>.json``, values to 4 significant digits, and as the figure ``figures/<name>``; returns
    (rows, figure)."""
    from .. import viz

    rows = arm_summary(results)
    run.log_table(rows, name)
    fig = viz.summary_bars_figure(rows, list(SUMMARY_COLUMNS), "arm", "Each arm at the end: mean over seeds "
                                  "(bars: one standard error)")
    run.log_figure(fig, name)
    return rows, fig


def _claim(out: dict, name: str, d: Difference, prefix: str = "") -> None:
    out[f"headline/{name}{prefix}_diff"], out[f"headline/{name}{prefix}_se"] = d.mean, d.se


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
      per seed, the RL step at which the verifiable arm first reaches its own final accuracy
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
        _claim(out, "sum_form_collapses", fell)
    if "prm-min" in values and "prm-sum" in values:
        s, m = values["prm-sum"], values["prm-min"]
        falls = seed_difference([b - f for b, f in zip(s["best"], s["final"])],
                                [b - f for b, f in zip(m["best"], m["final"])])
        ok = falls.holds and not seed_difference(m["best"], m["final"]).holds
        _claim(out, "min_form_stable", falls)
        if {"prm-sum", "prm-min"} <= wrong:
            rises = seed_difference([la - fi for la, fi in zip(s["wrong_last"], s["wrong_first"])],
                                    [la - fi for la, fi in zip(m["wrong_last"], m["wrong_first"])])
            ok = ok and rises.holds and not seed_difference(m["wrong_last"], m["wrong_first"]).holds
            _claim(out, "min_form_stable", rises, "_wrong")
        out["headline/min_form_stable"] = float(ok)
    plain = {a: v for a, v in values.items() if not a.startswith("oracle")}
    if "prm-min+vr" in plain and len(plain) > 1:
        vr = plain["prm-min+vr"]
        others = {a: v for a, v in plain.items() if a != "prm-min+vr"}
        runner = max(others, key=lambda a: float(np.mean(others[a]["final"])))
        beats = {a: seed_difference(vr["final"], v["final"]) for a, v in others.items()}
        out["headline/min_vr_best"] = float(all(d.holds for d in beats.values()) and _improves(vr))
        _claim(out, "min_vr_best", beats[runner])
    if "prm-min" in values and "verifiable" in values:
        ver, mins = _seeds(results["verifiable"]), _seeds(results["prm-min"])
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
            out["headline/min_form_faster"] = float(d.holds and missed == 0 and _improves(values["prm-min"]))
            _claim(out, "min_form_faster", d)
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
    """PRIME's headline from the histories of every seed of both arms (``{"rloo": [...], "prime": [...]}``),
    every difference judged by `prmlab.headlines.seed_difference` (it holds only beyond two standard errors
    over at least three seeds). Per seed, the rollouts outcome-only RLOO needed to reach its final accuracy
    and the rollouts PRIME needed to reach the same accuracy (inf if never):

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
        r_need, p_need = rollouts_to_reach(rc, target), rollouts_to_reach(pc, target)
        r_needs.append(r_need)
        p_needs.append(p_need)
        ratios.append(r_need / p_need if p_need > 0 else (1.0 if r_need == 0 else float("inf")))
        gains.append(list(pc.values())[-1] - target)
    finite = [r for r in ratios if np.isfinite(r)]
    values = {a: arm_seed_values(results[a]) for a in ("rloo", "prime")}
    out: dict[str, float] = {}
    for a, v in values.items():
        out |= arm_headline(a, v)
    improves = _improves(values["prime"])
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
