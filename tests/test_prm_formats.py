"""Tests for prmlab.prm.formats: hand-made examples in each format, round trips, and error messages
that name the file, the line and the field."""

import json
import re

import pytest

from prmlab.prm.formats import (
    FormatError,
    ProcessBenchRecord,
    StepwiseRecord,
    from_math_shepherd,
    processbench_to_stepwise,
    read_math_shepherd_jsonl,
    read_prm800k_jsonl,
    read_processbench_jsonl,
    read_stepwise_jsonl,
    stepwise_to_processbench,
    to_math_shepherd,
    write_math_shepherd_jsonl,
    write_prm800k_jsonl,
    write_processbench_jsonl,
    write_stepwise_jsonl,
)


def write_text(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def raises_at(path, line, message):
    """pytest.raises for a FormatError whose message is exactly '<path> line <n>: <message>'."""
    return pytest.raises(FormatError, match="^" + re.escape(f"{path} line {line}: {message}") + "$")


# ---------------------------------------------------------------- StepwiseRecord

RECORDS = [
    StepwiseRecord("What is 2+3*4?", ["3*4 = 12", "2 + 12 = 14", "The answer is 14"], [1.0, 1.0, 1.0]),
    StepwiseRecord("What is (2+3)*4?", ["2+3 = 5", "5*4 = 24", "The answer is 24"], [1.0, 0.0, 0.0], {"source": "hand"}),
    StepwiseRecord("Compute 7-2.", ["7-2 = 5"], [0.75]),
]


def test_stepwise_record_validates_and_normalizes():
    r = StepwiseRecord("p", ["a", "b"], [True, 0])
    assert r.labels == [1.0, 0.0] and all(type(x) is float for x in r.labels)
    with pytest.raises(FormatError, match=r"^StepwiseRecord: field 'labels' has 1 entries but 'completions' has 2$"):
        StepwiseRecord("p", ["a", "b"], [1])
    with pytest.raises(FormatError, match=r"field 'labels' entry 0 is -0.5, outside \[0, 1\]"):
        StepwiseRecord("p", ["a"], [-0.5])
    with pytest.raises(FormatError, match=r"field 'completions' entry 1 must be a string, got int"):
        StepwiseRecord("p", ["a", 3], [1, 1])


# ---------------------------------------------------------------- TRL stepwise supervision

STEPWISE_JSONL = """\
{"prompt": "What is 2+3*4?", "completions": ["3*4 = 12", "2 + 12 = 14", "The answer is 14"], "labels": [true, true, true]}
{"prompt": "What is (2+3)*4?", "completions": ["2+3 = 5", "5*4 = 24", "The answer is 24"], "labels": [1, 0, 0], "source": "hand"}

{"prompt": "Compute 7-2.", "completions": ["7-2 = 5"], "labels": [0.75]}
"""


def test_read_stepwise_hand_example(tmp_path):
    path = write_text(tmp_path, "data.jsonl", STEPWISE_JSONL)
    assert read_stepwise_jsonl(path) == RECORDS  # bools, ints and floats all read as floats; blank line skipped


def test_stepwise_round_trip(tmp_path):
    path = tmp_path / "out.jsonl"
    write_stepwise_jsonl(RECORDS, path)
    assert read_stepwise_jsonl(path) == RECORDS
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["labels"] == [True, True, True]  # hard labels written as bools, as TRL does
    assert rows[1]["source"] == "hand"  # meta becomes top-level fields
    assert rows[2]["labels"] == [0.75]


def test_reads_json_array(tmp_path):
    rows = [json.loads(line) for line in STEPWISE_JSONL.splitlines() if line]
    path = write_text(tmp_path, "data.json", json.dumps(rows))
    assert read_stepwise_jsonl(path) == RECORDS
    bad = write_text(tmp_path, "bad.json", json.dumps(rows[:1] + [{"prompt": "p"}]))
    with pytest.raises(FormatError, match=re.escape(f"{bad} item 1: field 'completions' is missing")):
        read_stepwise_jsonl(bad)


GOOD_LINE = '{"prompt": "p", "completions": ["a", "b", "c"], "labels": [1, 1, 0]}'


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"prompt": "p", "completions": ["a", "b", "c"], "labels": [1, 0]}',
         "field 'labels' has 2 entries but 'completions' has 3"),
        ('{"prompt": "p", "completions": ["a"]}', "field 'labels' is missing"),
        ('{"completions": ["a"], "labels": [1]}', "field 'prompt' is missing"),
        ('{"prompt": 7, "completions": ["a"], "labels": [1]}', "field 'prompt' must be a string, got int"),
        ('{"prompt": "p", "completions": "a", "labels": [1]}', "field 'completions' must be a list of strings, got str"),
        ('{"prompt": "p", "completions": ["a", null], "labels": [1, 1]}',
         "field 'completions' entry 1 must be a string, got null"),
        ('{"prompt": "p", "completions": ["a", "b"], "labels": [1, 1.5]}', "field 'labels' entry 1 is 1.5, outside [0, 1]"),
        ('{"prompt": "p", "completions": ["a"], "labels": [-1]}', "field 'labels' entry 0 is -1.0, outside [0, 1]"),
        ('{"prompt": "p", "completions": ["a"], "labels": ["yes"]}', "field 'labels' entry 0 must be a number or bool, got str"),
        ('{"prompt": "p", "completions": ["a"], "labels": [NaN]}', "field 'labels' entry 0 is nan, outside [0, 1]"),
        ('{"prompt": "p", "completions": ["a"], "labels": 1}', "field 'labels' must be a list of numbers, got int"),
    ],
)
def test_stepwise_field_errors(tmp_path, bad_line, message):
    path = write_text(tmp_path, "data.jsonl", f"{GOOD_LINE}\n{GOOD_LINE}\n{bad_line}\n")
    with raises_at(path, 3, message):
        read_stepwise_jsonl(path)


def test_invalid_json_and_non_objects(tmp_path):
    path = write_text(tmp_path, "data.jsonl", GOOD_LINE + '\n{"prompt": "p", "completions": [\n')
    with pytest.raises(FormatError, match="^" + re.escape(f"{path} line 2: invalid JSON (")):
        read_stepwise_jsonl(path)
    path = write_text(tmp_path, "list.jsonl", GOOD_LINE + "\n[1, 2]\n")
    with raises_at(path, 2, "expected a JSON object, got list"):
        read_stepwise_jsonl(path)


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.jsonl"
    clash = StepwiseRecord("p", ["a"], [1], meta={"labels": "oops"})
    with pytest.raises(FormatError, match=re.escape("record 1: field 'meta' has keys ['labels'] that the format uses itself")):
        write_stepwise_jsonl([RECORDS[0], clash], path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- Math-Shepherd

# written by hand in the dataset's layout: question, a space, then "Step k: ... ки" lines
MS_INPUT_1 = (
    "Tom has 3 apples and buys 4 more. How many apples does he have? "
    "Step 1: He buys 4 more, so he has 3 + 4 = <<3+4=7>>7 apples. ки\nStep 2: The answer is: 7 ки"
)
MS_LABEL_1 = (
    "Tom has 3 apples and buys 4 more. How many apples does he have? "
    "Step 1: He buys 4 more, so he has 3 + 4 = <<3+4=7>>7 apples. +\nStep 2: The answer is: 7 +"
)
MS_INPUT_2 = "A box holds 6 eggs. How many eggs are in 2 boxes? Step 1: 2 boxes hold 6 + 2 = 8 eggs. ки\nStep 2: The answer is: 8 ки"
MS_LABEL_2 = "A box holds 6 eggs. How many eggs are in 2 boxes? Step 1: 2 boxes hold 6 + 2 = 8 eggs. -\nStep 2: The answer is: 8 -"

MS_RECORDS = [
    StepwiseRecord(
        "Tom has 3 apples and buys 4 more. How many apples does he have?",
        ["Step 1: He buys 4 more, so he has 3 + 4 = <<3+4=7>>7 apples.", "Step 2: The answer is: 7"],
        [1.0, 1.0],
        {"task": "GSM8K"},
    ),
    StepwiseRecord(
        "A box holds 6 eggs. How many eggs are in 2 boxes?",
        ["Step 1: 2 boxes hold 6 + 2 = 8 eggs.", "Step 2: The answer is: 8"],
        [0.0, 0.0],
        {"task": "GSM8K"},
    ),
]


def test_math_shepherd_hand_example(tmp_path):
    rec = from_math_shepherd(MS_INPUT_1, MS_LABEL_1)
    assert (rec.prompt, rec.completions, rec.labels) == (MS_RECORDS[0].prompt, MS_RECORDS[0].completions, [1.0, 1.0])
    assert to_math_shepherd(MS_RECORDS[1]) == (MS_INPUT_2, MS_LABEL_2)  # writes exactly the dataset layout
    lines = [{"input": MS_INPUT_1, "label": MS_LABEL_1, "task": "GSM8K"}, {"input": MS_INPUT_2, "label": MS_LABEL_2, "task": "GSM8K"}]
    path = write_text(tmp_path, "shepherd.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    assert read_math_shepherd_jsonl(path) == MS_RECORDS


def test_math_shepherd_round_trip(tmp_path):
    path = tmp_path / "shepherd.jsonl"
    write_math_shepherd_jsonl(MS_RECORDS, path)
    assert read_math_shepherd_jsonl(path) == MS_RECORDS
    assert "ки" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    # a custom tag and a custom question/step split also round-trip
    rec = StepwiseRecord("Q?\nthink", ["a = 1", "b = 2"], [1, 0])
    inp, lab = to_math_shepherd(rec, tag="<step>")
    assert inp == "Q?\nthink a = 1 <step>\nb = 2 <step>" and lab == "Q?\nthink a = 1 +\nb = 2 -"
    assert from_math_shepherd(inp, lab, tag="<step>", prompt_split=lambda head: head.split(" ", 1)) == rec


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"input": MS_INPUT_1}, "field 'label' is missing"),
        ({"label": MS_LABEL_1}, "field 'input' is missing"),
        ({"input": 5, "label": MS_LABEL_1}, "field 'input' must be a string, got int"),
        ({"input": "Q? Step 1: x", "label": "Q? Step 1: x"}, "field 'input' has no step tag 'ки'"),
        ({"input": MS_INPUT_1 + " more", "label": MS_LABEL_1 + " more"}, "field 'input' has text after the last step tag: 'more'"),
        ({"input": MS_INPUT_1, "label": MS_LABEL_1[:-1]},
         f"field 'label' has {len(MS_LABEL_1) - 1} characters but 'input' with each 'ки' replaced by '+'/'-' has {len(MS_LABEL_1)}"),
        ({"input": MS_INPUT_1, "label": MS_LABEL_1[:-1] + "?"},
         f"field 'label' has '?' at character {len(MS_LABEL_1) - 1} where step 2's '+' or '-' belongs"),
        ({"input": "Q? a ки", "label": "Q? a +"},
         "field 'input' has no 'Step 1:' separating the question from the first step (pass prompt_split)"),
    ],
)
def test_math_shepherd_errors(tmp_path, obj, message):
    path = write_text(tmp_path, "shepherd.jsonl", json.dumps(obj, ensure_ascii=False) + "\n")
    with raises_at(path, 1, message):
        read_math_shepherd_jsonl(path)


def test_math_shepherd_write_errors(tmp_path):
    with pytest.raises(FormatError, match=re.escape("record 0: field 'labels' entry 0 is 0.5; Math-Shepherd has hard labels only")):
        write_math_shepherd_jsonl([StepwiseRecord("Q?", ["Step 1: a"], [0.5])], tmp_path / "x.jsonl")
    with pytest.raises(FormatError, match=re.escape("field 'completions[0]' contains the step tag 'ки'")):
        to_math_shepherd(StepwiseRecord("Q?", ["Step 1: a ки"], [1]))
    assert not (tmp_path / "x.jsonl").exists()


# ---------------------------------------------------------------- PRM800K

def prm800k_step(*rated, chosen=0, human=None):
    """One PRM800K step: ``rated`` is (text, rating) per candidate completion."""
    completions = [{"text": t, "rating": r, "flagged": None} for t, r in rated]
    return {"completions": completions, "human_completion": human, "chosen_completion": chosen}


PRM800K_FOUND_ERROR = {  # phase-2 style: one completion per step, labelling stops at the first -1
    "labeler": "hand",
    "generation": 1,
    "is_quality_control_question": False,
    "is_initial_screening_question": False,
    "question": {
        "problem": "What is $2^3 + 1$?",
        "ground_truth_answer": "9",
        "pre_generated_steps": ["$2^3 = 8$.", "So the sum is $8 + 1$.", "That is $10$."],
    },
    "label": {
        "steps": [
            prm800k_step(("$2^3 = 8$.", 1)),
            prm800k_step(("So the sum is $8 + 1$.", 0)),
            prm800k_step(("That is $10$.", -1), chosen=None),
        ],
        "total_time": 1000,
        "finish_reason": "found_error",
    },
}
PRM800K_HUMAN = {  # phase-1 style: alternatives per step, and a human-written step after all were rejected
    "question": {"problem": "Solve $x + 2 = 5$."},
    "label": {
        "steps": [
            prm800k_step(("$x = 7$.", -1), ("Subtract 2 from both sides.", 1), chosen=1),
            prm800k_step(("$x = 2$.", -1), chosen=None, human={"text": "$x = 3$.", "rating": None, "source": "human"}),
        ],
        "finish_reason": "solution",
    },
}
PRM800K_GIVE_UP = {  # the last step was never rated: the record stops before it
    "question": {"problem": "Hard problem."},
    "label": {
        "steps": [prm800k_step(("Start.", 1)), prm800k_step(("Hmm.", None), chosen=None)],
        "finish_reason": "give_up",
    },
}
PRM800K_EXPECTED = [
    StepwiseRecord("What is $2^3 + 1$?", ["$2^3 = 8$.", "So the sum is $8 + 1$.", "That is $10$."], [1.0, 1.0, 0.0],
                   {"finish_reason": "found_error", "ratings": [1, 0, -1], "ground_truth_answer": "9"}),
    StepwiseRecord("Solve $x + 2 = 5$.", ["Subtract 2 from both sides.", "$x = 3$."], [1.0, 1.0],
                   {"finish_reason": "solution", "ratings": [1, 1]}),
    StepwiseRecord("Hard problem.", ["Start."], [1.0], {"finish_reason": "give_up", "ratings": [1]}),
]


def test_prm800k_hand_example(tmp_path):
    text = "".join(json.dumps(x) + "\n" for x in (PRM800K_FOUND_ERROR, PRM800K_HUMAN, PRM800K_GIVE_UP))
    path = write_text(tmp_path, "phase2.jsonl", text)
    assert read_prm800k_jsonl(path) == PRM800K_EXPECTED


def test_prm800k_round_trip(tmp_path):
    path = tmp_path / "prm800k.jsonl"
    write_prm800k_jsonl(PRM800K_EXPECTED, path)
    assert read_prm800k_jsonl(path) == PRM800K_EXPECTED  # the neutral (0) rating survives through meta
    # a fresh record: ratings derived from labels (1 -> +1, 0 -> -1); steps after the first error dropped
    write_prm800k_jsonl([StepwiseRecord("Q", ["a", "b", "c"], [1, 0, 1])], path)
    (back,) = read_prm800k_jsonl(path)
    assert (back.completions, back.labels) == (["a", "b"], [1.0, 0.0])
    assert back.meta == {"finish_reason": "found_error", "ratings": [1, -1]}
    step = json.loads(path.read_text())["label"]["steps"][1]
    assert step["chosen_completion"] is None and step["completions"][0]["rating"] == -1


def _with(obj, edit):
    obj = json.loads(json.dumps(obj))
    edit(obj)
    return obj


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o["question"].pop("problem"), "field 'question.problem' is missing"),
        (lambda o: o.pop("label"), "field 'label' is missing"),
        (lambda o: o["label"].update(steps="x"), "field 'label.steps' must be a list, got str"),
        (lambda o: o["label"]["steps"][1]["completions"][0].update(rating=2),
         "field 'label.steps[1].completions[0].rating' is 2; expected -1, 0, 1 or null"),
        (lambda o: o["label"]["steps"][0].update(chosen_completion=3),
         "field 'label.steps[0].chosen_completion' is 3; expected an index in [0, 0] or null"),
        (lambda o: o["label"]["steps"][2]["completions"][0].pop("text"), "field 'label.steps[2].completions[0].text' is missing"),
    ],
)
def test_prm800k_errors(tmp_path, edit, message):
    text = json.dumps(PRM800K_HUMAN) + "\n" + json.dumps(_with(PRM800K_FOUND_ERROR, edit)) + "\n"
    path = write_text(tmp_path, "phase2.jsonl", text)
    with raises_at(path, 2, message):
        read_prm800k_jsonl(path)


# ---------------------------------------------------------------- ProcessBench

PROCESSBENCH_JSONL = """\
{"id": "hand-0", "generator": "hand", "problem": "What is 3*(2+1)?", "steps": ["2+1 = 3", "3*3 = 6", "The answer is 6."], "final_answer_correct": false, "label": 1}
{"id": "hand-1", "generator": "hand", "problem": "What is 5-1?", "steps": ["5-1 = 4", "The answer is 4."], "final_answer_correct": true, "label": -1}
"""
PROCESSBENCH_RECORDS = [
    ProcessBenchRecord("hand-0", "What is 3*(2+1)?", ["2+1 = 3", "3*3 = 6", "The answer is 6."], 1, "hand", False),
    ProcessBenchRecord("hand-1", "What is 5-1?", ["5-1 = 4", "The answer is 4."], -1, "hand", True),
]


def test_processbench_hand_example_and_round_trip(tmp_path):
    path = write_text(tmp_path, "gsm8k.jsonl", PROCESSBENCH_JSONL)
    assert read_processbench_jsonl(path) == PROCESSBENCH_RECORDS
    out = tmp_path / "out.jsonl"
    records = PROCESSBENCH_RECORDS + [ProcessBenchRecord(7, "P", ["s"], 0, meta={"source": "x"})]
    write_processbench_jsonl(records, out)
    assert read_processbench_jsonl(out) == records
    assert "generator" not in json.loads(out.read_text().splitlines()[2])  # None fields left out


def test_processbench_stepwise_conversion():
    rec = processbench_to_stepwise(PROCESSBENCH_RECORDS[0])
    # first error at index 1: label 1 before it, 0 at it and after
    assert rec.labels == [1.0, 0.0, 0.0]
    assert rec.meta == {"id": "hand-0", "generator": "hand", "final_answer_correct": False}
    assert processbench_to_stepwise(PROCESSBENCH_RECORDS[1]).labels == [1.0, 1.0]
    for r in PROCESSBENCH_RECORDS:
        assert stepwise_to_processbench(processbench_to_stepwise(r)) == r
    # back: the first label < 0.5 (soft labels thresholded), or -1
    soft = StepwiseRecord("p", ["a", "b", "c"], [0.9, 0.4, 0.8])
    assert stepwise_to_processbench(soft, id="s").label == 1
    assert stepwise_to_processbench(StepwiseRecord("p", ["a"], [0.5]), id=3).label == -1
    with pytest.raises(FormatError, match="meta.id"):
        stepwise_to_processbench(soft)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o.update(label=3), "field 'label' is 3 but there are 3 steps (expected -1 or an index in [0, 2])"),
        (lambda o: o.update(label=-2), "field 'label' is -2 but there are 3 steps (expected -1 or an index in [0, 2])"),
        (lambda o: o.update(label=True), "field 'label' must be an integer (first wrong step, or -1), got bool"),
        (lambda o: o.update(label="1"), "field 'label' must be an integer (first wrong step, or -1), got str"),
        (lambda o: o.pop("id"), "field 'id' is missing"),
        (lambda o: o.update(steps="2+1 = 3"), "field 'steps' must be a list of strings, got str"),
        (lambda o: o.update(final_answer_correct="no"), "field 'final_answer_correct' must be a bool or null, got str"),
    ],
)
def test_processbench_errors(tmp_path, edit, message):
    first = json.loads(PROCESSBENCH_JSONL.splitlines()[0])
    path = write_text(tmp_path, "gsm8k.jsonl", PROCESSBENCH_JSONL + json.dumps(_with(first, edit)) + "\n")
    with raises_at(path, 3, message):
        read_processbench_jsonl(path)


def test_processbench_write_checks(tmp_path):
    with pytest.raises(FormatError, match=re.escape("record 0: field 'label' is 5 but there are 1 steps")):
        write_processbench_jsonl([ProcessBenchRecord("x", "P", ["s"], 5)], tmp_path / "pb.jsonl")
    assert not (tmp_path / "pb.jsonl").exists()


# ---------------------------------------------------------------- training data from a file (01's label_file)

HARD = [RECORDS[0], RECORDS[1]]


@pytest.mark.parametrize("fmt, write", [("prmlab", write_stepwise_jsonl), ("math-shepherd", write_math_shepherd_jsonl),
                                        ("prm800k", write_prm800k_jsonl)])
def test_step_labels_are_read_in_the_format_detected_or_named(tmp_path, fmt, write):
    from prmlab.prm.formats import detect_format, read_step_labels

    records = [StepwiseRecord(r.prompt, [f"Step {i + 1}: {s}" for i, s in enumerate(r.completions)], r.labels)
               for r in HARD]  # Math-Shepherd needs its "Step 1:" marker to split the question off
    path = tmp_path / "labels.jsonl"
    write(records, path)
    assert detect_format(path) == fmt
    got = read_step_labels(path)
    want_steps = [r.completions[: (r.labels.index(0.0) + 1 if fmt == "prm800k" and 0.0 in r.labels else None)]
                  for r in records]  # PRM800K stops at the first error
    assert [(r.prompt, r.completions) for r in got] == [(r.prompt, s) for r, s in zip(records, want_steps)]
    assert [r.labels for r in got] == [r.labels[: len(s)] for r, s in zip(records, want_steps)]
    assert [r.labels for r in read_step_labels(path, fmt)] == [r.labels for r in got]


def test_step_label_files_that_are_broken_say_where(tmp_path):
    from prmlab.prm.formats import detect_format, read_step_labels

    good = json.dumps({"prompt": "Q", "completions": ["a", "b"], "labels": [True, False]})
    path = write_text(tmp_path, "broken.jsonl", good + "\n\n" + json.dumps({"prompt": "Q", "completions": ["a"],
                                                                               "labels": [1.5]}) + "\n")
    with raises_at(path, 3, "field 'labels' entry 0 is 1.5, outside [0, 1]"):
        read_step_labels(path)
    path = write_text(tmp_path, "half.jsonl", good + "\n" + '{"prompt": "Q", "completions": ["a"\n')
    with pytest.raises(FormatError, match=re.escape(f"{path} line 2: invalid JSON")):
        read_step_labels(path, "prmlab")
    path = write_text(tmp_path, "other.jsonl", json.dumps({"text": "Q", "score": 1}) + "\n")
    with raises_at(path, 1, "cannot tell the format from its fields ['score', 'text'] (expected prm800k: question, "
                            "label; math-shepherd: input, label; prmlab: prompt, completions, labels); name the format"):
        detect_format(path)
    with pytest.raises(FormatError, match=f"^{re.escape(str(write_text(tmp_path, 'empty.jsonl', '')))}: has no records$"):
        read_step_labels(tmp_path / "empty.jsonl")
    with raises_at(path, 1, "field 'input' is missing"):  # a named format reads the fields it needs
        read_step_labels(path, "math-shepherd")
    with pytest.raises(ValueError, match="unknown step-label format 'trl'; valid choices: prm800k, math-shepherd, prmlab"):
        read_step_labels(path, "trl")
    unrated = {"question": {"problem": "Q"}, "label": {"steps": [{"completions": [{"text": "a", "rating": None}],
                                                                  "chosen_completion": None}], "finish_reason": "give_up"}}
    path = write_text(tmp_path, "unrated.jsonl", json.dumps(unrated) + "\n")
    with pytest.raises(FormatError, match="no record has a labelled step"):
        read_step_labels(path)
