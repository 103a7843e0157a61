"""Search methods side by side at equal budget: accuracy against N (solutions per problem) and against
the compute each method actually spent, over several seeds.

Budget N means: best-of-N, (weighted) majority: N samples; SMC: N particles; beam search: N rows per
step (top N/M kept, each expanded M ways); DVTS: N/M subtrees of width M. Every row of the result has
the same budget measures: solutions generated, tokens generated, PRM tokens scored, wall time. Two
budgets count as equal when the larger is at most ``EQUAL_TOKENS`` (1.1) times the smaller in tokens
generated (`equal_budget`); where methods spend unequal tokens at the same N, compare them on the
accuracy-against-tokens curves.

Beside the search methods, the baselines that could embarrass them (`compare_baselines`): greedy
decoding (one solution per problem at temperature 0) and sampling at lower temperatures, majority vote
and best-of-N at every N, named ``majority_t<T>`` and ``best_of_n_t<T>`` (`temperature_method`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from prmlab.choices import check_choice
from prmlab.metrics import first_reach
from prmlab.decoding.particle_filter import smc_decode
from prmlab.decoding.results import Budget
from prmlab.decoding.search import (Pool, beam_search, best_of_n, dvts, majority, sample_pool, score_pool,
                                    weighted_majority)
from prmlab.decoding.smc import SMCConfig

METHODS = ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority", "majority")
POOL_METHODS = ("best_of_n", "weighted_majority", "majority")  # rerankers of one pool of samples
EQUAL_TOKENS = 1.1  # two budgets are equal when the larger is at most this many times the smaller (tokens)


def equal_budget(a: float, b: float, tolerance: float = EQUAL_TOKENS) -> bool:
    """Whether budgets ``a`` and ``b`` (e.g. tokens generated) count as equal: within ``tolerance`` x."""
    return max(a, b) <= tolerance * min(a, b)


def subpool(pool: Pool, n: int, scorer, tokenizer) -> Pool:
    """The first ``n`` samples of every problem of ``pool``, with the budget those samples cost (the
    pool's per-sample token counts, else recounted; wall time prorated by tokens)."""
    if not 1 <= n <= pool.n:
        raise ValueError(f"n must be in 1..{pool.n}, got {n}")
    take = lambda rows: [r[:n] for r in rows]  # noqa: E731
    texts = take(pool.texts)
    if pool.tokens is not None:
        tokens = int(sum(t[:n].sum() for t in pool.tokens))
    else:  # a sample that ended by EOS also generated that token; a truncated one did not
        tokens = sum(len(tokenizer(t, add_special_tokens=False).input_ids) + int(done)
                     for row, fin in zip(texts, pool.finished) for t, done in zip(row, fin[:n]))
    steps = take(pool.steps)
    if scorer is None:
        prm_tokens = 0
    elif pool.prm_tokens is not None:
        prm_tokens = int(sum(t[:n].sum() for t in pool.prm_tokens))
    else:
        prm_tokens = sum(scorer.count_tokens(p, s) for p, row in zip(pool.prompts, steps) for s in row)
    wall = pool.budget.wall_time * tokens / max(pool.budget.tokens, 1)
    return Pool(pool.prompts, n, texts, steps, None if pool.rewards is None else take(pool.rewards),
                [f[:n] for f in pool.finished], Budget(n * len(pool.prompts), tokens, prm_tokens, wall),
                None if pool.tokens is None else take(pool.tokens),
                None if pool.prm_tokens is None or scorer is None else take(pool.prm_tokens))


def _row(method: str, n: int, seed: int, result, references, **extra) -> dict:
    b = result.budget
    return {"method": method, "n": n, "seed": seed, "accuracy": result.accuracy(references), "solutions": b.solutions,
            "tokens": b.tokens, "prm_tokens": b.prm_tokens, "wall_time": b.wall_time, **extra}


def compare_methods(make_sampler: Callable[[int], Any], scorer, prompts: list[str], references: list, ns: list[int],
                    seeds: list[int], m: int = 4, aggregation: str = "last", rerank_aggregation: str = "min",
                    smc_config: SMCConfig | None = None, methods=METHODS, *, answer_fn: Callable[[str], Any],
                    progress: bool = False, on_result: Callable[[dict, Any], None] | None = None,
                    samples: dict | None = None) -> list[dict]:
    """Run every method at every budget in ``ns`` for every seed; one dict per (method, n, seed).

    ``make_sampler(seed)`` gives the policy sampler of that seed; ``answer_fn`` maps a solution's text to
    its final answer (the task's answer extraction); ``smc_config`` is a template whose
    ``n_particles`` and ``seed`` are set per run. Beam search and DVTS need ``n >= m`` and run only there.
    The rerankers (best-of-N, weighted majority, majority) share one pool of ``max(ns)`` samples per
    seed and take its first N samples at every N. ``samples``, a dict kept across calls with the same
    ``make_sampler`` and prompts, holds those pools unscored by seed, so that another scorer scores the
    same samples instead of sampling them again (each row's budget still counts the sampling).
    ``on_result(row, result)`` sees every result as it arrives (e.g. to keep an SMC genealogy).
    """
    from tqdm.auto import tqdm

    for method in methods:
        check_choice(method, METHODS, "method")
    template = smc_config or SMCConfig(weighting="current", resampling="multinomial")
    rows: list[dict] = []
    runs = [(s, n) for s in seeds for n in ns]
    bar = tqdm(total=len(runs), desc="budgets", disable=not progress)
    for seed in seeds:
        sampler = make_sampler(seed)
        pool = None
        if set(POOL_METHODS) & set(methods):
            unscored = samples.get(seed) if samples is not None else None
            if unscored is None:
                unscored = sample_pool(sampler, None, prompts, max(ns))
                if samples is not None:
                    samples[seed] = unscored
            pool = score_pool(unscored, scorer)
        for n in ns:
            results = []
            if pool is not None:
                sub = subpool(pool, n, scorer, sampler.tokenizer)
                if "best_of_n" in methods:
                    results.append(("best_of_n", best_of_n(sub, rerank_aggregation, answer_fn=answer_fn)))
                if "weighted_majority" in methods:
                    results.append(("weighted_majority",
                                    weighted_majority(sub, rerank_aggregation, answer_fn=answer_fn)))
                if "majority" in methods:
                    results.append(("majority", majority(sub, answer_fn=answer_fn)))
            if "smc" in methods:
                cfg = replace(template, n_particles=n, seed=seed)
                results.append(("smc", smc_decode(sampler, scorer, prompts, cfg, aggregation=aggregation,
                                                  answer_fn=answer_fn)))
            if n >= m and "beam_search" in methods:
                results.append(("beam_search",
                                beam_search(sampler, scorer, prompts, n, m, aggregation, answer_fn=answer_fn)))
            if n >= m and "dvts" in methods:
                results.append(("dvts", dvts(sampler, scorer, prompts, n, m, aggregation, answer_fn=answer_fn)))
            for method, res in results:
                row = _row(method, n, seed, res, references)
                rows.append(row)
                if on_result is not None:
                    on_result(row, res)
            bar.update(1)
    bar.close()
    return rows


def temperature_method(method: str, temperature: float) -> str:
    """The name of ``method`` on samples drawn at ``temperature``: ('majority', 0.5) -> 'majority_t0.5'
    (a valid MLflow metric name part: no '@')."""
    return f"{method}_t{temperature:g}"


def parse_temperatures(spec: str) -> list[float]:
    """Sampling temperatures from a comma-separated list ("0.5,0.7"); each must be a number > 0
    (temperature 0 is greedy decoding, which `compare_baselines` always runs)."""
    out = []
    for x in (x.strip() for x in spec.split(",")):
        if not x:
            continue
        try:
            t = float(x)
        except ValueError:
            raise ValueError(f"baseline temperature {x!r} is not a number; give e.g. '0.5,0.7'") from None
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(f"baseline temperatures must be > 0 (greedy decoding always runs), got {x}")
        out.append(t)
    return list(dict.fromkeys(out))


def with_temperature(sampler, temperature: float):
    """A sampler like ``sampler`` (same model, tokenizer, seed and token budget) drawing at ``temperature``
    (0: greedy)."""
    out = copy.copy(sampler)
    out.config = replace(sampler.config, temperature=temperature)
    return out


def compare_baselines(make_sampler: Callable[[int], Any], scorer, prompts: list[str], references: list, ns: list[int],
                      seeds: list[int], temperatures=(0.5, 0.7), rerank_aggregation: str = "min", *,
                      answer_fn: Callable[[str], Any], progress: bool = False,
                      on_result: Callable[[dict, Any], None] | None = None) -> list[dict]:
    """The baselines a search method must beat at equal budget, as rows like `compare_methods`'s:

    - ``greedy``: one solution per problem at temperature 0 (N = 1; it does not depend on the seed, so it
      runs once and its row is repeated for every seed);
    - for each temperature T in ``temperatures``, per seed: one pool of ``max(ns)`` samples at T (the
      seed's sampler at temperature T), and at every N its first N samples reranked by ``majority_t<T>``
      and, with a ``scorer``, ``best_of_n_t<T>`` (aggregated by ``rerank_aggregation``).
    """
    from tqdm.auto import tqdm

    rows: list[dict] = []

    def add(method, n, seed, res):
        res = replace(res, method=method)
        row = _row(method, n, seed, res, references)
        rows.append(row)
        if on_result is not None:
            on_result(row, res)

    greedy = majority(sample_pool(with_temperature(make_sampler(seeds[0]), 0.0), None, prompts, 1), answer_fn=answer_fn)
    for seed in seeds:
        add("greedy", 1, seed, greedy)
    for temperature in tqdm(temperatures, desc="baselines", disable=not progress):
        for seed in seeds:
            sampler = with_temperature(make_sampler(seed), temperature)
            pool = sample_pool(sampler, scorer, prompts, max(ns))
            for n in ns:
                sub = subpool(pool, n, scorer, sampler.tokenizer)
                add(temperature_method("majority", temperature), n, seed, majority(sub, answer_fn=answer_fn))
                if scorer is not None:
                    add(temperature_method("best_of_n", temperature), n, seed,
                        best_of_n(sub, rerank_aggregation, answer_fn=answer_fn))
    return rows


def summarize(rows: list[dict], x: str = "n", y: str = "accuracy") -> dict[str, dict]:
    """method -> {x: (mean, min, max) of y over seeds}. ``x`` may be 'n' or a budget measure such as
    'tokens' (then x is the mean over seeds at each n)."""
    out: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        by_n: dict[int, list[dict]] = {}
        for r in rows:
            if r["method"] == method:
                by_n.setdefault(r["n"], []).append(r)
        curve = {}
        for n, rs in sorted(by_n.items()):
            vals = [r[y] for r in rs]
            key = n if x == "n" else float(np.mean([r[x] for r in rs]))
            curve[key] = (float(np.mean(vals)), float(np.min(vals)), float(np.max(vals)))
        out[method] = curve
    return out


def budget_to_reach(curve: dict, target: float) -> float:
    """The smallest budget at which a mean curve {budget: accuracy} reaches ``target``
    (`prmlab.metrics.first_reach`, straight in log budget between measured points); inf if it never does."""
    return first_reach(curve, target, log_x=True)


def value_at(curve: dict, x: float) -> float:
    """A curve {budget: value} read at budget ``x``: interpolated linearly in log budget between measured
    points; outside them, the value at the nearest end (never extrapolated)."""
    points = sorted(curve.items())
    if not points:
        return math.nan
    if x <= points[0][0]:
        return float(points[0][1])
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            frac = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return float(y0 + frac * (y1 - y0))
    return float(points[-1][1])
