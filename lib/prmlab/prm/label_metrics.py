"""Step labels as notebook 01 logs them: ``label/...`` metrics from a ``LabelSet`` and its quality rows
(``LabelSet.quality``), and the columns of the quality table."""

from __future__ import annotations

import numpy as np

QUALITY_COLUMNS = ("labels", "n", "agreement", "bad_precision", "bad_recall", "bad_f1", "soft_mae", "soft_auroc",
                   "completions", "tokens")
MC_MEASURES = ("agreement", "bad_precision", "bad_recall", "bad_f1", "soft_mae", "soft_auroc", "tokens")
OUTCOME_MEASURES = ("agreement", "bad_precision", "bad_recall")


def label_set_metrics(label_set) -> dict:
    """``label/solutions``, ``label/steps`` and ``label/solution_accuracy`` (share with a right answer)."""
    solutions = label_set.solutions
    return {"label/solutions": len(solutions), "label/steps": sum(len(s.steps) for s in solutions),
            "label/solution_accuracy": float(np.mean([s.correct for s in solutions]))}


def quality_metrics(quality: list[dict]) -> list[tuple[dict, int | None]]:
    """``(metrics, step)`` pairs to log: each Monte Carlo row's measures as ``label/<measure>`` with
    step = N, the outcome row's as ``label/outcome_<measure>`` (no step)."""
    out = []
    for row in quality:
        if row["labels"] == "mc":
            out.append(({f"label/{k}": row[k] for k in MC_MEASURES}, row["n"]))
        else:
            out.append(({f"label/outcome_{k}": row[k] for k in OUTCOME_MEASURES}, None))
    return out
