"""Notebook 04's study of search methods, built on `compare`: every method with every step scorer at
equal budgets, the metrics it is logged as, the budget each method needs to reach a target accuracy,
and SMC's sensitivity to its temperature and resampling scheme.

Curves are named ``<method> [<scorer>]`` (majority vote, which needs no scorer: ``majority``) and logged
as ``<measure>/<method>/<scorer>``: ``acc/smc/prm``, ``tokens/beam_search/oracle``, ``acc/majority``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .compare import METHODS, budget_to_reach, compare_methods, summarize
from .particle_filter import smc_decode
from .resampling import RESAMPLING_SCHEMES
from .smc import SMCConfig

ORACLE = "oracle"  # the scorer name of the exact step oracle (a perfect PRM)
IMPLICIT = "implicit"  # the scorer name of PRIME's implicit PRM (notebook 03)
BUDGET_MEASURES = ("tokens", "prm_tokens", "wall_time")
BASELINES = ("best_of_n", "beam_search")  # what SMC's scaling advantage is measured against


def load_step_scorers(spec: str, task, problems: list, tokenizer, profile: str | None = None,
                      prm_run_id: str | None = None) -> tuple[dict, dict]:
    """The step scorers named in ``spec`` (comma-separated): ``oracle`` (the exact step oracle of the
    task; it needs one), ``implicit`` (PRIME's implicit PRM from the latest finished run of notebook 03
    of ``profile``) or PRM artifacts of notebook 01 (``prm``, ``prm_oracle``, ...), loaded from its
    latest finished run of ``profile`` or from the run ``prm_run_id``.

    Returns ``(scorers, sources)``: name -> scorer, and name -> the run id it came from ('oracle')."""
    from .. import artifacts
    from ..prm.model import CachedPRMScorer
    from ..prm.oracle import OracleScorer

    scorers, sources = {}, {}
    for name in [x.strip() for x in spec.split(",") if x.strip()]:
        if name == ORACLE:
            if not task.has_oracle:
                raise ValueError(f"the 'oracle' scorer needs a task with a step oracle; {task.name} has none")
            scorers[name], sources[name] = OracleScorer(task, problems, eps=1e-3, tokenizer=tokenizer), ORACLE
        elif name == IMPLICIT:  # PRIME's implicit PRM, trained online by notebook 03
            implicit, _, implicit_run = artifacts.load_model("03_prime_implicit", "implicit_prm", kind="implicit_prm",
                                                             profile=profile)
            scorers[name], sources[name] = implicit, implicit_run.info.run_id
        else:
            prm, _, prm_run = artifacts.load_model("01_prm_training", name, kind="prm", profile=profile, run_id=prm_run_id)
            scorers[name], sources[name] = CachedPRMScorer(prm), prm_run.info.run_id
    if not scorers:
        raise ValueError("scorers is empty; name at least one PRM artifact of notebook 01 or 'oracle'")
    return scorers, sources


def scorer_tags(policy_run_id: str, sources: dict) -> dict:
    """Run tags saying where the policy and every scorer came from (``prmlab.prm_run``: the first PRM's run)."""
    return {"prmlab.policy_run": policy_run_id, **{f"prmlab.scorer.{k}": v for k, v in sources.items()},
            "prmlab.prm_run": next((v for v in sources.values() if v != ORACLE), ORACLE)}


def compare_scorers(make_sampler, scorers: dict, prompts: list[str], references: list, ns: list[int], seeds: list[int],
                    progress: bool = True, **options) -> tuple[list[dict], dict]:
    """`compare_methods` once per scorer (majority vote only with the first: it ignores the scorer);
    ``options`` go to it (answer_fn, m, aggregation, rerank_aggregation, smc_config).

    Returns ``(rows, pools)``: every row with its ``method`` renamed ``<method> [<scorer>]`` and its
    ``scorer``; and per scorer the best-of-N result over all ``max(ns)`` samples of the first seed,
    whose problems hold every sample with the scorer's step rewards (to judge the scorer itself)."""
    rows, pools = [], {}
    for i, (name, scorer) in enumerate(scorers.items()):
        methods = METHODS if i == 0 else tuple(m for m in METHODS if m != "majority")

        def keep_pool(row, result, name=name):
            if row["method"] == "best_of_n" and row["n"] == max(ns) and row["seed"] == seeds[0]:
                pools[name] = result

        for r in compare_methods(make_sampler, scorer, prompts, references, ns, seeds, methods=methods,
                                 progress=progress, on_result=keep_pool, **options):
            r["scorer"] = "none" if r["method"] == "majority" else name
            r["method"] = r["method"] if r["method"] == "majority" else f"{r['method']} [{name}]"
            rows.append(r)
    return rows, pools


def method_metric(method: str, measure: str = "acc") -> str:
    """The metric of a curve: ('smc [prm]', 'acc') -> 'acc/smc/prm'; ('majority', 'tokens') -> 'tokens/majority'."""
    return f"{measure}/" + method.replace(" [", "/").replace("]", "").replace(" ", "_")


def budget_metrics(rows: list[dict]) -> list[tuple[dict, int]]:
    """``(metrics, step)`` pairs to log: the mean over seeds of every budget measure and of the
    accuracy of every curve at every N (step = N)."""
    out = []
    for measure in (*BUDGET_MEASURES, "accuracy"):
        for method, curve in summarize(rows, "n", measure).items():
            name = method_metric(method, "acc" if measure == "accuracy" else measure)
            out += [({name: mean}, n) for n, (mean, lo, hi) in curve.items()]
    return out


def mean_curves(summary: dict[str, dict]) -> dict[str, dict]:
    """curve -> {N: mean} from a `summarize` result curve -> {N: (mean, min, max)}."""
    return {m: {n: v[0] for n, v in c.items()} for m, c in summary.items()}


def budget_to_reach_table(means: dict[str, dict], scorer: str, max_n: int) -> tuple[list[tuple[dict, int]], list[dict]]:
    """With ``scorer``: for the targets 90% and 100% of best-of-N's best accuracy, the budget N each
    method needs (`budget_to_reach`: interpolated in log N; inf: never within ``max_n``) and SMC's
    advantage over each baseline (the baseline's N over SMC's; ``max_n`` over SMC's N when the baseline
    never gets there).

    Returns ``(metrics, rows)``: ``(metrics, step)`` pairs ``headline/<scorer>/n_to_reach/<method>`` and
    ``headline/<scorer>/smc_advantage_vs_<baseline>`` with step = round(100 * target), and one table
    row per target."""
    mine = {m.split(" [")[0]: c for m, c in means.items() if m.endswith(f"[{scorer}]")}
    if "majority" in means:
        mine["majority"] = means["majority"]
    best_bon = max(mine["best_of_n"].values())
    metrics, rows = [], []
    for target in sorted({round(best_bon * f, 3) for f in (0.9, 1.0)}):
        step = int(round(100 * target))
        need = {m: budget_to_reach(c, target) for m, c in mine.items()}
        rows.append({"target accuracy": target, **need})
        metrics += [({f"headline/{scorer}/n_to_reach/{m}": n}, step) for m, n in need.items() if np.isfinite(n)]
        for base in BASELINES:
            if np.isfinite(need["smc"]) and base in need:
                ratio = need[base] / need["smc"]
                value = ratio if np.isfinite(ratio) else max_n / need["smc"]
                metrics.append(({f"headline/{scorer}/smc_advantage_vs_{base}": value}, step))
    return metrics, rows


def accuracy_at(means: dict[str, dict], n: int) -> dict:
    """``headline/acc_at_max_n/<method>/<scorer>``: every curve's mean accuracy at budget ``n``."""
    return {method_metric(m, "headline/acc_at_max_n"): c[n] for m, c in means.items() if c.get(n) is not None}


def smc_accuracy(make_sampler, scorer, prompts: list[str], references: list, seeds: list[int], config: SMCConfig,
                 aggregation: str, answer_fn) -> tuple[float, float, float]:
    """(mean, min, max) over ``seeds`` of SMC's accuracy with ``config`` (its seed set to each seed)."""
    accs = [smc_decode(make_sampler(s), scorer, prompts, replace(config, seed=s), aggregation=aggregation,
                       answer_fn=answer_fn).accuracy(references) for s in seeds]
    return float(np.mean(accs)), float(np.min(accs)), float(np.max(accs))


def sensitivity(make_sampler, scorer, prompts: list[str], references: list, seeds: list[int], config: SMCConfig,
                taus: list[float], aggregation: str, answer_fn) -> tuple[dict, dict]:
    """SMC's accuracy (mean, min, max over seeds) for each temperature in ``taus`` and for each
    resampling scheme, everything else as in ``config``. Returns ``(by_tau, by_scheme)``."""
    run = lambda cfg: smc_accuracy(make_sampler, scorer, prompts, references, seeds, cfg, aggregation, answer_fn)  # noqa: E731
    by_tau = {tau: run(replace(config, temperature=tau)) for tau in taus}
    by_scheme = {scheme: run(replace(config, resampling=scheme)) for scheme in RESAMPLING_SCHEMES}
    return by_tau, by_scheme


def sensitivity_metrics(by_tau: dict, by_scheme: dict) -> list[tuple[dict, int | None]]:
    """``(metrics, step)`` pairs: ``sensitivity/tau`` with step = round(100 * tau), and
    ``sensitivity/scheme/<scheme>`` (means over seeds)."""
    return ([({"sensitivity/tau": v[0]}, int(round(100 * tau))) for tau, v in by_tau.items()]
            + [({f"sensitivity/scheme/{scheme}": v[0]}, None) for scheme, v in by_scheme.items()])


def judged_pool(task, problems: list, result) -> tuple[list, list | None, np.ndarray]:
    """A best-of-N result's samples as ``(step_rewards, verdicts, correct)`` [problems][samples]: its
    scorer's step rewards, the oracle's verdicts (None without an oracle) and whether each final
    answer is right."""
    scores = [list(p.step_rewards) for p in result.problems]
    if not task.has_oracle:
        correct = np.array([[task.grade(q, t) for t in p.texts] for q, p in zip(problems, result.problems)])
        return scores, None, correct
    verdicts = [[task.judge(q, t) for t in p.texts] for q, p in zip(problems, result.problems)]
    return scores, verdicts, np.array([[v.answer_correct for v in row] for row in verdicts])


def scorers_quality(task, problems: list, pools: dict, how: str) -> tuple[dict, list[dict], dict]:
    """Each scorer judged on its best-of-N pool (``compare_scorers``), as 01 judges its PRMs:
    ``eval/<scorer>/...`` metrics (`prmlab.prm.reranking.scorer_metrics`, solution scores aggregated by
    ``how``), one table row per scorer, and (with an oracle) the profiles of all samples and of each
    scorer's picks for `prmlab.viz.picks_figure`. Returns ``(metrics, rows, profiles)``."""
    from ..prm.reranking import picks_profile, scorer_metrics, solutions_profile, table_row

    metrics, rows, profiles = {}, [], {}
    for name, result in pools.items():
        scores, verdicts, correct = judged_pool(task, problems, result)
        m = scorer_metrics(scores, correct, verdicts, how)
        metrics |= {f"eval/{name}/{k}": v for k, v in m.items()}
        rows.append(table_row(name, m))
        if verdicts is not None:
            profiles.setdefault("all samples", solutions_profile([v for row in verdicts for v in row]))
            profiles[name] = picks_profile(scores, verdicts, how)
    return metrics, rows, profiles
