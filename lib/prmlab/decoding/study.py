"""Notebook 04's study of search methods, built on `compare`: every method with every step scorer at
equal budgets, the metrics it is logged as, the budget each method needs to reach a target accuracy,
and SMC's sensitivity to its temperature and resampling scheme.

Curves are named ``<method> [<scorer>]`` (the methods that need no scorer: ``majority``, ``greedy``,
``majority_t0.5``, ...) and logged as ``<measure>/<method>/<scorer>``: ``acc/smc/prm``,
``tokens/beam_search/oracle``, ``acc/majority``, ``acc/greedy``, ``acc/best_of_n_t0.5/prm``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..choices import check_choice
from .compare import METHODS, budget_to_reach, compare_baselines, compare_methods, summarize, value_at
from .particle_filter import smc_decode
from .resampling import RESAMPLING_SCHEMES
from .smc import SMCConfig

BUDGET_MEASURES = ("tokens", "prm_tokens", "wall_time")
BASELINES = ("best_of_n", "beam_search")  # what SMC's scaling advantage is measured against
SEARCH_METHODS = ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority")  # the methods that use a scorer


def no_scorer(method: str) -> bool:
    """Whether a method's curve is named without a scorer: majority vote at any temperature, greedy."""
    return method in ("majority", "greedy") or method.startswith("majority_t")


def compare_scorers(make_sampler, scorers: dict, prompts: list[str], references: list, ns: list[int], seeds: list[int],
                    progress: bool = True, methods: dict | None = None, baseline_temperatures=None,
                    **options) -> tuple[list[dict], dict]:
    """`compare_methods` once per scorer (majority vote only with the first: it ignores the scorer);
    ``options`` go to it (answer_fn, m, aggregation, rerank_aggregation, smc_config). The scorers share
    each seed's pool of samples (best-of-N, weighted majority: the same samples, scored by each).

    ``methods`` maps a scorer's name to the methods it runs with (a tuple or a comma-separated string
    of `compare.METHODS`; default: all of them; entries for scorers not in ``scorers`` are ignored), e.g.
    ``{"likelihood": "smc,best_of_n"}`` for a baseline scorer. With ``baseline_temperatures`` (a list of
    temperatures, possibly empty) the baselines of `compare.compare_baselines` run too, best-of-N with the
    first scorer: ``greedy``, ``majority_t<T>`` and ``best_of_n_t<T> [<first scorer>]``.

    Returns ``(rows, pools)``: every row with its ``method`` renamed ``<method> [<scorer>]`` and its
    ``scorer``; and per scorer the best-of-N result over all ``max(ns)`` samples of the first seed,
    whose problems hold every sample with the scorer's step rewards (to judge the scorer itself)."""
    rows, pools, samples = [], {}, {}
    for i, (name, scorer) in enumerate(scorers.items()):
        spec = (methods or {}).get(name, METHODS)
        chosen = tuple(x.strip() for x in spec.split(",") if x.strip()) if isinstance(spec, str) else tuple(spec)
        for method in chosen:
            check_choice(method, METHODS, f"method for scorer {name!r}")
        chosen = chosen if i == 0 else tuple(m for m in chosen if m != "majority")

        def keep_pool(row, result, name=name):
            if row["method"] == "best_of_n" and row["n"] == max(ns) and row["seed"] == seeds[0]:
                pools[name] = result

        for r in compare_methods(make_sampler, scorer, prompts, references, ns, seeds, methods=chosen,
                                 progress=progress, on_result=keep_pool, samples=samples, **options):
            rows.append(_named(r, name))
    if baseline_temperatures is not None:
        name, scorer = next(iter(scorers.items()), (None, None))
        keep = {k: v for k, v in options.items() if k in ("answer_fn", "rerank_aggregation")}
        for r in compare_baselines(make_sampler, scorer, prompts, references, ns, seeds, list(baseline_temperatures),
                                   progress=progress, **keep):
            rows.append(_named(r, name))
    return rows, pools


def _named(row: dict, scorer: str | None) -> dict:
    if no_scorer(row["method"]):
        return {**row, "scorer": "none"}
    return {**row, "method": f"{row['method']} [{scorer}]", "scorer": scorer}


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
    method needs (`budget_to_reach`: interpolated in log N; inf: never within ``max_n``; the methods
    without a scorer too: majority at every temperature, greedy, which reaches a target with N = 1 or
    never) and SMC's advantage over each baseline (the baseline's N over SMC's; ``max_n`` over SMC's N
    when the baseline never gets there). Empty when best-of-N or SMC did not run with ``scorer``.

    Returns ``(metrics, rows)``: ``(metrics, step)`` pairs ``headline/<scorer>/n_to_reach/<method>`` and
    ``headline/<scorer>/smc_advantage_vs_<baseline>`` with step = round(100 * target), and one table
    row per target."""
    mine = {m.split(" [")[0]: c for m, c in means.items() if m.endswith(f"[{scorer}]")}
    if "best_of_n" not in mine or "smc" not in mine:
        return [], []
    mine |= {m: c for m, c in means.items() if no_scorer(m)}
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


def _per_seed(rows: list[dict], method: str) -> dict[int, dict[int, dict]]:
    """seed -> N -> row of the curve ``method``."""
    out: dict[int, dict[int, dict]] = {}
    for r in rows:
        if r["method"] == method:
            out.setdefault(r["seed"], {})[r["n"]] = r
    return out


def _versus(mine: dict[int, float], theirs: dict[int, float], **extra) -> dict:
    """The paired difference of two per-seed values (mean, standard error, seeds) and its verdict
    (`prmlab.metrics.paired_difference`; beyond two standard errors over at least three seeds)."""
    from ..metrics import paired_difference

    seeds = sorted(set(mine) & set(theirs))
    d = paired_difference([mine[s] for s in seeds], [theirs[s] for s in seeds])
    return {"acc": float(np.mean([theirs[s] for s in seeds])), "diff": d.mean, "se": d.se, "seeds": len(seeds),
            "beats": d.holds, **extra}


def versus_baselines(rows: list[dict], scorer: str, max_n: int) -> dict | None:
    """Is the best search method with ``scorer`` worth its tokens? The search method (`SEARCH_METHODS`)
    with the highest mean accuracy at N = ``max_n``, against greedy decoding and the best sampling
    baseline (majority vote at every temperature; best-of-N with ``scorer`` at the lower temperatures,
    where it ran) at the same N and at the same tokens: each baseline's accuracy-against-tokens curve of
    the same seed read at the tokens the search method spent (`compare.value_at`: interpolated in log
    tokens; ``covered`` is False where the search method spent more than `compare.EQUAL_TOKENS` times the
    baseline's largest budget, which then stands at its largest N). Greedy spends what it spends (one
    solution per problem): it is compared as it is. Differences are paired by seed; ``beats``: beyond
    two standard errors over at least three seeds (`prmlab.metrics.paired_difference`). ``worth``: it beats greedy
    and the best sampling baseline at equal tokens. None without a search method at ``max_n`` or a
    greedy row."""
    from .compare import EQUAL_TOKENS

    search = {m: c for m in (f"{x} [{scorer}]" for x in SEARCH_METHODS) if (c := _per_seed(rows, m))
              and all(max_n in by_n for by_n in c.values())}
    greedy = _per_seed(rows, "greedy")
    if not search or not greedy:
        return None
    best = max(search, key=lambda m: np.mean([by_n[max_n]["accuracy"] for by_n in search[m].values()]))
    acc = {s: by_n[max_n]["accuracy"] for s, by_n in search[best].items()}
    tokens = {s: by_n[max_n]["tokens"] for s, by_n in search[best].items()}
    out = {"scorer": scorer, "n": max_n, "method": best, "seeds": len(acc), "acc": float(np.mean(list(acc.values()))),
           "tokens": float(np.mean(list(tokens.values())))}
    out["greedy"] = _versus(acc, {s: g[1]["accuracy"] for s, g in greedy.items()}, method="greedy",
                            tokens=float(np.mean([g[1]["tokens"] for g in greedy.values()])))
    names = dict.fromkeys(r["method"] for r in rows)
    sampling = [m for m in names if (no_scorer(m) and m != "greedy")
                or (m.startswith("best_of_n_t") and m.endswith(f" [{scorer}]"))]
    at_n, at_tokens = [], []
    for m in sampling:
        curves = _per_seed(rows, m)
        if all(max_n in by_n for by_n in curves.values()):
            at_n.append(_versus(acc, {s: by_n[max_n]["accuracy"] for s, by_n in curves.items()}, method=m,
                                tokens=float(np.mean([by_n[max_n]["tokens"] for by_n in curves.values()]))))
        read = {s: value_at({r["tokens"]: r["accuracy"] for r in by_n.values()}, tokens[s])
                for s, by_n in curves.items() if s in tokens}
        covered = all(tokens[s] <= EQUAL_TOKENS * max(r["tokens"] for r in by_n.values())
                      and min(r["tokens"] for r in by_n.values()) <= EQUAL_TOKENS * tokens[s]
                      for s, by_n in curves.items() if s in tokens)
        at_tokens.append(_versus(acc, read, method=m, tokens=out["tokens"], covered=covered))
    out["at_n"] = max(at_n, key=lambda v: v["acc"]) if at_n else None
    out["at_tokens"] = max(at_tokens, key=lambda v: v["acc"]) if at_tokens else None
    out["worth"] = out["greedy"]["beats"] and (out["at_tokens"] is None or out["at_tokens"]["beats"])
    return out


def versus_metrics(versus: dict | None) -> dict:
    """`versus_baselines` as metrics: ``headline/acc/greedy``, ``headline/tokens/greedy`` and, per scorer,
    ``headline/<scorer>/best_search_acc``, ``.../best_search_tokens``, ``.../best_search_minus_greedy``,
    ``.../best_search_minus_best_sampling`` (at N = max_n), ``.../best_search_minus_best_sampling_at_tokens``
    (each difference with its ``_se``) and ``.../worth_its_tokens`` (1: it beats both at equal tokens)."""
    if versus is None:
        return {}
    v, pre = versus, f"headline/{versus['scorer']}/"
    out = {"headline/acc/greedy": v["greedy"]["acc"], "headline/tokens/greedy": v["greedy"]["tokens"],
           pre + "best_search_acc": v["acc"], pre + "best_search_tokens": v["tokens"],
           pre + "worth_its_tokens": float(v["worth"])}
    for key, part in (("greedy", v["greedy"]), ("best_sampling", v["at_n"]), ("best_sampling_at_tokens", v["at_tokens"])):
        if part is not None:
            out[pre + f"best_search_minus_{key}"], out[pre + f"best_search_minus_{key}_se"] = part["diff"], part["se"]
    return out


def smc_accuracy(make_sampler, scorer, prompts: list[str], references: list, seeds: list[int], config: SMCConfig,
                 aggregation: str, answer_fn) -> tuple[float, float, float]:
    """(mean, min, max) over ``seeds`` of SMC's accuracy with ``config`` (its seed set to each seed)."""
    accs = [smc_decode(make_sampler(s), scorer, prompts, replace(config, seed=s), aggregation=aggregation,
                       answer_fn=answer_fn).accuracy(references) for s in seeds]
    return float(np.mean(accs)), float(np.min(accs)), float(np.max(accs))


def sensitivity(make_sampler, scorer, prompts: list[str], references: list, seeds: list[int], config: SMCConfig,
                taus: list[float], aggregation: str, answer_fn, known: dict | None = None) -> tuple[dict, dict]:
    """SMC's accuracy (mean, min, max over seeds) for each temperature in ``taus`` and for each
    resampling scheme, everything else as in ``config``. Returns ``(by_tau, by_scheme)``.

    A configuration that occurs twice (``config``'s own temperature and scheme) runs once; ``known``
    (seed -> accuracy of SMC with ``config`` itself, e.g. `accuracy_by_seed` of the comparison's rows:
    the same run, so the same result) spares running ``config`` again."""
    done: dict[str, tuple] = {}
    if known and set(seeds) <= set(known):
        accs = [known[s] for s in seeds]
        done[repr(config)] = (float(np.mean(accs)), float(np.min(accs)), float(np.max(accs)))

    def run(cfg):
        if repr(cfg) not in done:
            done[repr(cfg)] = smc_accuracy(make_sampler, scorer, prompts, references, seeds, cfg, aggregation, answer_fn)
        return done[repr(cfg)]

    by_tau = {tau: run(replace(config, temperature=tau)) for tau in taus}
    by_scheme = {scheme: run(replace(config, resampling=scheme)) for scheme in RESAMPLING_SCHEMES}
    return by_tau, by_scheme


def accuracy_by_seed(rows: list[dict], method: str, n: int) -> dict[int, float]:
    """seed -> accuracy of the curve ``method`` (e.g. 'smc [prm]') at budget ``n`` in `compare_scorers`'s rows."""
    return {r["seed"]: r["accuracy"] for r in rows if r["method"] == method and r["n"] == n}


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
