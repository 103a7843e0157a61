"""Particle filtering over reasoning steps: the language-model binding of the SMC core, whose particles
are partial solutions (Puri et al., arXiv 2502.01618).

One SMC step extends every unfinished particle by one reasoning step with the KV-cached `Sampler`,
scores the new step with a step scorer, reweights and resamples. All particles of all problems live in
one `RowBatch` (one big batch for the sampler and one scoring state); resampling is a single
``RowBatch.select`` that reorders the cached states instead of recomputing prefixes.

Weights follow `prmlab.decoding.smc` exactly (same ``SMCConfig``, same resampling decision and
weighting modes; a test checks the batched binding against ``run_smc`` driven one problem at a time).
Each problem gets its own resampling random generator and its own random streams for the sampler, so
its result does not depend on which other problems share the batch.

A particle's potential is its aggregated reward (`prmlab.decoding.rows`: ``"last"`` by default) made
``log G`` by `prmlab.decoding.potentials.log_potential` (``"logit"`` by default, as Puri et al.).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from prmlab.choices import check_choice
from prmlab.decoding.potentials import POTENTIALS, log_potential
from prmlab.decoding.results import ANSWER_SELECTIONS, Budget, DecodeResult, problem_result
from prmlab.decoding.rows import RowBatch
from prmlab.decoding.smc import ParticleWeights, SMCConfig, SMCResult


def problem_rngs(seed: int | None, n_problems: int) -> list[np.random.Generator]:
    """One independent resampling generator per problem, derived from ``seed``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_problems)]


def step_log_potentials(batch: RowBatch, aggregation: str, potential: str, weighting: str) -> np.ndarray:
    """``log G`` of every row after a step. With "incremental" weighting a row that got no new step
    (it only sampled EOS) brings no new evidence: log G = 0."""
    log_g = log_potential(batch.scores(aggregation), potential)
    return np.where(batch.got_step, log_g, 0.0) if weighting == "incremental" else log_g


def smc_decode(
    sampler,
    scorer,
    prompts: list[str],
    config: SMCConfig | None = None,
    *,
    answer_fn: Callable[[str], Any],
    aggregation: str = "last",
    select_answer: str = "max_weight",
    potential: str = "logit",
    progress: bool = False,
) -> DecodeResult:
    """Particle filtering over reasoning steps for every prompt at once (Puri et al.).

    ``scorer``: any `prmlab.prm.scorer.StepScorer`. ``answer_fn``: a solution's text -> its final answer
    (the task's answer extraction; None when it states none). ``config`` (`SMCConfig`): particles per
    problem, resampling scheme, ESS threshold, temperature or schedule, weighting, max_steps, seed.
    Default: ``SMCConfig(weighting="current")``, the paper's ``softmax(logit(r) / tau)`` of the current
    reward with resampling before every step; a config you pass is used as is (its default weighting is
    "incremental"). Finished particles (EOS or token budget) are not extended again, keep their last
    weight and still take part in resampling. ``select_answer``: ``"max_weight"`` or
    ``"weighted_majority"`` over the final particles.

    Returns a `DecodeResult`; each problem's ``smc`` is an `SMCResult` (``particles`` = final texts)
    whose history has the ancestors, potentials, weights and ESS of every step (`smc.lineage` works).
    """
    config = config or SMCConfig(weighting="current")
    check_choice(select_answer, ANSWER_SELECTIONS, "answer selection")
    check_choice(potential, POTENTIALS, "potential")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    n, n_prob = config.n_particles, len(prompts)
    batch = RowBatch(sampler, scorer, prompts, n, aggregation)
    filters = [ParticleWeights(config, rng) for rng in problem_rngs(config.seed, n_prob)]
    slices = [slice(i * n, (i + 1) * n) for i in range(n_prob)]  # SMC keeps n rows per problem, in order
    bar = tqdm(total=config.max_steps, desc="smc", disable=not progress, leave=False)
    for t in range(1, config.max_steps + 1):
        finished = batch.finished
        active = [i for i in range(n_prob) if not finished[slices[i]].all()]
        if not active:
            break
        index = np.arange(batch.size)
        for i in active:
            index[slices[i]] = i * n + filters[i].resample(t)
        if (index != np.arange(batch.size)).any() or batch.needs_select():
            batch.select(index)  # one reorder of each cache for all problems
        alive = batch.step()
        log_g = step_log_potentials(batch, aggregation, potential, config.weighting)
        texts = [batch.text(r) for r in range(batch.size)] if config.keep_particles else None
        for i in active:
            filters[i].reweight(t, alive[slices[i]], log_g[slices[i]], texts[slices[i]] if texts else None)
        bar.update()
    bar.close()

    finished = batch.finished
    results = []
    for i, f in enumerate(filters):
        rows = range(i * n, (i + 1) * n)
        texts = [batch.text(r) for r in rows]
        smc = SMCResult(particles=texts, log_weights=f.log_w, log_marginal=f.log_z, history=f.history,
                        steps=len(f.history), finished=finished[slices[i]],
                        initial_particles=[""] * n if config.keep_particles else None)
        results.append(problem_result(prompts[i], texts, [batch.rewards[r] for r in rows], np.exp(f.log_w),
                                      finished[slices[i]], answer_fn, select_answer, smc))
    wall = time.perf_counter() - t0
    budget = Budget(batch.solutions, batch.tokens, batch.prm_tokens, wall)
    fields = ("n_particles", "resampling", "ess_threshold", "temperature", "weighting", "max_steps", "seed")
    params = dict(aggregation=aggregation, potential=potential, select_answer=select_answer,
                  **{k: getattr(config, k) for k in fields})
    return DecodeResult("smc", results, budget, params)
