"""Tasks: the embedded arithmetic task with its step oracle, and loaders/graders for real data.

Every task offers the same small interface so notebooks treat them alike: ``train``/``eval`` problem
lists, ``prompt(problem)``, ``reference_solution(problem)`` (what SFT trains on), ``grade(problem,
solution) -> bool``, ``answer_of_text(solution)`` (the final answer a text states, without its problem:
decoding votes on it), ``split_steps(solution)`` and ``step_delimiter`` (the text between two steps, where
samplers pause). Only the arithmetic task also has ``judge`` (the oracle's verdict on every step).
"""

from __future__ import annotations

from ..choices import unknown_choice
from .arith import ArithConfig, ArithTask

TASKS = ("arith", "gsm8k", "math500")


def get_task(name: str, n_train: int = 0, n_eval: int = 200, seed: int = 0, **knobs):
    """The task called ``name`` with fixed, seeded splits. ``knobs``: for arith the ``ArithConfig``
    fields, for real data ``step_format`` and ``chat_tokenizer`` (see ``RealTask``)."""
    if name == "arith":
        return ArithTask(ArithConfig(**knobs), n_train=n_train, n_eval=n_eval, seed=seed)
    if name in ("gsm8k", "math500"):
        from .real import RealTask

        return RealTask(name, n_eval=n_eval, seed=seed, **knobs)  # real data: train = the rest
    raise unknown_choice(name, TASKS, "task")


ARITH_KNOBS = ("min_ops", "max_ops", "max_operand", "max_value")


def task_from_params(params: dict, n_train: int = 0, n_eval: int = 200, tokenizer=None):
    """The task that notebook 00 was run with, from its parameters (``dataset``, the arith knobs, the
    real data's ``step_format`` and ``chat_template``, and ``seed``; values as logged, i.e. strings, or
    as typed), with new split sizes. ``tokenizer`` (the policy's) supplies the chat template when the
    run used one; without it, the tokenizer of the run's pretrained ``policy`` is loaded.

    Later notebooks rebuild the policy's own task from its run's parameters (``run.data.params``) so
    that train and eval splits and prompts agree."""
    name = params.get("dataset", "arith")
    if name == "arith":
        knobs = {k: int(params[k]) for k in ARITH_KNOBS if k in params}
        if params.get("misconceptions"):  # the rules 00's SFT data followed: the oracle names them
            knobs["misconceptions"] = str(params["misconceptions"])
    else:
        knobs = {"step_format": params.get("step_format", "line")}
        if str(params.get("chat_template", False)).lower() == "true":
            if tokenizer is None:
                if not params.get("policy"):
                    raise ValueError("the policy's run used a chat template but names no pretrained policy: "
                                     "pass the policy's tokenizer")
                from ..models import load_tokenizer

                tokenizer = load_tokenizer(params["policy"])
            knobs["chat_tokenizer"] = tokenizer
    return get_task(name, n_train=n_train, n_eval=n_eval, seed=int(params.get("seed", 0)), **knobs)
