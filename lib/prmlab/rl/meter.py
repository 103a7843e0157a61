"""The hacking meter: what the rollouts of one RL step really contain, measured exactly.

A PRM-rewarded policy can learn to please the PRM instead of solving the problem (PURE saw steps that
only "think", one huge step, zero-content steps such as "Thank you.", long repetition). Papers see such
hacks only indirectly, through a falling accuracy. On a task with a step oracle prmlab measures them at
every RL step: the share of steps the oracle calls wrong, by kind, and the share of rollouts the PRM
rewards highly although their answer is wrong. Shape metrics (steps and tokens per response, missing
answers, repeated steps) catch the hacks that have no wrong step.

All metrics are plain floats named for MLflow (``rollout/...``, ``oracle/...``, ``reward/...``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..tasks.arith import ERROR_KINDS


def repeated_step_share(steps: list[list[str]]) -> float:
    """Share of steps that repeat an earlier step of the same response, word for word."""
    total = sum(len(s) for s in steps)
    repeats = sum(len(s) - len(set(s)) for s in steps)
    return repeats / total if total else 0.0


def rollout_shape(ro) -> dict[str, float]:
    """Accuracy and the shape of the responses: steps, tokens, truncation, repetition."""
    s = ro.samples
    n_steps = np.array([len(x) for x in s.steps], dtype=float)
    n_tokens = ro.response_mask.sum(1).numpy()
    return {
        "rollout/accuracy": float(ro.correct.float().mean()),
        "rollout/steps_per_response": float(n_steps.mean()),
        "rollout/tokens_per_response": float(n_tokens.mean()),
        "rollout/max_tokens_per_step": float(max((b - a for sp in s.step_spans for a, b in sp), default=0)),
        "rollout/truncated_share": float(np.mean(s.truncated)),
        "rollout/repeated_step_share": repeated_step_share(s.steps),
    }


def oracle_meter(verdicts: list) -> dict[str, float]:
    """The oracle's view: share of all steps that are wrong (and of each error kind), share of responses
    with no answer line, share that reach the right answer through a wrong step."""
    kinds = [k for v in verdicts for k in v.kinds]
    n = max(len(kinds), 1)
    out = {"oracle/wrong_step_share": sum(k != "ok" for k in kinds) / n}
    for kind in ERROR_KINDS:
        out[f"oracle/wrong_steps/{kind}"] = sum(k == kind for k in kinds) / n
    out["oracle/no_answer_share"] = float(np.mean([not v.complete for v in verdicts])) if verdicts else 0.0
    out["oracle/right_answer_flawed_process"] = (
        float(np.mean([v.answer_correct and v.first_error >= 0 for v in verdicts])) if verdicts else 0.0)
    return out


def reward_meter(step_probs: list[np.ndarray] | None, credited_returns: torch.Tensor | None,
                 correct: torch.Tensor) -> dict[str, float]:
    """How the process reward relates to the outcome.

    ``step_probs``: the scorer's probability that each step is good; ``credited_returns``: each
    response's return from its first token under the credit assignment in use (min-form: about its
    worst step's reward). ``reward/high_return_wrong`` is the share of rollouts whose credited return
    is above the batch median but whose answer is wrong (0 for a PRM that ranks perfectly);
    ``reward/sign_agreement`` the share whose return is positive exactly when the answer is right.
    """
    out: dict[str, float] = {}
    if step_probs is not None:
        flat = np.concatenate([np.asarray(p, dtype=float) for p in step_probs]) if step_probs else np.zeros(0)
        out["reward/prm_mean"] = float(flat.mean()) if flat.size else float("nan")
        out["reward/prm_min_mean"] = float(np.mean([p.min() if len(p) else np.nan for p in step_probs]))
    if credited_returns is not None:
        g = credited_returns.double()
        wrong = ~correct.bool()
        out["reward/credited_return_mean"] = float(g.mean())
        out["reward/high_return_wrong"] = float(((g > g.median()) & wrong).double().mean())
        out["reward/sign_agreement"] = float(((g > 0) == correct.bool()).double().mean())
    return out
