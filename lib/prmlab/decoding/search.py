"""Search baselines for PRM-guided decoding, with the same result structure and budget as `smc_decode`.

- **Reranking N independent samples** (`sample_pool` once, then any reranker on the same pool):
  `best_of_n` (highest aggregated PRM score), `majority` (most frequent answer, no PRM) and
  `weighted_majority` (answer with the largest summed PRM score).
- **Step-level beam search** (`beam_search`, as in HF's search-and-learn): N partial solutions per
  problem; every step extends all of them by one step, finished ones leave the beam for the pool of
  completed solutions, and the top N/M unfinished ones by PRM score are each expanded M ways, so N rows
  are sampled per step until every beam has finished.
- **Diverse verifier tree search** (`dvts`, HF's "scaling test-time compute"): N/M independent subtrees
  per problem; each expands its one partial solution M ways per step and keeps the best of the M by PRM
  score (finished or not); a subtree ends when the kept candidate is finished. Splitting the budget into
  independent subtrees keeps the final solutions diverse where one beam collapses onto one prefix.

Beam and subtree expansion use ``Generation.select``: copies share the cached prefix and sample from
fresh random streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from prmlab.choices import check_choice
from prmlab.decoding.results import Budget, DecodeResult, problem_result
from prmlab.decoding.rows import RowBatch
from prmlab.metrics import AGGREGATIONS as STEP_AGGREGATIONS
from prmlab.metrics import aggregate_step_scores
from prmlab.prm.scorer import score_samples
from prmlab.sampling import sample


@dataclass
class Pool:
    """N complete samples per problem, split into steps and scored once (shared by the rerankers)."""

    prompts: list[str]
    n: int
    texts: list[list[str]]  # [problems][n]
    steps: list[list[list[str]]]  # [problems][n] steps of each sample
    rewards: list[list[np.ndarray]] | None  # [problems][n] reward of each step; None without a scorer
    finished: list[np.ndarray]  # [problems] bool [n]: ended by EOS (False: token budget ran out)
    budget: Budget
    tokens: list[np.ndarray] | None = None  # [problems] int [n]: tokens each sample generated (EOS included)
    prm_tokens: list[np.ndarray] | None = None  # [problems] int [n]: tokens the scorer read for each sample


def sample_pool(sampler, scorer, prompts: list[str], n: int, batch_size: int = 256, progress: bool = False) -> Pool:
    """``n`` samples per prompt from `prmlab.sampling.sample` (sample j of prompt i on stream ``i * n + j``),
    then one scorer forward per solution (`score_pool`; ``scorer=None`` skips scoring, enough for
    `majority`, and leaves a pool that any scorer can score later)."""
    t0 = time.perf_counter()
    s = sample(sampler, prompts, n, batch_size, progress)
    wall = time.perf_counter() - t0
    per = lambda x: [x[i * n : (i + 1) * n] for i in range(len(prompts))]  # noqa: E731
    tokens = [np.array(t) for t in per([len(ids) for ids in s.token_ids])]
    pool = Pool(list(prompts), n, per(s.texts), per(s.steps), None, [np.array(f) for f in per(s.finished)],
                Budget(len(s.texts), s.num_tokens, 0, wall), tokens=tokens)
    return pool if scorer is None else score_pool(pool, scorer)


def score_pool(pool: Pool, scorer) -> Pool:
    """A pool sampled without a scorer, with every sample scored by ``scorer`` (``scorer.score``: one
    forward per solution); its budget adds the scorer's wall time and the tokens it read. Several
    scorers can score one sampled pool: each gets the same samples."""
    if pool.rewards is not None:
        raise ValueError("this pool is already scored; score the pool sample_pool(sampler, None, ...) returned")
    t0 = time.perf_counter()
    rewards = score_samples(scorer, pool.prompts, pool.steps)
    wall = time.perf_counter() - t0  # the token count below re-encodes: bookkeeping, not the method's cost
    prm_tokens = [np.array([scorer.count_tokens(p, st) for st in row]) for p, row in zip(pool.prompts, pool.steps)]
    b = pool.budget
    budget = Budget(b.solutions, b.tokens, int(sum(x.sum() for x in prm_tokens)), b.wall_time + wall)
    return replace(pool, rewards=rewards, prm_tokens=prm_tokens, budget=budget)


def _rerank(pool: Pool, method: str, weights: list[np.ndarray], how: str, answer_fn, params: dict) -> DecodeResult:
    problems = []
    for i, prompt in enumerate(pool.prompts):
        step_rewards = pool.rewards[i] if pool.rewards is not None else [np.zeros(0)] * pool.n
        problems.append(
            problem_result(prompt, pool.texts[i], step_rewards, weights[i], pool.finished[i], answer_fn, how))
    return DecodeResult(method, problems, pool.budget, dict(n=pool.n, **params))


def _pool_scores(pool: Pool, aggregation: str) -> list[np.ndarray]:
    check_choice(aggregation, STEP_AGGREGATIONS, "aggregation")
    if pool.rewards is None:
        raise ValueError("this pool was sampled without a scorer; pass one to sample_pool")
    return [np.array([aggregate_step_scores(r, aggregation) for r in rows]) for rows in pool.rewards]


def best_of_n(pool: Pool, aggregation: str = "min", *, answer_fn: Callable[[str], Any]) -> DecodeResult:
    """Per problem, the sample with the highest aggregated PRM score (``"min"``, ``"last"``, ``"prod"``,
    ``"mean"``; first on ties). ``answer_fn``: a solution's text -> its final answer."""
    scores = _pool_scores(pool, aggregation)
    return _rerank(pool, "best_of_n", scores, "max_weight", answer_fn, dict(aggregation=aggregation))


def weighted_majority(pool: Pool, aggregation: str = "min", *, answer_fn: Callable[[str], Any]) -> DecodeResult:
    """Per problem, the answer whose samples have the largest summed aggregated PRM score."""
    return _rerank(pool, "weighted_majority", _pool_scores(pool, aggregation), "weighted_majority", answer_fn,
                   dict(aggregation=aggregation))


def majority(pool: Pool, *, answer_fn: Callable[[str], Any]) -> DecodeResult:
    """Per problem, the most frequent answer (no PRM; `prmlab.metrics.majority_vote` conventions)."""
    # the weighted vote with unit weights is `prmlab.metrics.majority_vote`
    return _rerank(pool, "majority", [np.ones(pool.n) for _ in pool.prompts], "weighted_majority", answer_fn, {})


# ----------------------------------------------------------------------------------------------
# Tree search


def _check_widths(n: int, m: int) -> int:
    if not (m >= 1 and n >= m and n % m == 0):
        raise ValueError(f"need n >= m >= 1 with n a multiple of m, got n={n}, m={m}")
    return n // m


def _search_result(method, batch: RowBatch, prompts, pool, keep, select_answer, answer_fn, t0, params):
    problems = []
    for i, prompt in enumerate(prompts):
        done = sorted(pool[i], key=lambda d: -d[2])[:keep]  # best scores first (stable)
        texts, rewards, scores, finished = map(list, zip(*done))
        problems.append(problem_result(prompt, texts, rewards, scores, finished, answer_fn, select_answer))
    wall = time.perf_counter() - t0
    budget = Budget(batch.solutions, batch.tokens, batch.prm_tokens, wall)
    return DecodeResult(method, problems, budget, params)


def beam_search(
    sampler,
    scorer,
    prompts: list[str],
    n: int,
    m: int,
    aggregation: str = "last",
    *,
    answer_fn: Callable[[str], Any],
    select_answer: str = "max_weight",
    max_steps: int = 64,
    progress: bool = False,
) -> DecodeResult:
    """Step-level beam search with a PRM (search-and-learn's ``beam_search``): keep the top ``n // m``
    unfinished partial solutions by aggregated PRM score and expand each ``m`` ways, ``n`` rows per step.

    Finished beams leave the beam and are kept; the final solutions are the ``n`` best finished ones by
    score (unfinished ones join them only if ``max_steps`` runs out). Their ``weights`` are the
    aggregated scores; ``select_answer`` is "max_weight" or "weighted_majority"; ``answer_fn`` maps a
    solution's text to its final answer. The budget counts every solution finished along the way, so
    it may exceed ``n`` per problem.
    """
    from tqdm.auto import tqdm

    keep_top = _check_widths(n, m)
    t0 = time.perf_counter()
    batch = RowBatch(sampler, scorer, prompts, n, aggregation)
    pool: list[list[tuple]] = [[] for _ in prompts]
    for t in tqdm(range(1, max_steps + 1), desc="beam search", disable=not progress, leave=False):
        batch.step()
        scores, finished = batch.scores(aggregation), batch.finished
        index = []
        for i in range(len(prompts)):
            rows = batch.rows_of(i)
            live = rows[~finished[rows]]
            leaving = rows if t == max_steps else rows[finished[rows]]
            pool[i] += [(batch.text(r), batch.rewards[r], scores[r], bool(finished[r])) for r in leaving]
            if len(live) and t < max_steps:
                top = live[np.argsort(-scores[live], kind="stable")[:keep_top]]
                index += np.resize(np.repeat(top, m), n).tolist()  # fewer than n // m left: cycle them
        if not index:
            break
        batch.select(index)
    params = dict(n=n, m=m, aggregation=aggregation, select_answer=select_answer, max_steps=max_steps)
    return _search_result("beam_search", batch, prompts, pool, n, select_answer, answer_fn, t0, params)


def dvts(
    sampler,
    scorer,
    prompts: list[str],
    n: int,
    m: int,
    aggregation: str = "last",
    *,
    answer_fn: Callable[[str], Any],
    select_answer: str = "max_weight",
    max_steps: int = 64,
    progress: bool = False,
) -> DecodeResult:
    """Diverse verifier tree search (search-and-learn's ``dvts``): ``n // m`` independent subtrees per
    problem, each a greedy beam of width ``m``: expand its partial solution ``m`` ways, keep the best of
    the ``m`` by aggregated PRM score, and stop when that one is finished. Returns one solution per
    subtree (``n // m`` per problem); ``weights`` are their scores."""
    from tqdm.auto import tqdm

    subtrees = _check_widths(n, m)
    t0 = time.perf_counter()
    batch = RowBatch(sampler, scorer, prompts, n, aggregation)
    tree = np.tile(np.arange(n) // m, len(prompts))  # subtree of each row within its problem
    pool: list[list[tuple]] = [[] for _ in prompts]
    for t in tqdm(range(1, max_steps + 1), desc="dvts", disable=not progress, leave=False):
        batch.step()
        scores, finished = batch.scores(aggregation), batch.finished
        index = []
        for i in range(len(prompts)):
            rows = batch.rows_of(i)
            for s in np.unique(tree[rows]):
                group = rows[tree[rows] == s]
                best = int(group[np.argmax(scores[group])])
                if finished[best] or t == max_steps:
                    pool[i].append((batch.text(best), batch.rewards[best], scores[best], bool(finished[best])))
                else:
                    index += [best] * m
        if not index:
            break
        tree = tree[index]
        batch.select(index)
    params = dict(n=n, m=m, aggregation=aggregation, select_answer=select_answer, max_steps=max_steps)
    return _search_result("dvts", batch, prompts, pool, subtrees, select_answer, answer_fn, t0, params)
