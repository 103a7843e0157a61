"""Search methods side by side at equal budget: accuracy against N (solutions per problem) and against
the compute each method actually spent, over several seeds.

Budget N means: best-of-N, (weighted) majority: N samples; SMC: N particles; beam search: N rows per
step (top N/M kept, each expanded M ways); DVTS: N/M subtrees of width M. Every row of the result has
the same budget measures: solutions generated, tokens generated, PRM tokens scored, wall time.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from prmlab.choices import check_choice
from prmlab.decoding.particle_filter import smc_decode
from prmlab.decoding.results import Budget
from prmlab.decoding.search import Pool, beam_search, best_of_n, dvts, majority, sample_pool, weighted_majority
from prmlab.decoding.smc import SMCConfig

METHODS = ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority", "majority")


def subpool(pool: Pool, n: int, scorer, tokenizer) -> Pool:
    """The first ``n`` samples of every problem of ``pool``, with the budget those samples cost (tokens
    recounted; wall time prorated by tokens)."""
    if not 1 <= n <= pool.n:
        raise ValueError(f"n must be in 1..{pool.n}, got {n}")
    take = lambda rows: [r[:n] for r in rows]  # noqa: E731
    texts = take(pool.texts)
    # a sample that ended by EOS also generated that token; a truncated one did not
    tokens = sum(len(tokenizer(t, add_special_tokens=False).input_ids) + int(done)
                 for row, fin in zip(texts, pool.finished) for t, done in zip(row, fin[:n]))
    steps = take(pool.steps)
    prm_tokens = 0 if scorer is None else sum(scorer.count_tokens(p, s) for p, row in zip(pool.prompts, steps) for s in row)
    wall = pool.budget.wall_time * tokens / max(pool.budget.tokens, 1)
    return Pool(pool.prompts, n, texts, steps, None if pool.rewards is None else take(pool.rewards),
                [f[:n] for f in pool.finished], Budget(n * len(pool.prompts), tokens, prm_tokens, wall))


def _row(method: str, n: int, seed: int, result, references, **extra) -> dict:
    b = result.budget
    return {"method": method, "n": n, "seed": seed, "accuracy": result.accuracy(references), "solutions": b.solutions,
            "tokens": b.tokens, "prm_tokens": b.prm_tokens, "wall_time": b.wall_time, **extra}


def compare_methods(make_sampler: Callable[[int], Any], scorer, prompts: list[str], references: list, ns: list[int],
                    seeds: list[int], m: int = 4, aggregation: str = "last", rerank_aggregation: str = "min",
                    smc_config: SMCConfig | None = None, methods=METHODS, *, answer_fn: Callable[[str], Any],
                    progress: bool = False, on_result: Callable[[dict, Any], None] | None = None) -> list[dict]:
    """Run every method at every budget in ``ns`` for every seed; one dict per (method, n, seed).

    ``make_sampler(seed)`` gives the policy sampler of that seed; ``answer_fn`` maps a solution's text to
    its final answer (the task's answer extraction); ``smc_config`` is a template whose
    ``n_particles`` and ``seed`` are set per run. Beam search and DVTS need ``n >= m`` and run only there.
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
        pool = sample_pool(sampler, scorer, prompts, max(ns)) if {"best_of_n", "weighted_majority", "majority"} & set(methods) else None
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
    """The smallest budget at which a mean curve {budget: accuracy} reaches ``target``, interpolating
    linearly in log budget between measured points; inf if it never does."""
    points = sorted(curve.items())
    if not points:
        return math.inf
    if points[0][1] >= target:
        return float(points[0][0])
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 >= target > y0:
            frac = (target - y0) / (y1 - y0)
            return float(math.exp(math.log(x0) + frac * (math.log(x1) - math.log(x0))))
    return math.inf
