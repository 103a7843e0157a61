"""How easy is the task for self-certainty? The policy's own token probabilities as a verifier (notebook 00).

If the policy's errors are tokens it found unlikely when it sampled them, its own likelihood already
spots them and a PRM has nothing to add. Two measurements say how far that is the case:

- **the first wrong token**: for every solution with a wrong step, the probability the policy gave the
  first token at which that step leaves the right step (`tasks.arith.StepVerdict.expected`); an error is
  *confident* when that probability is at least ``CONFIDENT`` (the policy's mode was wrong there);
- **the raw likelihood as a verifier**: each solution's lowest token log-probability (its running minimum
  at the end; separators and EOS aside, as the likelihood scorer counts them), ranked within a problem
  against the final answers, overall, on the problems where a misconception applies, and per kind of
  first error.

Both read the log-probabilities the sampler recorded, so they are the policy's own only at temperature 1.
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import within_problem_auroc

CONFIDENT = 0.5  # a first wrong token at least this likely under the policy: a confident error


def first_wrong_token(tokenizer, token_ids: list[int], span: tuple[int, int], expected: str,
                      delimiter: str = "\n") -> int:
    """Index (into ``token_ids``) of the first token of the step ``span`` whose text leaves ``expected``:
    the shortest prefix of the step's tokens that is not a prefix of the right step. A step that stops
    short of the right one errs at the token that ends it (its delimiter, or its last token)."""
    a, b = span
    for j in range(a, b):
        text = tokenizer.decode(token_ids[a : j + 1]).lstrip(delimiter)
        if not expected.startswith(text):
            return j
    return b - 1


def first_error_probabilities(ev, tokenizer, delimiter: str = "\n") -> list[dict]:
    """One record per sampled solution with a wrong step: problem and sample index, the first error's
    kind and step, and the probability the policy gave its first wrong token."""
    if ev.verdicts is None:
        raise ValueError("first-error probabilities need the task's step oracle")
    out, s = [], ev.samples
    for i, row in enumerate(ev.verdicts):
        for j, v in enumerate(row):
            r = i * s.n + j
            if v.first_error < 0 or v.first_error >= len(s.step_spans[r]):
                continue
            step = v.steps[v.first_error]
            t = first_wrong_token(tokenizer, s.token_ids[r], s.step_spans[r][v.first_error], step.expected, delimiter)
            out.append({"problem": i, "sample": j, "kind": step.kind, "step": v.first_error,
                        "prob": math.exp(float(s.logprobs[r][t]))})
    return out


def confidence_summary(records: list[dict], threshold: float = CONFIDENT) -> dict[str, float]:
    """``selfcert/...`` metrics: the share of erring solutions whose first wrong token had probability >=
    ``threshold`` (overall and per kind), the median of that probability, and the number of records."""
    out: dict[str, float] = {"selfcert/errors": float(len(records))}
    if not records:
        return out
    probs = np.array([r["prob"] for r in records])
    out["selfcert/confident_share"] = float(np.mean(probs >= threshold))
    out["selfcert/first_wrong_prob_median"] = float(np.median(probs))
    for kind in sorted({r["kind"] for r in records}):
        p = np.array([r["prob"] for r in records if r["kind"] == kind])
        out[f"selfcert/confident_share/{kind}"] = float(np.mean(p >= threshold))
        out[f"selfcert/first_wrong_prob_median/{kind}"] = float(np.median(p))
        out[f"selfcert/errors/{kind}"] = float(len(p))
    return out


def likelihood_scores(samples, tokenizer, delimiter: str = "\n") -> list[list[float]]:
    """[prompts][n] each solution's lowest token log-probability under the sampler, counting every token
    but EOS and tokens that are only the delimiter or whitespace (the likelihood scorer's rule); 0.0
    (probability 1) for a solution without a counted token."""
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    blank: dict[int, bool] = {}

    def counted(t: int) -> bool:
        if t not in blank:
            blank[t] = t in eos or not tokenizer.decode([t]).strip(delimiter).strip()
        return not blank[t]

    flat = []
    for ids, lps in zip(samples.token_ids, samples.logprobs):
        vals = [float(lp) for t, lp in zip(ids, lps.tolist()) if counted(t)]
        flat.append(min(vals, default=0.0))
    return [flat[i * samples.n : (i + 1) * samples.n] for i in range(len(samples.prompts))]


def likelihood_aurocs(scores: list[list[float]], ev, misconception_problems: list[bool] | None = None) -> dict[str, float]:
    """``selfcert/likelihood_within_auroc...``: the within-problem AUROC of ``scores`` against the final
    answers overall; on the problems flagged in ``misconception_problems``; and per kind K of first
    error (right solutions against the wrong ones whose first error is of kind K, within each problem)."""
    correct = ev.correct
    out = {"selfcert/likelihood_within_auroc": within_problem_auroc(scores, correct)}
    if misconception_problems is not None and any(misconception_problems):
        rows = [i for i, flag in enumerate(misconception_problems) if flag]
        out["selfcert/likelihood_within_auroc/misconception_problems"] = within_problem_auroc(
            [scores[i] for i in rows], [correct[i] for i in rows])
    if ev.verdicts is not None:
        kinds = sorted({v.kinds[v.first_error] for row in ev.verdicts for v in row if v.first_error >= 0})
        for kind in kinds:
            keep = [[c or (v.first_error >= 0 and v.kinds[v.first_error] == kind) for c, v in zip(cr, vr)]
                    for cr, vr in zip(correct, ev.verdicts)]
            sub_scores = [[s for s, k in zip(sr, kr) if k] for sr, kr in zip(scores, keep)]
            sub_correct = [[c for c, k in zip(cr, kr) if k] for cr, kr in zip(correct, keep)]
            out[f"selfcert/likelihood_within_auroc/{kind}"] = within_problem_auroc(sub_scores, sub_correct)
    return out


def misconception_problems(task, problems: list) -> list[bool]:
    """Per problem, whether one of the task's misconceptions applies to a step of its true chain (all
    False on a task without misconceptions)."""
    from .tasks.arith import misconception_applies

    rules = getattr(getattr(task, "cfg", None), "rules", ())
    return [bool(rules) and misconception_applies(p, rules) for p in problems]


def greedy_metrics(correct, flagged: list[bool]) -> dict[str, float]:
    """``eval/greedy_accuracy`` (one greedy solution per problem, ``correct`` [problems]) overall and on
    the problems flagged by `misconception_problems` and the others."""
    correct = np.asarray(correct, dtype=float)
    flags = np.asarray(flagged, dtype=bool)
    out = {"eval/greedy_accuracy": float(correct.mean())}
    if flags.any():
        out["eval/greedy_accuracy/misconception_problems"] = float(correct[flags].mean())
    if flags.any() and (~flags).any():
        out["eval/greedy_accuracy/other_problems"] = float(correct[~flags].mean())
    return out
