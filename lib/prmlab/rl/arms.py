"""What notebooks 02 (PURE) and 03 (PRIME) share about their arms: how one arm is run (a fresh copy of
the SFT policy trained with one advantage function, logged as a nested MLflow run) and how the arms'
histories are read: curves, means over seeds, per-seed start / final / best values, an arm's headline
metrics and the per-arm summary table. Each notebook's own arms live beside it: `pure_arms` (02) and
`prime_arms` (03).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..metrics import Difference, first_reach, paired_difference, seed_difference
from .loop import RLConfig, train


@dataclass
class ArmResult:
    name: str
    history: list[dict]
    examples: list[dict] = field(default_factory=list)  # rollouts of the last step, for the explorer
    run_id: str | None = None



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
    """The RL step at which the evaluations first reach ``target`` (`prmlab.metrics.first_reach`:
    interpolated between the two evaluations around it; inf if none reaches it)."""
    return first_reach(curve(history, key), target)


def per_seed(histories) -> list[list[dict]]:
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
    for h in per_seed(histories):
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


def improves_policy(v: dict[str, list[float]]) -> bool:
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
    out[p + "improves"] = float(improves_policy(v))
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


def put_claim(out: dict, name: str, d: Difference, prefix: str = "") -> None:
    out[f"headline/{name}{prefix}_diff"], out[f"headline/{name}{prefix}_se"] = d.mean, d.se

