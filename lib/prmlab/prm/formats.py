"""Read and write process-supervision data: TRL stepwise supervision, Math-Shepherd, PRM800K, ProcessBench.

Everything converts to one record, :class:`StepwiseRecord` (a prompt, its steps, a label per step:
1 = the step is right). Readers take ``.jsonl`` files (one JSON object per line; blank lines are
skipped) or ``.json`` files holding one array of objects. Bad input raises :class:`FormatError`
naming the file, the line (or array item) and the field, e.g.
``data.jsonl line 3: field 'labels' has 2 entries but 'completions' has 3``.
Writers serialise every record before opening the file and then replace it atomically, so a bad
record never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..choices import check_choice

MATH_SHEPHERD_TAG = "ки"


class FormatError(ValueError):
    """A record that does not follow its format; the message names where and which field."""


@dataclass
class StepwiseRecord:
    """One solution with a label per step: 1 = right, 0 = wrong; soft labels lie in [0, 1]
    (e.g. the fraction of Monte Carlo rollouts that reach the answer). ``meta`` keeps any other
    fields of the source format (ids, answers, finish reasons) so that writers can give them back."""

    prompt: str
    completions: list[str]
    labels: list[float]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_text(self.prompt, "StepwiseRecord", "prompt")
        _check_steps(self.completions, "StepwiseRecord", "completions")
        self.completions = list(self.completions)
        self.labels = _check_labels(self.labels, len(self.completions), "StepwiseRecord")


# --------------------------------------------------------------------------------------------------
# Shared reading, writing and validation
# --------------------------------------------------------------------------------------------------


def _type_name(v) -> str:
    return "null" if v is None else type(v).__name__


def _fail(where: str, name: str, problem: str):
    raise FormatError(f"{where}: field '{name}' {problem}")


def _get(obj: dict, key: str, where: str, prefix: str = ""):
    if key not in obj:
        _fail(where, prefix + key, "is missing")
    return obj[key]


def _check_text(v, where: str, name: str) -> str:
    if not isinstance(v, str):
        _fail(where, name, f"must be a string, got {_type_name(v)}")
    return v


def _check_steps(v, where: str, name: str) -> list[str]:
    if not isinstance(v, (list, tuple)):
        _fail(where, name, f"must be a list of strings, got {_type_name(v)}")
    for i, s in enumerate(v):
        if not isinstance(s, str):
            _fail(where, name, f"entry {i} must be a string, got {_type_name(s)}")
    return list(v)


def _check_labels(
    v, n_steps: int, where: str, name: str = "labels", steps_name: str = "completions"
) -> list[float]:
    """Labels as floats in [0, 1]; bools and 0/1 ints are accepted (TRL writes bools)."""
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__len__"):
        _fail(where, name, f"must be a list of numbers, got {_type_name(v)}")
    if len(v) != n_steps:
        _fail(where, name, f"has {len(v)} entries but '{steps_name}' has {n_steps}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, (str, bytes)) or x is None:
            _fail(where, name, f"entry {i} must be a number or bool, got {_type_name(x)}")
        try:
            x = float(x)
        except (TypeError, ValueError):
            _fail(where, name, f"entry {i} must be a number or bool, got {_type_name(x)}")
        if not (math.isfinite(x) and 0.0 <= x <= 1.0):
            _fail(where, name, f"entry {i} is {x}, outside [0, 1]")
        out.append(x)
    return out


def _check_hard(labels: list[float], where: str, fmt: str):
    for i, x in enumerate(labels):
        if x not in (0.0, 1.0):
            problem = f"entry {i} is {x}; {fmt} has hard labels only (threshold soft labels first)"
            _fail(where, "labels", problem)


def _iter_objects(path) -> Iterator[tuple[str, dict]]:
    """(location, object) for each record of a .jsonl file, or of a .json file holding an array."""
    path = str(path)
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json"):
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                msg = f"{path} line {e.lineno}: invalid JSON ({e.msg}, column {e.colno})"
                raise FormatError(msg) from None
            if not isinstance(data, list):
                raise FormatError(f"{path}: expected a JSON array of records, got {_type_name(data)}")
            items = ((f"{path} item {i}", obj) for i, obj in enumerate(data))
        else:
            items = _jsonl_items(f, path)
        for where, obj in items:
            if not isinstance(obj, dict):
                raise FormatError(f"{where}: expected a JSON object, got {_type_name(obj)}")
            yield where, obj


def _jsonl_items(f, path: str):
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise FormatError(f"{path} line {n}: invalid JSON ({e.msg}, column {e.colno})") from None
        yield f"{path} line {n}", obj


def _write_jsonl(path, rows: Iterable[dict]) -> None:
    # serialise everything first: a bad record raises before the file is touched
    lines = [json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def _merge_meta(row: dict, meta: dict, where: str) -> dict:
    clash = sorted(set(row) & set(meta))
    if clash:
        _fail(where, "meta", f"has keys {clash} that the format uses itself")
    return {**row, **meta}


def _record(r, i: int) -> StepwiseRecord:
    if not isinstance(r, StepwiseRecord):
        raise FormatError(f"record {i}: expected a StepwiseRecord, got {_type_name(r)}")
    return r


# --------------------------------------------------------------------------------------------------
# TRL stepwise supervision: {"prompt": str, "completions": [str], "labels": [bool | float]}
# --------------------------------------------------------------------------------------------------

_STEPWISE_FIELDS = ("prompt", "completions", "labels")


def _stepwise_from_obj(obj: dict, where: str) -> StepwiseRecord:
    prompt = _check_text(_get(obj, "prompt", where), where, "prompt")
    completions = _check_steps(_get(obj, "completions", where), where, "completions")
    labels = _check_labels(_get(obj, "labels", where), len(completions), where)
    meta = {k: v for k, v in obj.items() if k not in _STEPWISE_FIELDS}
    return StepwiseRecord(prompt, completions, labels, meta)


def read_stepwise_jsonl(path) -> list[StepwiseRecord]:
    """Records of a TRL stepwise-supervision file; fields other than prompt/completions/labels go to
    ``meta``. Labels may be bools, 0/1 or floats in [0, 1]; they are read as floats."""
    return [_stepwise_from_obj(obj, where) for where, obj in _iter_objects(path)]


def write_stepwise_jsonl(records: Iterable[StepwiseRecord], path) -> None:
    """Write TRL stepwise-supervision jsonl. Hard labels (all 0/1) are written as bools, as TRL does;
    soft labels as floats. ``meta`` entries become extra top-level fields."""

    def row(i, r):
        r = _record(r, i)
        hard = all(x in (0.0, 1.0) for x in r.labels)
        labels = [x == 1.0 for x in r.labels] if hard else list(r.labels)
        row = {"prompt": r.prompt, "completions": r.completions, "labels": labels}
        return _merge_meta(row, r.meta, f"record {i}")

    _write_jsonl(path, (row(i, r) for i, r in enumerate(records)))


# --------------------------------------------------------------------------------------------------
# Math-Shepherd: {"input": "<question> Step 1: ... ки\nStep 2: ... ки", "label": same with + / -}
# --------------------------------------------------------------------------------------------------


def to_math_shepherd(record: StepwiseRecord, tag: str = MATH_SHEPHERD_TAG) -> tuple[str, str]:
    """``(input_text, label_text)`` in Math-Shepherd's layout: the question, a space, then the steps
    joined by newlines, each followed by a space and ``tag``; the label text has ``+`` (right) or
    ``-`` (wrong) in place of each tag. Labels must be hard. Read back with :func:`from_math_shepherd`
    the steps come back stripped, and the first step must start with its ``prompt_split`` marker
    (``"Step 1:"`` by default, as in the dataset)."""
    return _to_math_shepherd(record, tag, "StepwiseRecord")


def _to_math_shepherd(record: StepwiseRecord, tag: str, where: str) -> tuple[str, str]:
    _check_hard(record.labels, where, "Math-Shepherd")
    if not record.completions:
        _fail(where, "completions", "is empty; Math-Shepherd needs at least one step")
    texts = [("prompt", record.prompt)] + [(f"completions[{i}]", s) for i, s in enumerate(record.completions)]
    for name, text in texts:
        if tag in text:
            _fail(where, name, f"contains the step tag {tag!r}")
    marks = ["+" if y else "-" for y in record.labels]
    input_text = record.prompt + " " + "\n".join(f"{s} {tag}" for s in record.completions)
    label_text = record.prompt + " " + "\n".join(f"{s} {m}" for s, m in zip(record.completions, marks))
    return input_text, label_text


def _split_at_marker(marker: str) -> Callable[[str], tuple[str, str]]:
    def split(head: str) -> tuple[str, str]:
        i = head.find(marker)
        if i < 0:
            msg = f"has no {marker!r} separating the question from the first step (pass prompt_split)"
            raise FormatError(msg)
        return head[:i], head[i:]

    return split


def _from_math_shepherd(input_text, label_text, tag, prompt_split, where, meta=None) -> StepwiseRecord:
    _check_text(input_text, where, "input")
    _check_text(label_text, where, "label")
    pieces = input_text.split(tag)  # pieces[k] ends right before the k-th tag
    n = len(pieces) - 1
    if n == 0:
        _fail(where, "input", f"has no step tag {tag!r}")
    if pieces[-1].strip():
        _fail(where, "input", f"has text after the last step tag: {pieces[-1].strip()[:40]!r}")
    # the label text is the input with each tag replaced by one character: lengths must agree
    expected = len(input_text) - n * (len(tag) - 1)
    if len(label_text) != expected:
        problem = f"has {len(label_text)} characters but 'input' with each {tag!r} replaced by '+'/'-' has {expected}"
        _fail(where, "label", problem)
    labels, pos = [], 0
    for k, piece in enumerate(pieces[:-1]):
        pos += len(piece)
        if label_text[pos] not in "+-":
            problem = f"has {label_text[pos]!r} at character {pos} where step {k + 1}'s '+' or '-' belongs"
            _fail(where, "label", problem)
        labels.append(1.0 if label_text[pos] == "+" else 0.0)
        pos += 1
    split = _split_at_marker(prompt_split) if isinstance(prompt_split, str) else prompt_split
    try:
        prompt, first = split(pieces[0])
    except FormatError as e:
        _fail(where, "input", str(e))
    steps = [first] + pieces[1:-1]
    return StepwiseRecord(prompt.strip(), [s.strip() for s in steps], labels, dict(meta or {}))


def from_math_shepherd(
    input_text: str,
    label_text: str,
    tag: str = MATH_SHEPHERD_TAG,
    prompt_split: str | Callable[[str], tuple[str, str]] = "Step 1:",
) -> StepwiseRecord:
    """A record from Math-Shepherd ``input``/``label`` texts.

    Steps are the text between consecutive tags; their labels are the ``+``/``-`` found at the tags'
    places in ``label_text``. The question comes first, glued to the first step, so the text before
    the first tag is split at ``prompt_split``: a marker string (the first step starts at its first
    occurrence; Math-Shepherd numbers steps ``Step 1:``, ``Step 2:``, ...) or a function returning
    ``(prompt, first_step)``. Prompt and steps are stripped of surrounding whitespace.
    """
    return _from_math_shepherd(input_text, label_text, tag, prompt_split, "math-shepherd record")


def read_math_shepherd_jsonl(
    path, tag: str = MATH_SHEPHERD_TAG, prompt_split: str | Callable[[str], tuple[str, str]] = "Step 1:"
) -> list[StepwiseRecord]:
    """Records of a Math-Shepherd jsonl file (``{"input", "label", ...}``; other fields such as
    ``task`` go to ``meta``). See :func:`from_math_shepherd` for the conventions."""
    out = []
    for where, obj in _iter_objects(path):
        meta = {k: v for k, v in obj.items() if k not in ("input", "label")}
        input_text, label_text = _get(obj, "input", where), _get(obj, "label", where)
        out.append(_from_math_shepherd(input_text, label_text, tag, prompt_split, where, meta))
    return out


def write_math_shepherd_jsonl(records: Iterable[StepwiseRecord], path, tag: str = MATH_SHEPHERD_TAG) -> None:
    """Write ``{"input", "label", **meta}`` lines (see :func:`to_math_shepherd`; labels must be hard)."""

    def row(i, r):
        input_text, label_text = _to_math_shepherd(_record(r, i), tag, f"record {i}")
        return _merge_meta({"input": input_text, "label": label_text}, r.meta, f"record {i}")

    _write_jsonl(path, (row(i, r) for i, r in enumerate(records)))


# --------------------------------------------------------------------------------------------------
# PRM800K (OpenAI, "Let's Verify Step by Step"): one labelled solution per line,
# {"question": {"problem", ...}, "label": {"steps": [{"completions": [{"text", "rating"}],
#  "chosen_completion", "human_completion"}], "finish_reason"}}
# --------------------------------------------------------------------------------------------------

_RATINGS = (-1, 0, 1, None)


def _prm800k_completion(c, where: str, name: str) -> tuple[str, int | None]:
    if not isinstance(c, dict):
        _fail(where, name, f"must be an object, got {_type_name(c)}")
    text = _check_text(_get(c, "text", where, name + "."), where, name + ".text")
    rating = c.get("rating")
    if isinstance(rating, bool) or rating not in _RATINGS:
        _fail(where, name + ".rating", f"is {rating!r}; expected -1, 0, 1 or null")
    return text, rating


def _prm800k_from_obj(obj: dict, where: str) -> StepwiseRecord:
    question = _get(obj, "question", where)
    if not isinstance(question, dict):
        _fail(where, "question", f"must be an object, got {_type_name(question)}")
    problem = _check_text(_get(question, "problem", where, "question."), where, "question.problem")
    label = _get(obj, "label", where)
    if not isinstance(label, dict):
        _fail(where, "label", f"must be an object, got {_type_name(label)}")
    steps = _get(label, "steps", where, "label.")
    if not isinstance(steps, list):
        _fail(where, "label.steps", f"must be a list, got {_type_name(steps)}")
    completions, ratings = [], []
    for k, step in enumerate(steps):
        name = f"label.steps[{k}]"
        if not isinstance(step, dict):
            _fail(where, name, f"must be an object, got {_type_name(step)}")
        cands = _get(step, "completions", where, name + ".")
        if not isinstance(cands, list):
            _fail(where, name + ".completions", f"must be a list, got {_type_name(cands)}")
        parsed = [_prm800k_completion(c, where, f"{name}.completions[{j}]") for j, c in enumerate(cands)]
        chosen, human = step.get("chosen_completion"), step.get("human_completion")
        if chosen is not None:
            if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(parsed):
                problem = f"is {chosen!r}; expected an index in [0, {len(parsed) - 1}] or null"
                _fail(where, name + ".chosen_completion", problem)
            text, rating = parsed[chosen]
        elif human is not None:
            # phase 1: the labeler wrote their own step after rejecting all completions; it is right
            text = human if isinstance(human, str) else human.get("text") if isinstance(human, dict) else None
            if not isinstance(text, str):
                _fail(where, name + ".human_completion", "must be a string or an object with a 'text' string")
            rating = 1
        else:
            # no step chosen: labelling stopped here; a -1 completion is the first error, else stop
            text, rating = next(((t, r) for t, r in parsed if r == -1), (None, None))
        if rating is None:  # unlabelled (give_up, bad_problem, or no rating): the labels end here
            break
        completions.append(text)
        ratings.append(rating)
        if rating == -1:
            break
    meta = {"finish_reason": label.get("finish_reason"), "ratings": ratings}
    if "ground_truth_answer" in question:
        meta["ground_truth_answer"] = question["ground_truth_answer"]
    labels = [0.0 if r == -1 else 1.0 for r in ratings]
    return StepwiseRecord(problem, completions, labels, meta)


def read_prm800k_jsonl(path) -> list[StepwiseRecord]:
    """PRM800K solutions as records, following the chosen completion at each step.

    Ratings map to labels as is usual for binary PRMs (as in Math-Shepherd/OpenR): +1 (good) and 0
    (neutral: right, but no progress) -> 1; -1 (bad) -> 0. A step with no chosen completion uses
    the human-written step if there is one (label 1); otherwise its first -1 completion is kept as
    the error. The record stops after the first -1 and before any unrated step (``give_up``,
    ``bad_problem``), so it may have no steps. ``meta`` keeps ``finish_reason``, the original
    ``ratings`` and ``ground_truth_answer`` when present.
    """
    return [_prm800k_from_obj(obj, where) for where, obj in _iter_objects(path)]


def write_prm800k_jsonl(records: Iterable[StepwiseRecord], path) -> None:
    """Write the minimal PRM800K structure that :func:`read_prm800k_jsonl` (and code following the
    PRM800K README) reads: one completion per step, chosen unless it is the error.

    Ratings come from ``meta["ratings"]`` when they agree with the labels, else label 1 -> +1 and
    0 -> -1. Labels must be hard; as in PRM800K, the steps after the first error are not written.
    ``finish_reason`` comes from ``meta``, else ``found_error`` or ``solution``.
    """

    def row(i, r):
        r = _record(r, i)
        where = f"record {i}"
        _check_hard(r.labels, where, "PRM800K")
        ratings = r.meta.get("ratings")
        derived = [1 if y else -1 for y in r.labels]
        agree = isinstance(ratings, list) and [x == -1 for x in ratings] == [d == -1 for d in derived]
        if not agree:
            ratings = derived
        steps = []
        for text, rating in zip(r.completions, ratings):
            is_error = rating == -1
            steps.append({
                "completions": [{"text": text, "rating": rating, "flagged": None}],
                "human_completion": None,
                "chosen_completion": None if is_error else 0,
            })
            if is_error:
                break
        finish = r.meta.get("finish_reason") or ("found_error" if -1 in ratings else "solution")
        question = {"problem": r.prompt}
        if "ground_truth_answer" in r.meta:
            question["ground_truth_answer"] = r.meta["ground_truth_answer"]
        return {"question": question, "label": {"steps": steps, "finish_reason": finish}}

    _write_jsonl(path, (row(i, r) for i, r in enumerate(records)))


# --------------------------------------------------------------------------------------------------
# ProcessBench (Zheng et al., 2024): {"id", "generator", "problem", "steps": [...],
# "final_answer_correct", "label": index of the first wrong step or -1}
# --------------------------------------------------------------------------------------------------

_PROCESSBENCH_FIELDS = ("id", "generator", "problem", "steps", "label", "final_answer_correct")


@dataclass
class ProcessBenchRecord:
    """One ProcessBench sample; ``label`` is the index of the earliest wrong step, -1 if none.
    ``meta`` keeps any fields beyond the standard ones."""

    id: str | int
    problem: str
    steps: list[str]
    label: int
    generator: str | None = None
    final_answer_correct: bool | None = None
    meta: dict = field(default_factory=dict)


def _processbench_from_obj(obj: dict, where: str) -> ProcessBenchRecord:
    rid = _get(obj, "id", where)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        _fail(where, "id", f"must be a string or an integer, got {_type_name(rid)}")
    problem = _check_text(_get(obj, "problem", where), where, "problem")
    steps = _check_steps(_get(obj, "steps", where), where, "steps")
    label = _get(obj, "label", where)
    if isinstance(label, bool) or not isinstance(label, int):
        _fail(where, "label", f"must be an integer (first wrong step, or -1), got {_type_name(label)}")
    if not -1 <= label < len(steps):
        problem = f"is {label} but there are {len(steps)} steps (expected -1 or an index in [0, {len(steps) - 1}])"
        _fail(where, "label", problem)
    generator = obj.get("generator")
    if generator is not None and not isinstance(generator, str):
        _fail(where, "generator", f"must be a string or null, got {_type_name(generator)}")
    fac = obj.get("final_answer_correct")
    if fac is not None and not isinstance(fac, bool):
        _fail(where, "final_answer_correct", f"must be a bool or null, got {_type_name(fac)}")
    meta = {k: v for k, v in obj.items() if k not in _PROCESSBENCH_FIELDS}
    return ProcessBenchRecord(rid, problem, steps, label, generator, fac, meta)


def read_processbench_jsonl(path) -> list[ProcessBenchRecord]:
    """ProcessBench samples (``id``, ``problem``, ``steps``, ``label`` required; ``generator`` and
    ``final_answer_correct`` optional; other fields go to ``meta``)."""
    return [_processbench_from_obj(obj, where) for where, obj in _iter_objects(path)]


def write_processbench_jsonl(records: Iterable[ProcessBenchRecord], path) -> None:
    """Write ProcessBench jsonl; optional fields that are None are left out."""

    def row(i, r):
        if not isinstance(r, ProcessBenchRecord):
            raise FormatError(f"record {i}: expected a ProcessBenchRecord, got {_type_name(r)}")
        obj = {
            "id": r.id,
            "generator": r.generator,
            "problem": r.problem,
            "steps": list(r.steps),
            "final_answer_correct": r.final_answer_correct,
            "label": r.label,
        }
        obj = {k: v for k, v in obj.items() if v is not None}
        _processbench_from_obj(obj, f"record {i}")  # same checks as reading
        return _merge_meta(obj, r.meta, f"record {i}")

    _write_jsonl(path, (row(i, r) for i, r in enumerate(records)))


def processbench_to_stepwise(record: ProcessBenchRecord) -> StepwiseRecord:
    """Hard step labels from the first-error index: 1 before it, 0 at it and after (all 1 if -1).
    ``id``, ``generator`` and ``final_answer_correct`` (when set) and ``meta`` go to ``meta``."""
    n = len(record.steps)
    first = n if record.label == -1 else record.label
    meta = {"id": record.id, "generator": record.generator, "final_answer_correct": record.final_answer_correct}
    meta = {k: v for k, v in meta.items() if v is not None} | record.meta
    return StepwiseRecord(record.problem, list(record.steps), [1.0] * first + [0.0] * (n - first), meta)


def stepwise_to_processbench(record: StepwiseRecord, id: str | int | None = None) -> ProcessBenchRecord:
    """The ProcessBench label is the first step with label < 0.5 (soft labels are thresholded), or -1.
    Labels after the first error are not kept. ``id`` defaults to ``record.meta["id"]``;
    ``generator`` and ``final_answer_correct`` are taken from ``meta`` when present."""
    meta = dict(record.meta)
    rid = meta.pop("id", None)
    if id is not None:
        rid = id
    if rid is None:
        raise FormatError("StepwiseRecord: field 'meta.id' is missing; pass id=...")
    first = next((i for i, y in enumerate(record.labels) if y < 0.5), -1)
    return ProcessBenchRecord(
        id=rid,
        problem=record.prompt,
        steps=list(record.completions),
        label=first,
        generator=meta.pop("generator", None),
        final_answer_correct=meta.pop("final_answer_correct", None),
        meta=meta,
    )


# --------------------------------------------------------------------------------------------------
# Step-labelled training data from a file, its format named or detected
# --------------------------------------------------------------------------------------------------

STEP_LABEL_FORMATS = ("prm800k", "math-shepherd", "prmlab")  # "prmlab": the step-wise file above (TRL's layout)
FORMAT_CHOICES = ("auto", *STEP_LABEL_FORMATS)
_READERS = {"prm800k": read_prm800k_jsonl, "math-shepherd": read_math_shepherd_jsonl, "prmlab": read_stepwise_jsonl}
_SIGNATURES = {"prm800k": ("question", "label"), "math-shepherd": ("input", "label"),
               "prmlab": ("prompt", "completions", "labels")}


def detect_format(path) -> str:
    """The step-label format of ``path`` from the fields of its first record (``STEP_LABEL_FORMATS``)."""
    for where, obj in _iter_objects(path):
        found = [f for f, fields in _SIGNATURES.items() if all(k in obj for k in fields)]
        if len(found) == 1:
            return found[0]
        expected = "; ".join(f"{f}: {', '.join(fields)}" for f, fields in _SIGNATURES.items())
        raise FormatError(f"{where}: cannot tell the format from its fields {sorted(obj)} (expected {expected}); "
                          "name the format")
    raise FormatError(f"{path}: has no records")


def read_step_labels(path, format: str = "auto") -> list[StepwiseRecord]:
    """The records of a PRM800K, Math-Shepherd or prmlab step-wise file (``format``: one of
    ``STEP_LABEL_FORMATS``, or "auto": `detect_format`). Records without a labelled step (a PRM800K
    solution whose first step was never rated) are dropped; a file with none left is an error."""
    fmt = detect_format(path) if format == "auto" else check_choice(format, STEP_LABEL_FORMATS, "step-label format")
    records = [r for r in _READERS[fmt](path) if r.completions]
    if not records:
        raise FormatError(f"{path}: no record has a labelled step")
    return records
