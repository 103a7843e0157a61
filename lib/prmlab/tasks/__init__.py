"""Tasks: the embedded arithmetic task with its step oracle, and loaders/graders for real data.

Every task offers the same small interface so notebooks treat them alike: ``train``/``eval`` problem
lists, ``prompt(problem)``, ``grade(problem, solution) -> bool`` and ``split_steps(solution)``. Only the
arithmetic task also has ``judge`` (the oracle's verdict on every step).
"""

from __future__ import annotations

from .arith import ArithConfig, ArithTask

TASKS = ("arith", "gsm8k", "math500")


def get_task(name: str, n_train: int = 0, n_eval: int = 200, seed: int = 0, **arith_knobs):
    """The task called ``name`` with fixed, seeded splits."""
    if name == "arith":
        return ArithTask(ArithConfig(**arith_knobs), n_train=n_train, n_eval=n_eval, seed=seed)
    if name in ("gsm8k", "math500"):
        from .real import RealTask

        return RealTask(name, n_eval=n_eval, seed=seed)  # real data: train = the rest
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")


ARITH_KNOBS = ("min_ops", "max_ops", "max_operand", "max_value")


def task_from_run(run, n_train: int = 0, n_eval: int = 200):
    """The task a logged run of notebook 00 used (dataset, arith knobs and split seed), with new sizes.

    Later notebooks rebuild the policy's own task from its run so that train and eval splits agree."""
    params = run.data.params
    name = params.get("dataset", "arith")
    knobs = {k: int(params[k]) for k in ARITH_KNOBS if k in params} if name == "arith" else {}
    return get_task(name, n_train=n_train, n_eval=n_eval, seed=int(params.get("seed", 0)), **knobs)
