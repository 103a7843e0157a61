"""Misconceptions (systematic wrong rules) in the arithmetic task, the oracle's labels for them, and
the SFT data that follows them."""

import random

import pytest

from prmlab import sft
from prmlab.tasks import get_task, task_from_params
from prmlab.tasks.arith import (
    MISCONCEPTIONS,
    ArithConfig,
    Problem,
    judge,
    make_splits,
    misconceived_value,
    misconception_applies,
    parse_misconceptions,
    solution_with_misconceptions,
)


@pytest.mark.parametrize(
    "rule, a, op, x, wrong",
    [
        ("no-carry", 27, "+", 5, 22), ("no-carry", 8, "+", 5, 3), ("no-carry", 45, "+", 17, 52),
        ("no-carry", 21, "+", 5, None), ("no-carry", 27, "-", 5, None),  # no carry / not an addition
        ("no-borrow", 32, "-", 5, 37), ("no-borrow", 41, "-", 13, 38), ("no-borrow", 35, "-", 12, None),
        ("no-borrow", 3, "-", 5, None),  # a negative result is not a borrow
        ("times-carry", 17, "*", 3, 31), ("times-carry", 24, "*", 4, 86), ("times-carry", 12, "*", 3, None),
        ("times-carry", 7, "*", 3, None),  # a one-digit factor: the times table itself, no carry to drop
    ],
)
def test_each_rule_where_it_applies_and_what_it_writes(rule, a, op, x, wrong):
    assert misconceived_value((rule,), a, op, x) == wrong
    if wrong is not None:
        assert wrong != {"+": a + x, "-": a - x, "*": a * x}[op]  # a misconception is always wrong


def test_rules_never_write_the_true_value_brute_force():
    for name, rule in MISCONCEPTIONS.items():
        for a in range(0, 100):
            for op in "+-*":
                for x in range(1, 21):
                    if rule.applies(a, op, x):
                        true = a + x if op == "+" else a - x if op == "-" else a * x
                        assert rule.wrong(a, op, x) != true, (name, a, op, x)


def test_parse_names_and_reject_unknown():
    assert parse_misconceptions("no-carry, times-carry,no-carry") == ("no-carry", "times-carry")
    assert parse_misconceptions("") == ()
    with pytest.raises(ValueError, match="no-borrow"):  # the error names the choices
        parse_misconceptions("no-cary")
    with pytest.raises(ValueError):
        ArithConfig(misconceptions="bogus")


def test_misconceived_solution_is_labelled_exactly():
    p = Problem(17, (("+", 5), ("*", 3), ("-", 8)))  # 17+5 carries
    text, first = solution_with_misconceptions(p, ("no-carry",))
    assert text == "17+5=12\n12*3=36\n36-8=28\nA: 28" and first == 0
    v = judge(p, text, ("no-carry",))
    assert v.kinds == ("misconception", "ok", "ok", "ok") and v.first_error == 0 and not v.answer_correct
    # without the rule the same step is an arithmetic slip: rate 0 / no rules is today's oracle
    assert judge(p, text).kinds == ("arithmetic", "ok", "ok", "ok")
    # a wrong value that is not the rule's is a slip, not the misconception
    assert judge(p, "17+5=21\n21*3=63\n63-8=55\nA: 55", ("no-carry",)).kinds[0] == "arithmetic"
    assert v.steps[0].expected == "17+5=22" and v.steps[1].expected == "12*3=36"


def test_the_writer_follows_the_rule_on_its_own_chain():
    # 8+5 carries (-> 3), then 3+9 carries too on the writer's chain (the true 13+9 also does)
    p = Problem(8, (("+", 5), ("+", 9)))
    text, first = solution_with_misconceptions(p, ("no-carry",))
    assert text == "8+5=3\n3+9=2\nA: 2" and first == 0
    assert judge(p, text, ("no-carry",)).kinds == ("misconception", "misconception", "ok")
    q = Problem(11, (("+", 5), ("*", 2)))  # no rule applies: the reference solution
    assert solution_with_misconceptions(q, ("no-carry",)) == (q.reference_solution(), -1)
    assert not misconception_applies(q, ("no-carry",)) and misconception_applies(p, ("no-carry",))


def test_task_oracle_uses_its_rules_and_params_rebuild_them():
    task = get_task("arith", n_train=50, n_eval=20, misconceptions="no-carry")
    p = Problem(17, (("+", 5),))
    assert task.judge(p, "17+5=12\nA: 12").kinds[0] == "misconception"
    again = task_from_params({"dataset": "arith", "seed": "0", "misconceptions": "no-carry"}, n_train=50, n_eval=20)
    assert again.cfg.rules == ("no-carry",)
    assert task_from_params({"dataset": "arith", "seed": "0"}, n_train=50, n_eval=20).cfg.rules == ()


def test_sft_data_follows_the_rule_at_its_rate_and_rate_zero_is_todays():
    task = get_task("arith", n_train=400, n_eval=10, misconceptions="no-carry")
    applicable = [p for p in task.train if misconception_applies(p, task.cfg.rules)]
    rng = random.Random(0)
    draws = [sft.training_example(task, p, rng, 0.0, 0.7)[1] for p in applicable for _ in range(5)]
    share = sum(judge(p, d, task.cfg.rules).kinds.count("misconception") > 0
                for p, d in zip([p for p in applicable for _ in range(5)], draws)) / len(draws)
    assert abs(share - 0.7) < 0.05
    # rate 0 draws exactly today's examples (same random stream, no extra draws)
    plain = get_task("arith", n_train=400, n_eval=10)
    r1, r2 = random.Random(3), random.Random(3)
    for p in task.train[:200]:
        assert sft.training_example(task, p, r1, 0.2, 0.0) == sft.training_example(plain, p, r2, 0.2)


def test_sft_rejects_a_rate_without_rules():
    task = get_task("arith", n_train=20, n_eval=5)
    with pytest.raises(ValueError, match="misconceptions"):
        sft.train_sft(None, None, task, sft.SFTConfig(steps=1, misconception_rate=0.5), progress=False)


def test_rules_apply_to_part_of_the_problems():
    train, _ = make_splits(ArithConfig(), 2000, 10)
    share = sum(misconception_applies(p, ("no-carry",)) for p in train) / len(train)
    assert 0.3 < share < 0.7  # the testbed needs problems with and without a misconception
