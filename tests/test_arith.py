import random

import pytest

from prmlab.tasks.arith import (
    INJECTABLE_KINDS,
    ArithConfig,
    ArithTask,
    Problem,
    judge,
    make_splits,
    parse_prompt,
    solution_with_mistake,
)


def test_reference_solution_format_and_oracle():
    p = Problem(17, (("+", 5), ("*", 3), ("-", 8)))
    assert p.prompt == "Q: 17 +5 *3 -8\n"
    assert p.reference_solution() == "17+5=22\n22*3=66\n66-8=58\nA: 58"
    v = judge(p, p.reference_solution())
    assert v.first_error == -1 and v.answer_correct and v.complete
    assert v.kinds == ("ok",) * 4
    assert v.step_labels == [1, 1, 1, 1]
    assert parse_prompt(p.prompt) == p


@pytest.mark.parametrize(
    "solution, kinds, first",
    [
        ("17+5=23\n23*3=69\n69-8=61\nA: 61", ("arithmetic", "ok", "ok", "ok"), 0),  # wrong sum, then faithful
        ("17+5=22\n21*3=63\n63-8=55\nA: 55", ("ok", "carry", "ok", "ok"), 1),  # copied 21 instead of 22
        ("17+5=22\n22-8=14\nA: 14", ("ok", "skipped", "ok"), 1),  # skipped *3; the answer follows faithfully
        ("17+5=22\n22*3=66\n66+5=71\n71-8=63\nA: 63", ("ok", "ok", "extra", "ok", "ok"), 2),  # repeated +5
        ("17+5=22\n22*3=66\n66-8=58\nA: 59", ("ok", "ok", "ok", "carry"), 3),  # answer differs from last value
        ("17+5=22\nhello\n66-8=58\nA: 58", ("ok", "malformed", "skipped", "ok"), 1),  # *3 never applied
        ("17+5=22\n22*3=66\n66-8=58\nA: 58\n1+1=2", ("ok", "ok", "ok", "ok", "extra"), 4),
    ],
)
def test_oracle_hand_cases(solution, kinds, first):
    p = Problem(17, (("+", 5), ("*", 3), ("-", 8)))
    v = judge(p, solution)
    assert v.kinds == kinds
    assert v.first_error == first
    assert v.step_labels == [1 if i < first else 0 for i in range(len(kinds))]


def test_oracle_never_crashes_on_garbage():
    p = Problem(3, (("*", 2),))
    for text in ["", "\n\n", "A:", "A: x", "3*2=", "=6", "3**2=9", "💥", "A: 6\nA: 6", "-3*2=-6\nA: -6"]:
        v = judge(p, text)
        assert len(v.kinds) == len([s for s in text.split("\n") if s.strip()])
    empty = judge(p, "")
    assert not empty.complete and not empty.answer_correct and empty.first_error == -1
    assert judge(p, "3*2=6").complete is False  # all steps right but no answer: incomplete, not an error


def test_injected_mistakes_are_found_where_they_were_put():
    cfg = ArithConfig()
    train, _ = make_splits(cfg, 500, 10, seed=1)
    rng = random.Random(0)
    for i in range(4000):
        p = train[i % len(train)]
        kind = INJECTABLE_KINDS[i % len(INJECTABLE_KINDS)]
        text, pos = solution_with_mistake(p, rng, kind)
        v = judge(p, text)
        assert v.first_error == pos, (p.prompt, text, v.kinds)
        # 'skipped' falls back to arithmetic when no two consecutive operations differ
        assert v.kinds[pos] == kind or (kind == "skipped" and v.kinds[pos] == "arithmetic")


def test_mistakes_change_the_answer_almost_always():
    train, _ = make_splits(ArithConfig(), 300, 10, seed=2)
    rng = random.Random(1)
    wrong = sum(not judge(p, solution_with_mistake(p, rng, rng.choice(INJECTABLE_KINDS))[0]).answer_correct for p in train)
    assert wrong / len(train) > 0.9


def test_splits_are_fixed_disjoint_and_in_range():
    cfg = ArithConfig(min_ops=2, max_ops=4, max_value=50)
    a_train, a_eval = make_splits(cfg, 300, 50, seed=3)
    b_train, b_eval = make_splits(cfg, 600, 50, seed=3)
    assert [p.prompt for p in a_eval] == [p.prompt for p in b_eval]  # growing train keeps eval
    assert [p.prompt for p in a_train] == [p.prompt for p in b_train[:300]]
    assert not {p.prompt for p in a_eval} & {p.prompt for p in b_train}
    for p in a_train + a_eval:
        assert 2 <= len(p.ops) <= 4
        assert all(0 <= v <= 50 for v in p.values)
    assert make_splits(cfg, 10, 10, seed=4)[1] != a_eval


def test_bad_config_names_valid_choices():
    with pytest.raises(ValueError, match="subset of"):
        ArithConfig(ops="+/")
    with pytest.raises(ValueError, match="min_ops"):
        ArithConfig(min_ops=4, max_ops=2)
    with pytest.raises(ValueError, match="valid"):
        solution_with_mistake(Problem(1, (("+", 1),)), random.Random(0), "typo")


def test_task_interface():
    task = ArithTask(ArithConfig(), n_train=20, n_eval=5, seed=0)
    p = task.eval[0]
    assert task.grade(p, p.reference_solution())
    assert not task.grade(p, "A: -12345")
    assert task.split_steps("a\n\nb\n") == ["a", "b"]
