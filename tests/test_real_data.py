"""Loaders, answer extraction, grading and calculator checks on the real data sets in shared/data."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prmlab.tasks import real
from prmlab.tasks.real import (
    GSM8K_MODELS,
    RealProblem,
    RealTask,
    check_annotations,
    eval_arithmetic,
    extract_boxed,
    extract_gsm8k_answer,
    first_wrong_annotation_step,
    grade_gsm8k,
    grade_math,
    load_gsm8k,
    load_gsm8k_model_solutions,
    load_math500,
    shared_data_dir,
    split_steps,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_or_skip() -> Path:
    try:
        return shared_data_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def gsm8k():
    _data_or_skip()
    return load_gsm8k()


@pytest.fixture(scope="module")
def gsm8k_solutions():
    _data_or_skip()
    return load_gsm8k_model_solutions()


@pytest.fixture(scope="module")
def math500():
    _data_or_skip()
    return load_math500()


# --- locating the data ---------------------------------------------------------------------------


def test_default_data_dir_is_beside_the_project_root(monkeypatch):
    monkeypatch.delenv(real.DATA_ENV_VAR, raising=False)
    if not DEFAULT_DATA.is_dir():
        pytest.skip(f"no data at {DEFAULT_DATA}")
    assert shared_data_dir().resolve() == DEFAULT_DATA.resolve()  # ../shared may be a symbolic link


def test_missing_data_names_path_and_env_var(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(real.DATA_ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError) as err:
        load_gsm8k()
    assert str(missing) in str(err.value) and real.DATA_ENV_VAR in str(err.value)
    with pytest.raises(FileNotFoundError, match=real.DATA_ENV_VAR):
        RealTask("math500").problems(3)


# --- loaders ---------------------------------------------------------------------------------------


def test_gsm8k_loader(gsm8k):
    assert len(gsm8k) == 1319
    p = gsm8k[0]
    assert p.id == "gsm8k/test/0" and p.source == "gsm8k" and p.answer == "18"
    assert "<<16-3-4=9>>" in p.solution and "<<" not in p.meta["solution_stripped"]
    assert "####" not in p.solution and len(p.steps) == 2
    assert p.prompt.startswith("Question: Janet") and "The answer is: X" in p.prompt
    # Answers written with thousands commas are normalized, the raw text kept.
    with_commas = [q for q in gsm8k if "," in q.meta["answer_raw"]]
    assert with_commas and all("," not in q.answer for q in with_commas)
    assert [q.id for q in load_gsm8k(limit=3)] == [q.id for q in gsm8k[:3]]
    with pytest.raises(ValueError, match="valid"):
        load_gsm8k("train")
    hash(p)  # frozen and hashable despite the meta dict


def test_model_solutions_loader(gsm8k, gsm8k_solutions):
    assert len(gsm8k_solutions) == 1319
    assert all(tuple(s.model for s in sp.solutions) == GSM8K_MODELS for sp in gsm8k_solutions)
    # Same questions, same order, same reference answers as the test split.
    assert [sp.problem.answer for sp in gsm8k_solutions] == [p.answer for p in gsm8k]
    assert [sp.problem.id for sp in gsm8k_solutions] == [p.id for p in gsm8k]


def test_math500_loader(math500):
    assert len(math500) == 500
    p = math500[0]
    assert p.id == p.meta["unique_id"] and p.source == "math500" and 1 <= p.meta["level"] <= 5
    assert "\\boxed{X}" in p.prompt


# --- GSM8K extraction and grading on the real files ----------------------------------------------


def test_gsm8k_reference_answers_round_trip(gsm8k):
    for p in gsm8k:
        full = p.solution + "\n#### " + p.meta["answer_raw"]
        assert extract_gsm8k_answer(full) == p.answer, p.id
        assert grade_gsm8k(full, p.answer) and grade_gsm8k(full, p.meta["answer_raw"]), p.id


def test_gsm8k_grading_agrees_with_file_labels(gsm8k_solutions):
    pairs = [(grade_gsm8k(s.solution, sp.problem.answer), s.is_correct) for sp in gsm8k_solutions for s in sp.solutions]
    assert len(pairs) == 5276
    agreement = sum(g == label for g, label in pairs) / len(pairs)
    assert agreement >= 0.98, f"agreement with is_correct: {agreement:.4f} on {len(pairs)} solutions"


def test_extract_gsm8k_answer_cases():
    assert extract_gsm8k_answer("so 2+2=4\n#### 1,000") == "1000"
    assert extract_gsm8k_answer("A: $1,000.") == "1000"
    assert extract_gsm8k_answer("The answer is: 18.0") == "18"
    assert extract_gsm8k_answer("The answer is 18.") == "18"
    assert extract_gsm8k_answer("The answer is: $\\boxed{18}$.") == "18"
    assert extract_gsm8k_answer("A: -5 dollars") == "-5"
    assert extract_gsm8k_answer("answer is 0.50") == "0.5"
    assert extract_gsm8k_answer("He had 16-3=13, then 20") == "20"  # last number, no spurious minus
    assert extract_gsm8k_answer("first <<2+2=4>>4 then <<7962") == "7962"  # truncated annotation
    for garbage in ["", "no numbers here", None, 42, "A: 3/0", "\x00{{}}"]:
        assert extract_gsm8k_answer(garbage) is None


def test_grade_gsm8k_cases():
    assert grade_gsm8k("#### 1,000", "1000")
    assert grade_gsm8k("The answer is: 18.0", "18")
    assert grade_gsm8k("A: $18", "Blah\n#### 18")
    assert not grade_gsm8k("A: 17", "18")
    assert not grade_gsm8k("", "18") and not grade_gsm8k("garbage", "18") and not grade_gsm8k(None, "18")
    assert not grade_gsm8k("A: 18", None) and not grade_gsm8k("A: 5", "1e999999999")


# --- boxed answers and MATH grading ----------------------------------------------------------------


def test_extract_boxed():
    assert extract_boxed("so $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert extract_boxed("\\boxed{1} and then \\fbox{2}") == "2"
    assert extract_boxed("\\boxed{a{b{c}}d}") == "a{b{c}}d"
    assert extract_boxed("\\boxed{\\boxed{3}}") == "\\boxed{3}"  # the top-level box
    assert extract_boxed("$\\boxed 5$") == "5"
    for garbage in ["\\boxed{unclosed", "\\boxed{1} then \\boxed{2", "no box", "\\boxed", "", None]:
        assert extract_boxed(garbage) is None


@pytest.mark.parametrize("name", ["gsm8k", "math500"])
@pytest.mark.parametrize("step_format", ["line", "paragraph"])
def test_reference_solutions_are_written_as_the_prompt_asks(name, step_format):
    _data_or_skip()
    task = RealTask(name, n_eval=20, seed=0, step_format=step_format)
    for p in task.eval:
        text = task.reference_solution(p)
        # GSM8K's steps without the calculator annotations, then the answer line the prompt asks for
        steps = p.steps if name == "math500" else split_steps(p.meta["solution_stripped"])
        answer = f"\\boxed{{{p.answer}}}" if name == "math500" else p.answer
        assert task.split_steps(text) == steps + [f"The answer is: {answer}"] == split_steps(text)
        assert ("\n\n" in text) == (step_format == "paragraph") and ("<<" not in text or name == "math500")
        assert task.grade(p, text), p.id


def test_math500_reference_solutions_grade_correct(math500):
    sample = random.Random(0).sample(math500, 100)
    ok = sum(grade_math(p.solution, p.answer) for p in sample)
    assert ok >= 97, f"grade_math(solution, answer) true on {ok}/100 MATH-500 rows"
    assert all(extract_boxed(p.solution) is not None for p in sample)


@pytest.mark.parametrize(
    "prediction, reference",
    [
        ("The answer is: $\\boxed{0.5}$", "\\frac{1}{2}"),
        ("\\boxed{\\dfrac{1}{2}}", "\\frac12"),
        ("so \\boxed{(3,\\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}"),
        ("\\boxed{x^2+2x+1}", "(x+1)^2"),
        ("\\boxed{1000}", "1,000"),
        ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ],
)
def test_grade_math_equivalences(prediction, reference):
    assert grade_math(prediction, reference)


@pytest.mark.parametrize("prediction", ["\\boxed{2}", "", "garbage }{{ \\frac{", None, "\\boxed{}"])
def test_grade_math_rejects_wrong_and_garbage(prediction):
    assert grade_math(prediction, "3") is False


def test_grade_math_works_off_the_main_thread():
    cases = [("\\boxed{0.5}", "\\frac{1}{2}", True), ("\\boxed{2}", "3", False)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: grade_math(c[0], c[1]), cases))
    assert results == [c[2] for c in cases]


# --- calculator annotations ------------------------------------------------------------------------


def test_check_annotations_hand_made():
    got = dict(check_annotations(
        "a <<48/2=24>>24 <<10/3=3.33>> <<2/3=0.67>> <<1,000*2=2,000>> <<50%*10=5>> <<3+3=6=6>> <<-2*(1.5+1)=-5>>"
    ))
    assert all(got.values()), got
    bad = dict(check_annotations(
        "<<5*3=16>> <<2/3=0.66>> <<7/2=3>> <<1/0=1>> <<x+1=2>> <<2**10=1024>> <<__import__('os').getcwd()=1>> <<83.3>>"
    ))
    assert len(bad) == 8 and not any(bad.values()), bad
    assert check_annotations("no annotations") == [] and check_annotations(None) == []


def test_eval_arithmetic_is_safe():
    assert eval_arithmetic("(1+2)*3/4") == 9 / 4
    for expr in ["__import__('os')", "2**100000", "a+1", "(lambda: 1)()", "1" * 600, "1/0", ""]:
        assert eval_arithmetic(expr) is None


def test_first_wrong_annotation_step():
    text = "a <<1+1=2>>2\n\nb <<2*2=5>>5\nc <<1+1=3>>3\nA: 3"
    assert split_steps(text) == ["a <<1+1=2>>2", "b <<2*2=5>>5", "c <<1+1=3>>3", "A: 3"]
    assert first_wrong_annotation_step(text) == 1
    assert first_wrong_annotation_step("all <<2+2=4>>4 fine\nA: 4") == -1
    assert first_wrong_annotation_step("") == -1


def test_annotations_on_real_solutions(gsm8k, gsm8k_solutions):
    ref = [ok for p in gsm8k for _, ok in check_annotations(p.solution)]
    assert len(ref) > 4000
    assert sum(ref) / len(ref) >= 0.99, f"reference annotations checking: {sum(ref)}/{len(ref)}"
    checks = [(s, check_annotations(s.solution)) for sp in gsm8k_solutions for s in sp.solutions]
    flagged = [s for s, c in checks if not all(ok for _, ok in c)]
    wrong = sum(not ok for _, c in checks for _, ok in c)
    assert wrong > 0 and flagged
    # A wrong calculator step almost always ends in a wrong answer.
    assert sum(s.is_correct for s in flagged) / len(flagged) < 0.2
    assert all(first_wrong_annotation_step(s.solution) >= 0 for s in flagged[:20])


# --- the task wrapper ------------------------------------------------------------------------------


def test_real_task(gsm8k):
    task = RealTask("gsm8k")
    first = task.problems(10, seed=1)
    assert first == task.problems(10, seed=1)  # fixed for a seed
    assert task.problems(20, seed=1)[:10] == first  # a larger n extends a smaller one
    assert first != task.problems(10, seed=2)
    assert all(isinstance(p, RealProblem) for p in first)
    p = first[0]
    assert task.prompt(p) == p.prompt
    assert task.grade(p, p.solution + f"\nThe answer is: {p.answer}")
    assert not task.grade(p, "The answer is: banana")
    assert task.split_steps("x\n\n y \n") == ["x", "y"]
    with pytest.raises(ValueError, match="0..1319"):
        task.problems(5000)
    with pytest.raises(ValueError, match="valid"):
        RealTask("gsm9k")


def test_real_task_math500(math500):
    task = RealTask("math500")
    p = task.problems(1, seed=0)[0]
    assert task.grade(p, p.solution)
    assert not task.grade(p, "I have no idea.")
