"""The language-model binding of the SMC core: particles are partial solutions (Puri et al., arXiv 2502.01618).

One SMC step extends every unfinished particle by one reasoning step with the KV-cached `Sampler`,
scores the new step with a step scorer, reweights and resamples. All particles of all problems live in
one `Generation` (one big batch for the sampler) and one scoring state; resampling is a single
``Generation.select`` / ``scorer.select`` that reorders the cached state instead of recomputing prefixes.

Weights follow `prmlab.decoding.smc` exactly (same ``SMCConfig``, same resampling decision and
weighting modes; a test checks the batched binding against ``run_smc`` driven one problem at a time).
Each problem gets its own resampling random generator and its own random streams for the sampler, so
its result does not depend on which other problems share the batch.

**Scorers.** Anything with ``score(prompts, steps)`` works (the ``StepScorer`` interface of
`prmlab.prm.model`: a PRM, an adapter, PRIME's implicit PRM, `OracleScorer`). Scorers that also have
``start/append/select`` (``IncrementalScorer``) score a new step at the cost of its tokens; score-only
ones are wrapped in `RescoringScorer`, which rescores the whole prefix at every step.

**Aggregation** (the reward that becomes a particle's potential):
``"last"`` the newest step's reward; ``"min"``, ``"prod"``, ``"mean"`` over the steps so far;
``"prefix"`` the scorer's reward for the whole prefix read as *one* step (steps joined by newlines),
which is how Puri et al. query their PRM. For a causal PRM like prmlab's, whose step separator is the
newline, that is the same token sequence as the step-by-step encoding, so ``"prefix"`` gives exactly
the ``"last"`` reward -- at the price of re-encoding the whole prefix every step. The two differ only for
scorers whose input format distinguishes steps (e.g. step tags, chat templates).

**Potential**: ``"logit"`` (default, Puri et al.): ``log G = logit(r)``, so the "current" weighting
gives ``softmax(logit(r) / tau)``; ``"log"``: ``log G = log r``. Rewards are clipped to
``[eps, 1 - eps]`` (float64 machine epsilon, as Puri et al.'s code does) so that a reward of exactly
0 or 1 still gives a finite potential.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from prmlab.decoding.smc import ParticleWeights, SMCConfig, SMCResult
from prmlab.metrics import aggregate_step_scores, weighted_majority_vote

AGGREGATIONS = ("last", "min", "prod", "mean", "prefix")
POTENTIALS = ("logit", "log")
ANSWER_SELECTIONS = ("max_weight", "weighted_majority")
_R_CLIP = float(np.finfo(float).eps)
_ANSWER_LINE = re.compile(r"^A: (-?\d+)\s*$", re.MULTILINE)


def arith_answer(text: str) -> int | None:
    """The final answer of an arithmetic-task solution (its last ``A: N`` line), or None."""
    found = _ANSWER_LINE.findall(text)
    return int(found[-1]) if found else None


def check_choice(value: str, choices: tuple, what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(choices)}")
    return value


# ----------------------------------------------------------------------------------------------
# Results


@dataclass
class Budget:
    """Compute spent by one decoding call (all problems together)."""

    solutions: int = 0  # solutions generated to the end (EOS or token budget), discarded ones included
    tokens: int = 0  # policy tokens sampled
    prm_tokens: int = 0  # tokens run through the scorer, prompts included
    wall_time: float = 0.0  # seconds

    @property
    def ms_per_token(self) -> float:
        """Wall time per generated token, in milliseconds."""
        return 1e3 * self.wall_time / max(self.tokens, 1)


@dataclass
class ProblemResult:
    """What a decoding method returns for one problem."""

    prompt: str
    answer: Any  # answer_fn of the chosen solution
    text: str  # the chosen solution
    texts: list[str]  # every final solution (particles, beams, samples)
    answers: list  # answer_fn of each
    weights: np.ndarray  # voting weight of each: SMC normalized final weights; others aggregated PRM score
    step_rewards: list[np.ndarray]  # per solution, the scorer's reward of each of its steps
    finished: np.ndarray  # bool per solution: ended by EOS or the token budget (False: by max_steps)
    chosen: int  # index of the chosen solution in ``texts``
    smc: SMCResult | None = None  # SMC only: the genealogy (ancestors, potentials, weights, ESS per step)


@dataclass
class DecodeResult:
    """Per-problem results of one method and the budget it spent."""

    method: str
    problems: list[ProblemResult]
    budget: Budget
    params: dict = field(default_factory=dict)

    @property
    def answers(self) -> list:
        return [p.answer for p in self.problems]

    def accuracy(self, references: list) -> float:
        """Fraction of problems whose chosen answer equals the reference answer."""
        if len(references) != len(self.problems):
            raise ValueError(f"{len(references)} references for {len(self.problems)} problems")
        return float(np.mean([a is not None and a == r for a, r in zip(self.answers, references)]))


def choose(answers: list, weights: np.ndarray, how: str) -> int:
    """Index of the chosen solution: the largest weight (``"max_weight"``, first on ties), or the
    largest-weight solution among those with the weighted-majority answer (``"weighted_majority"``)."""
    check_choice(how, ANSWER_SELECTIONS, "answer selection")
    weights = np.asarray(weights, dtype=float)
    if how == "weighted_majority":
        voted = weighted_majority_vote([answers], [weights])[0]
        if voted is not None:
            return max((i for i, a in enumerate(answers) if a == voted), key=lambda i: weights[i])
    return int(np.argmax(weights))


def problem_result(prompt, texts, step_rewards, weights, finished, answer_fn, select_answer, smc=None) -> ProblemResult:
    answers = [answer_fn(t) for t in texts]
    weights = np.asarray(weights, dtype=float)
    best = choose(answers, weights, select_answer)
    rewards = [np.asarray(r, dtype=float) for r in step_rewards]
    return ProblemResult(prompt, answers[best], texts[best], list(texts), answers, weights, rewards,
                         np.asarray(finished, dtype=bool), best, smc)


# ----------------------------------------------------------------------------------------------
# Rewards and potentials


def aggregate(rewards: list[float], how: str) -> float:
    """One reward for a partial solution from its step rewards (``"prefix"`` rewards already score the
    whole prefix: the last one counts). A solution without steps gets reward 0."""
    if not rewards:
        return 0.0
    return float(rewards[-1]) if how in ("last", "prefix") else aggregate_step_scores(rewards, how)


def log_potential(rewards: np.ndarray, potential: str = "logit") -> np.ndarray:
    """``log G`` of rewards in [0, 1]: ``logit(r)`` or ``log(r)``, rewards clipped to [eps, 1 - eps]."""
    check_choice(potential, POTENTIALS, "potential")
    r = np.clip(np.asarray(rewards, dtype=np.float64), _R_CLIP, 1.0 - _R_CLIP)
    return np.log(r) - np.log1p(-r) if potential == "logit" else np.log(r)


def count_tokens(scorer, prompt: str, steps: list[str]) -> int:
    """Tokens ``scorer`` reads to score ``steps`` after ``prompt`` in one forward pass (budget only).
    Uses the scorer's ``count_tokens`` or ``encode`` (a PRM's, an adapter's); else counts characters."""
    if hasattr(scorer, "count_tokens"):
        return int(scorer.count_tokens(prompt, steps))
    for obj in (scorer, getattr(scorer, "prm", None)):
        if obj is not None and hasattr(obj, "encode"):
            return len(obj.encode(prompt, steps)[0])
    return len(prompt) + sum(len(s) + 1 for s in steps)


@dataclass
class TextState:
    """Rows of partial solutions kept as text (for `RescoringScorer`). ``scored`` lists every (scorer,
    prompt, steps) read so far, counted only when ``tokens_scored`` is asked for: the count re-encodes
    the text, which is bookkeeping, not part of the scoring being timed."""

    prompts: list[str]
    steps: list[list[str]]
    scored: list = field(default_factory=list)  # shared by the states that `select` derives

    @property
    def batch_size(self) -> int:
        return len(self.prompts)

    @property
    def tokens_scored(self) -> int:
        return sum(count_tokens(scorer, p, s) for scorer, p, s in self.scored)


class RescoringScorer:
    """``start/append/select`` on top of any scorer's ``score``: each appended step rescores its whole
    solution from scratch (exact; costs the full prefix every step). With ``whole_prefix`` the steps so
    far are joined into a single step first, so the reward is the scorer's score of the whole prefix
    (the ``"prefix"`` aggregation)."""

    def __init__(self, scorer, whole_prefix: bool = False, delimiter: str = "\n"):
        self.scorer = scorer
        self.whole_prefix = whole_prefix
        self.delimiter = delimiter

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        return self.scorer.score(prompts, steps)

    def start(self, prompts: list[str]) -> TextState:
        return TextState(list(prompts), [[] for _ in prompts])

    def append(self, state: TextState, steps: list[str | None]) -> np.ndarray:
        out = np.full(len(steps), np.nan)
        rows = [i for i, s in enumerate(steps) if s is not None]
        if not rows:
            return out
        for i in rows:
            state.steps[i].append(steps[i])
        inputs = [[self.delimiter.join(state.steps[i])] if self.whole_prefix else state.steps[i] for i in rows]
        prompts = [state.prompts[i] for i in rows]
        for i, p, s, r in zip(rows, prompts, inputs, self.scorer.score(prompts, inputs)):
            out[i] = r[-1]
            state.scored.append((self.scorer, p, s))
        return out

    def select(self, state: TextState, index) -> TextState:
        index = [int(i) for i in index]
        return TextState([state.prompts[i] for i in index], [list(state.steps[i]) for i in index], state.scored)


# ----------------------------------------------------------------------------------------------
# The batch of partial solutions shared by SMC, beam search and DVTS


def fresh_stream(problem: int, k: int) -> int:
    """Random stream of the k-th duplicate row made for ``problem`` (initial rows use problem * n + j)."""
    return ((problem + 1) << 32) + k


class RowBatch:
    """Partial solutions of many problems in one `Generation` plus their scoring state.

    Rows are logical: ``problem[r]`` is the problem of row r, ``rewards[r]`` the scorer's reward of each
    of its steps. ``step()`` extends every unfinished row by one reasoning step and scores the new steps;
    ``select(index)`` keeps / reorders / duplicates rows. Only unfinished rows hold a row of the caches
    (``slot[r]``); ``select`` moves finished ones out as text, so the sampler and the scorer always work
    on whole batches of live rows and finished particles cost nothing however often they are copied.

    Row j of problem i starts on random stream ``problem_ids[i] * n + j`` and the k-th duplicate of an
    unfinished row of problem i gets ``fresh_stream(problem_ids[i], k)``: a problem's rows never depend
    on the other problems in the batch.
    """

    def __init__(self, sampler, scorer, prompts: list[str], n: int, aggregation: str = "last", problem_ids=None):
        check_choice(aggregation, AGGREGATIONS, "aggregation")
        if aggregation == "prefix":
            scorer = RescoringScorer(scorer, whole_prefix=True)
        elif not hasattr(scorer, "append"):
            scorer = RescoringScorer(scorer)
        self.sampler, self.scorer, self.prompts = sampler, scorer, list(prompts)
        self.ids = np.arange(len(prompts)) if problem_ids is None else np.asarray(problem_ids, dtype=np.int64)
        self.problem = np.repeat(np.arange(len(prompts)), n)
        # One prefill per problem; its n rows are copies of that cached state.
        gen = sampler.start(prompts).select(torch.as_tensor(self.problem))
        gen.stream = torch.as_tensor(self.ids[self.problem] * n + np.tile(np.arange(n), len(prompts)))
        self.gen = gen
        self.state = scorer.select(scorer.start(prompts), self.problem)
        self.slot = np.arange(len(self.problem))  # row of gen / the scoring state; -1: finished, moved out
        self.done_text: dict[int, str] = {}  # text of the rows moved out
        self.rewards: list[list[float]] = [[] for _ in self.problem]
        self.got_step = np.zeros(len(self.problem), dtype=bool)  # rows that got a step in the last step()
        self.duplicates = np.zeros(len(prompts), dtype=np.int64)
        self.tokens = 0
        self.solutions = 0

    @property
    def size(self) -> int:
        return len(self.problem)

    @property
    def finished(self) -> np.ndarray:
        out = self.slot < 0
        out[~out] = self.gen.finished.numpy()[self.slot[~out]]
        return out

    @property
    def prm_tokens(self) -> int:
        return int(getattr(self.state, "tokens_scored", 0))

    def rows_of(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.problem == i)

    def step(self) -> np.ndarray:
        """Extend every unfinished row by one step and score it; returns the rows that were extended."""
        gen = self.gen
        alive = ~self.finished
        n_before = gen.n_generated.clone()
        k_before = [len(e) for e in gen.step_ends]
        done_before = gen.finished.clone()
        self.sampler.extend(gen, until="step")
        self.tokens += int((gen.n_generated - n_before).sum())
        self.solutions += int((gen.finished & ~done_before).sum())
        # A row that only sampled EOS after its last delimiter has no new step: nothing to score.
        new = [s for s, (e, k) in enumerate(zip(gen.step_ends, k_before)) if len(e) > k]
        spans = [gen.step_spans(s)[-1] for s in new]
        steps: list[str | None] = [None] * gen.batch_size
        for s, text in zip(new, self._decode([gen.tokens[s, a:b].tolist() for s, (a, b) in zip(new, spans)])):
            steps[s] = text.strip("\n")
        rewards = self.scorer.append(self.state, steps)
        cached = np.flatnonzero(self.slot >= 0)
        self.got_step = np.zeros(self.size, dtype=bool)
        self.got_step[cached] = [steps[s] is not None for s in self.slot[cached]]
        for r in np.flatnonzero(self.got_step):
            self.rewards[r].append(float(rewards[self.slot[r]]))
        return alive

    def text(self, r: int) -> str:
        return self.done_text[r] if self.slot[r] < 0 else self._decode([self.gen.token_ids(int(self.slot[r]))])[0]

    def _decode(self, ids: list[list[int]]) -> list[str]:
        eos = set(self.sampler.eos_ids.tolist())
        return self.sampler.tokenizer.batch_decode([[t for t in x if t not in eos] for x in ids])

    def scores(self, aggregation: str) -> np.ndarray:
        """Aggregated reward of every row."""
        return np.array([aggregate(r, aggregation) for r in self.rewards])

    def needs_select(self) -> bool:
        """Whether finished rows still occupy the caches (a ``select`` would move them out)."""
        return bool((self.slot >= 0).any() and self.gen.finished.any())

    def select(self, index) -> None:
        """Keep rows ``index`` in that order (one reorder of each cache for all problems); a repeated
        unfinished row gets a fresh random stream of its problem."""
        index = np.asarray(index, dtype=np.int64)
        done = self.finished[index]
        done_text = {j: self.text(r) for j, r in zip(np.flatnonzero(done).tolist(), index[done].tolist())}
        kept = np.flatnonzero(~done)  # new rows that stay in the caches
        cached = self.slot[index[kept]]
        slot = np.full(len(index), -1)
        slot[kept] = np.arange(len(kept))
        # move rows within the caches' own buffers when the scorer can (only rows that change are copied)
        reuse = hasattr(self.scorer, "select_")
        if reuse:
            self.gen.select_(torch.as_tensor(cached, dtype=torch.long))
            gen = self.gen
        else:
            gen = self.gen.select(torch.as_tensor(cached, dtype=torch.long))
        repeat = np.ones(len(cached), dtype=bool)
        repeat[np.unique(cached, return_index=True)[1]] = False  # first copies keep their stream
        repeat = np.flatnonzero(repeat)
        streams = []
        for i in self.problem[index[kept[repeat]]].tolist():
            streams.append(fresh_stream(int(self.ids[i]), int(self.duplicates[i])))
            self.duplicates[i] += 1
        if len(repeat):
            gen.stream[torch.as_tensor(repeat)] = torch.tensor(streams, dtype=torch.long)
        self.gen, self.slot, self.done_text = gen, slot, done_text
        if reuse:
            self.scorer.select_(self.state, cached)
        else:
            self.state = self.scorer.select(self.state, cached)
        self.problem = self.problem[index]
        self.rewards = [list(self.rewards[r]) for r in index]
        self.got_step = self.got_step[index]


# ----------------------------------------------------------------------------------------------
# Particle filtering


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
    aggregation: str = "last",
    select_answer: str = "max_weight",
    answer_fn: Callable[[str], Any] = arith_answer,
    potential: str = "logit",
    progress: bool = False,
) -> DecodeResult:
    """Particle filtering over reasoning steps for every prompt at once (Puri et al.).

    ``config`` (`SMCConfig`): particles per problem, resampling scheme, ESS threshold, temperature or
    schedule, weighting, max_steps, seed. Default: ``SMCConfig(weighting="current")``, the paper's
    ``softmax(logit(r) / tau)`` of the current reward with resampling before every step; a config you
    pass is used as is (its default weighting is "incremental"). Finished particles (EOS or token
    budget) are not extended again, keep their last weight and still take part in resampling.
    ``select_answer``: ``"max_weight"`` or ``"weighted_majority"`` over the final particles.

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
