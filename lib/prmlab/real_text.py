"""Best-of-N and (weighted) majority vote on real GSM8K model solutions, with a simple verifier.

``shared/data/gsm8k/example_model_solutions.jsonl`` holds, for each of the 1,319 GSM8K test
questions, four real solutions (one from each of ``GSM8K_MODELS``) with outcome labels. This module
runs the same selection code as the embedded task on them: :func:`gsm8k_real_text_study` trains the
feature verifier of `prmlab.prm.verifier` on part of the questions and, on the rest, compares random
choice, verifier best-of-N, majority vote, verifier-weighted majority and oracle pass@N for
N = 1, 2, 4; :func:`annotation_study` checks every calculator annotation to find real arithmetic
errors; :func:`study_metrics` names the headline numbers for MLflow. The figure is
`prmlab.viz.real_text_figure`. :func:`scorer_on_model_solutions` judges a step scorer (notebook 01's
PRM) on the same solutions, written by other models than the one it learned from.

Each question has exactly one solution per model, so "the first n solutions" would confound n with
the model. Every accuracy at n < 4 is therefore the exact expectation over uniformly random
n-subsets of the 4 solutions (ties broken at random), never a prefix.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from prmlab.metrics import (
    aggregate_step_scores,
    auroc,
    best_of_n_accuracy,
    exact_majority_accuracy,
    within_problem_auroc,
    within_question_pair_accuracy,
)
from prmlab.prm.verifier import (
    FEATURE_NAMES,
    Verifier,
    add_agreement,
    answer_value,
    feature_matrix,
    to_fraction,
    train_verifier,
)
from prmlab.tasks.real import (
    GSM8K_MODELS,
    check_annotations,
    eval_arithmetic,
    load_gsm8k_model_solutions,
    split_steps,
    strip_annotations,
)

METHODS = ("random", "best_of_n_verifier", "majority", "weighted_majority_verifier", "oracle")


def _key(v: Fraction | None) -> str | None:
    return None if v is None else str(v)


# ---------------------------------------------------------------------------------------------
# Selection accuracies, exact over random subsets
# ---------------------------------------------------------------------------------------------


def _selection_accuracies(scores, correct, answers, reference, ns, scorer: str = "verifier") -> dict[str, dict[int, float]]:
    """Accuracy per method and n on one set of questions ([questions, N] arrays); ``scorer`` names
    what gave ``scores`` in the methods that use them."""
    return {
        # constant scores: ties broken at random, i.e. a random sample
        "random": best_of_n_accuracy(np.zeros(correct.shape), correct, ns=ns),
        f"best_of_n_{scorer}": best_of_n_accuracy(scores, correct, ns=ns),
        "majority": exact_majority_accuracy(answers, None, reference, ns),
        f"weighted_majority_{scorer}": exact_majority_accuracy(answers, scores, reference, ns),
        # scoring by correctness picks a correct sample whenever there is one: pass@n
        "oracle": best_of_n_accuracy(correct.astype(float), correct, ns=ns),
    }


# ---------------------------------------------------------------------------------------------
# Calculator annotations: real arithmetic errors
# ---------------------------------------------------------------------------------------------


def _format_value(v: Fraction | None) -> str | None:
    if v is None:
        return None
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.6g}"


def _first_wrong_annotation(step: str) -> dict:
    """The first annotation of ``step`` that does not check: its text, the claimed result, the
    correct value of its expression, and whether the expression is plain arithmetic at all."""
    annotation = next(a for a, ok in check_annotations(step) if not ok)
    parts = annotation.split("=")
    claimed = eval_arithmetic(parts[-1]) if len(parts) >= 2 else None
    values = [eval_arithmetic(p) for p in parts[:-1]]
    # in a chain "a=b=c", report the first link that is not plain arithmetic or misses the result
    value = next((v for v in values if v is None or v != claimed), values[0] if values else None)
    return {
        "annotation": annotation,
        "claimed": parts[-1].strip() if len(parts) >= 2 else None,
        "correct_value": _format_value(value),
        "kind": "arithmetic" if value is not None and claimed is not None else "not_plain_arithmetic",
    }


def annotation_study(solved, n_examples: int = 6) -> dict:
    """Check every calculator annotation of every model solution (``first_wrong_annotation_step``).

    Returns counts of solutions with at least one wrong annotation (split into real arithmetic
    mistakes and annotations that are not plain arithmetic, e.g. ``x+56=86``), the histogram of the
    first wrong step index, the outcome accuracy with and without a wrong annotation, counts per
    model, and the first ``n_examples`` arithmetic mistakes (question id, model, step, annotation,
    claimed result, correct value, outcome)."""
    n_sol = n_ann = n_ann_wrong = n_no_ann = 0
    hist: dict[int, int] = {}
    kinds = {"arithmetic": 0, "not_plain_arithmetic": 0}
    by_model = dict.fromkeys(GSM8K_MODELS, 0)
    outcome = {True: [], False: []}  # has a wrong annotation -> outcome labels
    rel = []
    examples = []
    for sp in solved:
        for s in sp.solutions:
            steps = split_steps(s.solution)
            per_step = [[ok for _, ok in check_annotations(step)] for step in steps]
            checks = [ok for oks in per_step for ok in oks]
            n_sol += 1
            n_ann += len(checks)
            n_ann_wrong += checks.count(False)
            n_no_ann += not checks
            i = next((k for k, oks in enumerate(per_step) if not all(oks)), -1)  # first_wrong_annotation_step
            outcome[i >= 0].append(s.is_correct)
            if i < 0:
                continue
            hist[i] = hist.get(i, 0) + 1
            rel.append(i / max(len(steps) - 1, 1))  # 0 = first step, 1 = last step
            by_model[s.model] = by_model.get(s.model, 0) + 1
            wrong = _first_wrong_annotation(steps[i])
            kinds[wrong["kind"]] += 1
            if wrong["kind"] == "arithmetic" and len(examples) < n_examples:
                examples.append({"question_id": sp.problem.id, "model": s.model, "step_index": i,
                                 "step": steps[i], **wrong, "is_correct": s.is_correct})
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {
        "n_solutions": n_sol,
        "n_annotations": n_ann,
        "n_annotations_wrong": n_ann_wrong,
        "n_solutions_without_annotations": n_no_ann,
        "n_solutions_with_wrong": len(outcome[True]),
        "n_solutions_with_wrong_by_kind": kinds,  # kind of the first wrong annotation
        "n_solutions_with_wrong_by_model": by_model,
        "first_wrong_step_hist": dict(sorted(hist.items())),
        "first_wrong_step_rel_mean": mean(rel),
        "accuracy_with_wrong": mean(outcome[True]),
        "accuracy_without_wrong": mean(outcome[False]),
        "examples": examples,
    }


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def _verifier_report(ver: Verifier, X, correct, train, test) -> dict:
    """AUROC on train/test solutions, within-question pair accuracy, which model's solution the
    verifier picks among the 4 (ties split), the final loss and the weights by feature name."""
    scores = ver.predict_proba(X.reshape(-1, X.shape[-1])).reshape(correct.shape)
    top = scores[test] == scores[test].max(1, keepdims=True)
    picks = (top / top.sum(1, keepdims=True)).mean(0)
    return {
        "auroc_train": auroc(scores[train], correct[train]),
        "auroc_test": auroc(scores[test], correct[test]),
        "within_question_pair_accuracy_test": within_question_pair_accuracy(scores[test], correct[test]),
        "best_of_4_pick_share_test": dict(zip(GSM8K_MODELS, map(float, picks))),
        "final_loss": ver.losses[-1],
        "weights": dict(zip(FEATURE_NAMES, map(float, ver.weight))),  # on standardized features
    }


def gsm8k_real_text_study(
    n_train_questions: int = 660,
    seed: int = 0,
    limit: int | None = None,
    epochs: int = 200,
    lr: float = 0.1,
    l2: float = 1e-3,
    n_examples: int = 6,
) -> dict:
    """Verifier-based selection vs voting on the real GSM8K model solutions.

    Questions (the first ``limit`` of the file, all if None) are shuffled with ``seed``; the first
    ``n_train_questions`` train the verifier on their 4 solutions each, the rest are the test set.
    Two verifiers are trained:

    - ``verifier``: features of the solution alone (``other_answers=None``). Its scores drive
      best-of-N and weighted majority at every N, fairly: it sees only the n sampled solutions.
    - ``verifier_with_agreement``: also the self-consistency feature computed from the other 3
      answers. It sees all 4 solutions, so it is reported only at N = 4 (and by AUROC).

    Returns plain python types: ``ns``; ``accuracy[method][n]`` for ``METHODS`` on the test
    questions (exact expectation over random n-subsets); both verifiers' train/test AUROC, final
    loss and weights; per-model accuracy on the test questions and on all; and ``annotations``
    (:func:`annotation_study` on all questions: it uses no training).
    """
    solved = load_gsm8k_model_solutions(limit)
    P = len(solved)
    if not 1 <= n_train_questions < P:
        raise ValueError(f"n_train_questions must be in [1, {P - 1}] ({P} questions loaded); got {n_train_questions}")
    if any(len(sp.solutions) != len(GSM8K_MODELS) for sp in solved):
        raise ValueError(f"every question needs one solution per model {GSM8K_MODELS}")
    N = len(GSM8K_MODELS)
    ns = [1, 2, 4]

    # votes on canonical strings of the exact value ("18.0" and "18" both give "18"): fast to hash
    answers = [[_key(answer_value(s.solution)) for s in sp.solutions] for sp in solved]
    correct = np.array([[s.is_correct for s in sp.solutions] for sp in solved], dtype=bool)
    reference = [_key(to_fraction(sp.problem.answer)) for sp in solved]
    solo = feature_matrix(solved)
    with_agree = add_agreement(solo, solved)

    order = np.random.default_rng(seed).permutation(P)
    train, test = np.sort(order[:n_train_questions]), np.sort(order[n_train_questions:])
    reports, test_scores = {}, {}
    for name, X in (("verifier", solo), ("verifier_with_agreement", with_agree)):
        # train on the train questions' solutions, flattened to [questions * 4, F]
        ver = train_verifier(X[train].reshape(-1, X.shape[-1]), correct[train].ravel(), seed=seed,
                             epochs=epochs, lr=lr, l2=l2)
        reports[name] = _verifier_report(ver, X, correct, train, test)
        test_scores[name] = ver.predict_proba(X[test].reshape(-1, X.shape[-1])).reshape(len(test), N)

    c_test, a_test, r_test = correct[test], [answers[i] for i in test], [reference[i] for i in test]
    accuracy = _selection_accuracies(test_scores["verifier"], c_test, a_test, r_test, ns)
    sc = test_scores["verifier_with_agreement"]
    reports["verifier_with_agreement"]["best_of_4"] = best_of_n_accuracy(sc, c_test, ns=[N])[N]
    reports["verifier_with_agreement"]["weighted_majority_4"] = exact_majority_accuracy(a_test, sc, r_test, [N])[N]

    per_model = lambda rows: {m: float(correct[rows, j].mean()) for j, m in enumerate(GSM8K_MODELS)}  # noqa: E731
    return {
        "seed": seed,
        "n_questions": P,
        "n_train_questions": int(len(train)),
        "n_test_questions": int(len(test)),
        "n_solutions_without_answer": sum(a is None for row in answers for a in row),
        "ns": ns,
        "accuracy": accuracy,
        **reports,
        "per_model_accuracy": {"test": per_model(test), "all": per_model(np.arange(P))},
        "annotations": annotation_study(solved, n_examples=n_examples),
    }


def study_metrics(study: dict) -> dict[str, float]:
    """The study's headline numbers as flat floats under ``real/`` (names MLflow accepts: accuracy of
    a method at N is ``real/<method>/n<N>``)."""
    out = {f"real/{m}/n{n}": v for m, acc in study["accuracy"].items() for n, v in acc.items()}
    for name in ("verifier", "verifier_with_agreement"):
        out[f"real/{name}_auroc"] = study[name]["auroc_test"]
    out["real/verifier_with_agreement_best_of_4"] = study["verifier_with_agreement"]["best_of_4"]
    out["real/verifier_with_agreement_weighted_majority_4"] = study["verifier_with_agreement"]["weighted_majority_4"]
    ann = study["annotations"]
    for key in ("n_solutions_with_wrong", "accuracy_with_wrong", "accuracy_without_wrong"):
        out[f"real/annotations/{key}"] = float(ann[key])
    return out


# ---------------------------------------------------------------------------------------------
# A step scorer (a PRM) on the model solutions
# ---------------------------------------------------------------------------------------------


def scorer_on_model_solutions(scorer, task, limit: int | None = None, how: str = "min") -> dict:
    """A step scorer (``score(prompts, steps)``, e.g. notebook 01's PRM) on the 4 model solutions of
    each of the first ``limit`` GSM8K test questions.

    The prompt is ``task.prompt`` of the question (what the scorer was trained with); the steps are
    the solution's lines with calculator annotations removed (they read as a model would write them).
    Solution scores are the step scores aggregated by ``how``. Returns ``n_questions``, pooled
    ``auroc`` against the outcome labels, ``within_question_auroc`` and
    ``within_question_pair_accuracy``, and ``accuracy[method][n]`` at N = 1, 2, 4 for random choice,
    best-of-N and weighted majority with the scorer, majority vote and oracle pass@N (exact
    expectations over random n-subsets)."""
    solved = load_gsm8k_model_solutions(limit)
    if any(len(sp.solutions) != len(GSM8K_MODELS) for sp in solved):
        raise ValueError(f"every question needs one solution per model {GSM8K_MODELS}")
    prompts = [task.prompt(sp.problem) for sp in solved for _ in sp.solutions]
    steps = [split_steps(strip_annotations(s.solution)) for sp in solved for s in sp.solutions]
    step_scores = scorer.score(prompts, steps)
    scores = np.array([aggregate_step_scores(x, how) for x in step_scores]).reshape(len(solved), len(GSM8K_MODELS))
    correct = np.array([[s.is_correct for s in sp.solutions] for sp in solved], dtype=bool)
    answers = [[_key(answer_value(s.solution)) for s in sp.solutions] for sp in solved]
    reference = [_key(to_fraction(sp.problem.answer)) for sp in solved]
    return {
        "n_questions": len(solved),
        "aggregation": how,
        "auroc": auroc(scores, correct),
        "within_question_auroc": within_problem_auroc(scores, correct),
        "within_question_pair_accuracy": within_question_pair_accuracy(scores, correct),
        "accuracy": _selection_accuracies(scores, correct, answers, reference, [1, 2, 4], scorer="prm"),
    }


def scorer_study_metrics(study: dict) -> dict[str, float]:
    """``scorer_on_model_solutions`` as flat floats under ``real_prm/`` (accuracy of a method at N is
    ``real_prm/<method>/n<N>``)."""
    out = {f"real_prm/{m}/n{n}": v for m, acc in study["accuracy"].items() for n, v in acc.items()}
    for key in ("auroc", "within_question_auroc", "within_question_pair_accuracy"):
        out[f"real_prm/{key}"] = float(study[key])
    return out
