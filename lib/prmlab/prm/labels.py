"""Step labels for PRM training: oracle, Math-Shepherd Monte Carlo (hard and soft), and outcome labels.

The data set is built from the base policy: ``n_per_problem`` sampled solutions per problem, each
split into steps (:func:`sample_solutions`). Every solution is then labelled four ways
(:data:`LABEL_SOURCES`):

- ``"oracle"``: the task's step oracle (the role human labels play in PRM800K): 1 before the first
  wrong step, 0 from it on (``Verdict.step_labels``). Only tasks with an oracle have them.
- ``"mc-hard"`` / ``"mc-soft"``: Math-Shepherd (Wang et al., 2024). From the prefix ending at step i,
  a completer policy samples N completions, each graded by its final answer. Hard label: 1 if any
  completion reaches the right answer; soft label: the fraction that do. The last step needs no
  completion: the solution itself ends there, so its label is the solution's own outcome.
- ``"outcome"``: every step gets the final answer's correctness. This is the outcome-reward-model
  convention: an ORM is trained on the last step's label only (``PRMTrainConfig(target="orm")``);
  labelling every step just keeps the records in one shape (and is the naive "outcome as process
  label" baseline when trained with ``target="prm"``).

Monte Carlo labelling samples once at ``N_max`` completions per prefix; the labels (and the cost) for
any smaller N use the first N completions of each prefix, so a quality-versus-N table costs one pass
(:meth:`LabelSet.quality`). Completion j of prefix k uses the random stream
``MC_STREAM_OFFSET + k * MC_STREAM_STRIDE + j``: it depends neither on the batch size nor on N_max,
and never coincides with a stream used to sample the solutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..choices import check_choice
from ..metrics import auroc
from ..backends import make_sampler
from ..sampling import SamplerBase, SamplingConfig, sample
from .formats import StepwiseRecord

LABEL_SOURCES = ("oracle", "mc-hard", "mc-soft", "outcome")
MC_STREAM_OFFSET = 1 << 60  # completion streams live far above the solutions' streams (i * n + j)
MC_STREAM_STRIDE = 1 << 20  # up to about a million completions per prefix

# A completer: (prefix texts, one integer key per prefix, n) -> (n completion texts per prefix,
# n sampled-token counts per prefix). The key seeds the prefix's random streams.
Completer = Callable[[list[str], list[int], int], tuple[list[list[str]], list[list[int]]]]


@dataclass
class Solution:
    """One solution split into steps, with its outcome and (where the task has one) the oracle's verdict."""

    problem_index: int  # index into the problem list it was sampled for
    sample_index: int  # which of that problem's samples
    prompt: str
    steps: list[str]
    correct: bool  # the final answer is right (the outcome label)
    oracle: list[int] | None = None  # oracle step labels: 1 before the first error, 0 from it on
    first_error: int | None = None  # oracle's first wrong step, -1 if none
    kinds: list[str] | None = None  # oracle's kind of every step ("ok", "arithmetic", ...)
    num_tokens: int = 0  # tokens the policy sampled for it


def make_solutions(task, problems: list, texts: list[list[str]], num_tokens: list[list[int]] | None = None,
                   steps: list[list[list[str]]] | None = None) -> list[Solution]:
    """Solutions from texts (``texts[i]`` are the solutions of ``problems[i]``), graded and judged.

    ``steps[i][j]`` are the steps of ``texts[i][j]`` where the sampler found them (token spans, see
    `prmlab.sampling.Samples`); without them the task splits the texts. Solutions with no step at all
    (the policy stopped at once) have nothing to label and are left out.
    """
    oracle = getattr(task, "has_oracle", False)
    steps_of, out = steps, []
    for i, (problem, row) in enumerate(zip(problems, texts)):
        for j, text in enumerate(row):
            steps = task.split_steps(text) if steps_of is None else list(steps_of[i][j])
            if not steps:
                continue
            sol = Solution(i, j, task.prompt(problem), steps, False,
                           num_tokens=num_tokens[i][j] if num_tokens is not None else 0)
            if oracle:
                v = task.judge(problem, steps)
                sol.correct, sol.oracle, sol.first_error, sol.kinds = v.answer_correct, v.step_labels, v.first_error, list(v.kinds)
            else:
                sol.correct = bool(task.grade(problem, task.step_delimiter.join(steps)))
            out.append(sol)
    return out


def sample_solutions(sampler: SamplerBase, task, problems: list, n_per_problem: int, batch_size: int = 256,
                     progress: bool = False) -> list[Solution]:
    """``n_per_problem`` sampled solutions per problem (seeded by the sampler's config), split into steps."""
    if n_per_problem < 1:
        raise ValueError(f"n_per_problem must be >= 1, got {n_per_problem}")
    s = sample(sampler, [task.prompt(p) for p in problems], n=n_per_problem, batch_size=batch_size, progress=progress)
    n = n_per_problem
    texts = [s.of(i) for i in range(len(problems))]
    tokens = [[len(s.token_ids[i * n + j]) for j in range(n)] for i in range(len(problems))]
    return make_solutions(task, problems, texts, tokens, [s.steps_of(i) for i in range(len(problems))])


# ----------------------------------------------------------------------------------------------
# Monte Carlo completions.


class SamplerCompleter:
    """Completes step prefixes with a sampler (`prmlab.sampling.SamplerBase`) through `prmlab.sampling.sample` (each prefix
    encoded once, its cached state copied to its n rows, prefixes batched in order of length)."""

    def __init__(self, sampler: SamplerBase, batch_size: int = 256, progress: bool = False):
        self.sampler = sampler
        self.batch_size = batch_size
        self.progress = progress

    def __call__(self, prefixes: list[str], keys: list[int], n: int):
        streams = [MC_STREAM_OFFSET + k * MC_STREAM_STRIDE for k in keys]
        s = sample(self.sampler, prefixes, n, self.batch_size, self.progress, streams=streams, desc="mc completions")
        tokens = [len(t) for t in s.token_ids]  # tokens sampled, the EOS included
        return ([s.of(k) for k in range(len(prefixes))],
                [tokens[k * n : (k + 1) * n] for k in range(len(prefixes))])


@dataclass
class MonteCarlo:
    """Outcomes of ``n`` completions from every step prefix of every solution (Math-Shepherd).

    ``hits[s][i, j]``: completion j from the prefix ending at step i of solution s reached the right
    answer; the last step's row repeats the solution's own outcome (no completion was sampled for it,
    so its ``tokens`` are 0).
    """

    n: int
    hits: list[np.ndarray]  # per solution, [steps, n] bool
    tokens: list[np.ndarray]  # per solution, [steps, n] tokens sampled by each completion

    def _n(self, n: int | None) -> int:
        n = self.n if n is None else int(n)
        if not 1 <= n <= self.n:
            raise ValueError(f"n must lie in [1, {self.n}] (the completions sampled per prefix), got {n}")
        return n

    def soft_labels(self, n: int | None = None) -> list[list[float]]:
        """Per solution, the fraction of the first ``n`` completions of each step that are right."""
        n = self._n(n)
        return [h[:, :n].mean(1).tolist() for h in self.hits]

    def hard_labels(self, n: int | None = None) -> list[list[float]]:
        """Per solution, 1.0 for a step from which one of the first ``n`` completions is right, else 0.0."""
        n = self._n(n)
        return [h[:, :n].any(1).astype(float).tolist() for h in self.hits]

    def num_tokens(self, n: int | None = None) -> int:
        """Tokens sampled by the first ``n`` completions of every prefix (the labelling cost)."""
        n = self._n(n)
        return int(sum(t[:, :n].sum() for t in self.tokens))

    def num_completions(self, n: int | None = None) -> int:
        """Completions sampled when using ``n`` per prefix (the last step needs none)."""
        n = self._n(n)
        return n * sum(max(len(h) - 1, 0) for h in self.hits)


def monte_carlo(completer: SamplerBase | Completer, task, problems: list, solutions: list[Solution], n: int,
                batch_size: int = 256, progress: bool = False) -> MonteCarlo:
    """Math-Shepherd rollouts: ``n`` completions from every step prefix (but the last) of every solution.

    A prefix is the prompt followed by steps ``0..i``, each ending with the task's step delimiter. Each
    completion is graded by the task on the whole solution it makes (prefix steps + completion).
    ``completer`` is a sampler (usually the policy itself) or any :data:`Completer`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(completer, SamplerBase):
        completer = SamplerCompleter(completer, batch_size=batch_size, progress=progress)
    prefixes, heads, where = [], [], []
    for s_idx, sol in enumerate(solutions):
        head = ""
        for i, step in enumerate(sol.steps[:-1]):
            head += step + task.step_delimiter
            prefixes.append(sol.prompt + head)
            heads.append(head)
            where.append((s_idx, i))
    texts, counts = completer(prefixes, list(range(len(prefixes))), n) if prefixes else ([], [])
    hits = [np.zeros((len(s.steps), n), dtype=bool) for s in solutions]
    tokens = [np.zeros((len(s.steps), n), dtype=np.int64) for s in solutions]
    for (s_idx, i), head, row, cnt in zip(where, heads, texts, counts):
        problem = problems[solutions[s_idx].problem_index]
        hits[s_idx][i] = [bool(task.grade(problem, head + t)) for t in row]
        tokens[s_idx][i] = cnt
    for s_idx, sol in enumerate(solutions):
        hits[s_idx][-1] = sol.correct  # the solution's own ending is the last step's rollout
    return MonteCarlo(n, hits, tokens)


# ----------------------------------------------------------------------------------------------
# The labelled set.


def label_quality(labels: list[list[float]], oracle: list[list[int]]) -> dict:
    """How well hard ``labels`` match the oracle, step by step: agreement, and precision, recall and F1
    of flagging a bad step (label 0). Precision is NaN when no step is flagged."""
    y = np.concatenate([np.asarray(x, dtype=float) for x in labels]) if labels else np.zeros(0)
    o = np.concatenate([np.asarray(x, dtype=float) for x in oracle]) if oracle else np.zeros(0)
    if y.shape != o.shape:
        raise ValueError(f"labels have {y.size} steps but oracle has {o.size}")
    flagged, bad = y < 0.5, o < 0.5
    tp = int((flagged & bad).sum())
    precision = tp / flagged.sum() if flagged.any() else float("nan")
    recall = tp / bad.sum() if bad.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {
        "agreement": float(np.mean(flagged == bad)) if y.size else float("nan"),
        "bad_precision": float(precision),
        "bad_recall": float(recall),
        "bad_f1": float(f1),
        "steps": int(y.size),
        "bad_steps": int(bad.sum()),
    }


@dataclass
class LabelSet:
    """Sampled solutions with every label source; ``records(source)`` gives the training data."""

    problems: list
    solutions: list[Solution]
    mc: MonteCarlo | None = None

    @property
    def has_oracle(self) -> bool:
        return bool(self.solutions) and self.solutions[0].oracle is not None

    def labels(self, source: str, n: int | None = None) -> list[list[float]]:
        """Per solution, the step labels of ``source`` (Monte Carlo ones from the first ``n`` completions)."""
        check_choice(source, LABEL_SOURCES, "label source")
        if source == "oracle":
            if not self.has_oracle:
                raise ValueError("oracle labels need a task with a step oracle (arith)")
            return [[float(y) for y in s.oracle] for s in self.solutions]
        if source == "outcome":
            return [[float(s.correct)] * len(s.steps) for s in self.solutions]
        if self.mc is None:
            raise ValueError(f"{source!r} labels need Monte Carlo completions (build the set with n_mc >= 1)")
        return self.mc.hard_labels(n) if source == "mc-hard" else self.mc.soft_labels(n)

    def records(self, source: str, n: int | None = None) -> list[StepwiseRecord]:
        """One :class:`StepwiseRecord` per solution labelled by ``source``. ``meta`` keeps the problem
        and sample index, the outcome and the oracle's verdict (``oracle_labels``, ``first_error``,
        ``oracle_kinds``),
        so that label quality and PRM accuracy are measured against the oracle."""
        out = []
        for s, y in zip(self.solutions, self.labels(source, n)):
            meta = {"problem_index": s.problem_index, "sample_index": s.sample_index, "source": source,
                    "answer_correct": s.correct}
            if source.startswith("mc-"):
                meta["mc_n"] = self.mc._n(n)
            if s.oracle is not None:
                meta |= {"oracle_labels": list(s.oracle), "first_error": s.first_error, "oracle_kinds": list(s.kinds)}
            out.append(StepwiseRecord(s.prompt, list(s.steps), y, meta))
        return out

    def quality(self, ns: list[int] | None = None) -> list[dict]:
        """Monte Carlo labels against the oracle for each N in ``ns`` (default 1, 2, 4, ... and N_max),
        one row each, plus an ``outcome`` row (N = 0, free) for reference.

        Hard labels: ``agreement``, ``bad_precision``, ``bad_recall``, ``bad_f1`` (see
        :func:`label_quality`); soft labels: ``soft_mae`` (mean |soft - oracle|) and ``soft_auroc``
        (how well the soft label ranks good above bad steps). Cost: ``completions`` and ``tokens`` sampled.
        """
        if not self.has_oracle:
            raise ValueError("label quality is measured against the oracle; this task has none")
        if self.mc is None:
            raise ValueError("no Monte Carlo completions to assess (build the set with n_mc >= 1)")
        if ns is None:
            ns = sorted({2**k for k in range(int(np.log2(self.mc.n)) + 1)} | {self.mc.n})
        oracle = [s.oracle for s in self.solutions]
        flat = np.concatenate([np.asarray(o, dtype=float) for o in oracle])
        rows = []
        outcome = self.labels("outcome")
        rows.append({"labels": "outcome", "n": 0, **label_quality(outcome, oracle),
                     "soft_mae": float(np.mean(np.abs(np.concatenate(outcome) - flat))),
                     "soft_auroc": auroc(outcome, oracle), "completions": 0, "tokens": 0})
        for n in ns:
            soft = np.concatenate([np.asarray(x) for x in self.mc.soft_labels(n)])
            rows.append({"labels": "mc", "n": int(n), **label_quality(self.mc.hard_labels(n), oracle),
                         "soft_mae": float(np.mean(np.abs(soft - flat))), "soft_auroc": auroc(soft, flat),
                         "completions": self.mc.num_completions(n), "tokens": self.mc.num_tokens(n)})
        return rows


def build_label_set(policy, tokenizer, task, problems: list, n_per_problem: int = 4, n_mc: int = 8,
                    sampling: SamplingConfig | None = None, completer: SamplerBase | Completer | None = None,
                    batch_size: int = 256, progress: bool = True, backend: str = "prmlab") -> LabelSet:
    """Sample ``n_per_problem`` solutions per problem from ``policy`` and label them every way.

    ``sampling`` (seed included) drives both the solutions and, unless ``completer`` is given, the
    Monte Carlo completions (by the policy itself, ``n_mc`` per step prefix; 0 skips them), generated on
    ``backend`` (`prmlab.backends.make_sampler`).
    """
    sampler = make_sampler(policy, tokenizer, sampling or SamplingConfig(), task.step_delimiter, backend)
    solutions = sample_solutions(sampler, task, problems, n_per_problem, batch_size, progress)
    mc = None
    if n_mc > 0:
        mc = monte_carlo(completer or sampler, task, problems, solutions, n_mc, batch_size, progress)
    return LabelSet(list(problems), solutions, mc)
