"""ProcessBench (Zheng et al., 2024) scored the way its authors score a PRM, per subset of a ProcessBench file.

Their evaluation code (github.com/QwenLM/ProcessBench, ``code/run_eval_prm_rlhflow.py`` and ``run_eval.py``):
per subset (gsm8k, math, olympiadbench, omnimath) the prediction is the index of the first step judged
wrong, -1 if none; ``match = prediction == label``; the error accuracy is the mean match over samples with
``label != -1``, the correct accuracy over ``label == -1``, and F1 = 2·a·b / (a + b). The paper's summary is
the mean F1 over the subsets (``avg_f1``). Step rewards become a prediction by one of two rules:

- ``argmax``, for two-class PRMs (the conventions math-shepherd, qwen-prm, token-classification): a step is
  right only when its "good" class wins, P(good) > 0.5. The RLHFlow script calls a step right only when the
  PRM's greedy token is "+" (``startswith('+')``) and the maintainers use the predicted labels of
  Math-Shepherd's and RLHFlow's PRMs directly (QwenLM/ProcessBench issue #3): no threshold is tuned. A tie
  (P = 0.5) is no win for "good", so it counts as an error (pinned by a test; with vLLM's argmax over the
  vocabulary a tie would go to the lower token id).
- ``f1``, for PRMs with scalar scores (prmlab's own, the likelihood, PRIME's implicit PRM): the first step
  whose reward is below a threshold, the one threshold that maximises F1 on the GSM8K subset, applied to
  every subset (the maintainers in issue #3, for Skywork's PRMs; the paper's appendix also reports each
  subset's own best threshold, as an upper bound only: not done here). A number fixes the threshold.

The code prints percentages; these are fractions. Where both accuracies are 0 the code divides 0 by 0
(NaN); `prmlab.metrics.processbench_scores` reports F1 0 there.
"""

from __future__ import annotations

import re

import numpy as np

from ..choices import check_choice
from ..metrics import best_threshold, first_error_from_rewards, processbench_scores
from .formats import ProcessBenchRecord, read_processbench_jsonl

RULES = ("auto", "argmax", "f1")  # or a number: a fixed threshold
CHOOSE_ON = "gsm8k"  # the subset the f1 rule chooses its threshold on, as the authors did
ARGMAX_THRESHOLD = float(np.nextafter(0.5, 1.0))  # reward < this, i.e. P(good) <= 0.5: not a win for "good"
MEASURES = ("error_acc", "correct_acc", "f1", "n_error", "n_correct")


def parse_rule(text) -> str | float:
    """``auto``, ``argmax``, ``f1`` or a threshold (a number in [0, 1]); ``ValueError`` naming them otherwise."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        return check_choice(text, RULES, "ProcessBench threshold rule (or a number in [0, 1])")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a ProcessBench threshold must lie in [0, 1]; got {value}")
    return value


def default_rule(scorer) -> str:
    """``argmax`` for a two-class published PRM (an adapter of `prmlab.prm.adapters`), else ``f1``."""
    from .adapters import HFStepScorer

    return "argmax" if isinstance(scorer, HFStepScorer) else "f1"


def subset_of(record: ProcessBenchRecord, default: str) -> str:
    """The subset a record belongs to: its id's prefix (``gsm8k-12`` -> ``gsm8k``), else ``default``."""
    m = re.fullmatch(r"(.+)-\d+", str(record.id))
    return m.group(1) if m else default


def read_subsets(paths) -> dict[str, list[ProcessBenchRecord]]:
    """The records of ProcessBench files by subset (ids ``<subset>-<n>``, else the file's name without suffix)."""
    from pathlib import Path

    out: dict[str, list[ProcessBenchRecord]] = {}
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        if not Path(path).is_file():
            raise ValueError(f"no such ProcessBench file {str(path)!r}")
        for r in read_processbench_jsonl(path):
            out.setdefault(subset_of(r, Path(path).stem), []).append(r)
    return out


def score_subsets(scorer, subsets: dict[str, list[ProcessBenchRecord]]) -> dict[str, list[np.ndarray]]:
    """Every step's reward by ``scorer`` (`prmlab.prm.scorer.StepScorer`); the problem text is the prompt, as is."""
    return {name: scorer.score([r.problem for r in rs], [list(r.steps) for r in rs]) for name, rs in subsets.items()}


def evaluate(subsets: dict[str, list[ProcessBenchRecord]], rewards: dict[str, list], rule="f1",
             choose_on: str = CHOOSE_ON) -> dict:
    """ProcessBench's scores per subset under ``rule`` (``argmax``, ``f1`` or a number; module docstring).

    Returns ``{"rule", "threshold", "chosen_on", "subsets": {name: {error_acc, correct_acc, f1, n_error,
    n_correct}}, "avg_f1", "predictions": {name: [first error per record]}}``."""
    if rule == "auto":
        raise ValueError("resolve 'auto' first (default_rule: argmax for two-class PRMs, else f1)")
    chosen_on = None
    if rule == "argmax":
        threshold = ARGMAX_THRESHOLD
    elif rule == "f1":
        check_choice(choose_on, tuple(subsets), "subset to choose the threshold on")
        labels = [r.label for r in subsets[choose_on]]
        threshold, _ = best_threshold([list(x) for x in rewards[choose_on]], labels)
        chosen_on = choose_on
    else:
        threshold = float(rule)
    predictions, scores = {}, {}
    for name, records in subsets.items():
        predictions[name] = first_error_from_rewards([list(x) for x in rewards[name]], threshold)
        scores[name] = processbench_scores(predictions[name], [r.label for r in records])
    return {"rule": rule if isinstance(rule, str) else "fixed", "threshold": threshold, "chosen_on": chosen_on,
            "subsets": scores, "avg_f1": float(np.mean([s["f1"] for s in scores.values()])), "predictions": predictions}


def describe(result: dict) -> str:
    """Which rule gave the numbers, in words."""
    if result["rule"] == "argmax":
        return "argmax of the two-class PRM (a step is right when P(good) > 0.5)"
    if result["rule"] == "f1":
        return f"threshold {result['threshold']:.4g}, chosen by F1 on the {result['chosen_on']} subset, on every subset"
    return f"fixed threshold {result['threshold']:.4g}"


def metrics(result: dict, name: str) -> dict:
    """``processbench/<name>/<subset>/<measure>``, ``.../avg_f1`` and ``.../threshold``."""
    out = {f"processbench/{name}/{subset}/{k}": float(v[k]) for subset, v in result["subsets"].items() for k in MEASURES}
    return out | {f"processbench/{name}/avg_f1": result["avg_f1"], f"processbench/{name}/threshold": result["threshold"]}


def table(results: dict[str, dict]) -> list[dict]:
    """One row per scorer and subset, with the rule that gave the numbers."""
    return [{"scorer": name, "subset": subset, "error acc": v["error_acc"], "correct acc": v["correct_acc"],
             "F1": v["f1"], "samples": v["n_error"] + v["n_correct"], "rule": describe(res)}
            for name, res in results.items() for subset, v in res["subsets"].items()]


def judge_scorers(scorers: dict, subsets: dict[str, list[ProcessBenchRecord]], rule="auto",
                  choose_on: str = CHOOSE_ON) -> dict[str, dict]:
    """`evaluate` for each of ``scorers`` (name -> scorer) on ``subsets`` (`read_subsets`); ``auto`` is each
    scorer's `default_rule`."""
    rule = parse_rule(rule)
    return {name: evaluate(subsets, score_subsets(s, subsets), default_rule(s) if rule == "auto" else rule, choose_on)
            for name, s in scorers.items()}


def log(run, results: dict[str, dict]) -> None:
    """Every scorer's metrics, the rule each used (tag ``prmlab.processbench.rule.<name>``) and the predictions
    (``processbench.json``) into one MLflow run."""
    for name, res in results.items():
        run.log_metrics(metrics(res, name))
    run.set_tags({f"prmlab.processbench.rule.{name}": describe(res) for name, res in results.items()})
    run.log_dict(results, "processbench.json")


def lines(results: dict[str, dict]) -> list[str]:
    """The read-out ProcessBench's scripts print (percentages), per scorer and subset, with the rule."""
    out = []
    for name, res in results.items():
        out.append(f"{name}: {describe(res)}")
        out += [f"  {subset} error acc: {100 * v['error_acc']:.1f}, correct acc: {100 * v['correct_acc']:.1f}, "
                f"f1: {100 * v['f1']:.1f}" for subset, v in res["subsets"].items()]
        out.append(f"  average f1: {100 * res['avg_f1']:.1f}")
    return out
