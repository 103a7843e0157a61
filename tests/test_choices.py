"""The one error for a value outside its valid choices, and that the library raises no other kind."""

import re
from pathlib import Path

import pytest

from prmlab.choices import check_choice, unknown_choice
from prmlab.decoding.smc import SMCConfig
from prmlab.metrics import aggregate_step_scores


def test_check_choice_returns_the_value_or_names_it_and_every_choice():
    assert check_choice("b", ("a", "b"), "letter") == "b"
    assert check_choice(2, iter([1, 2]), "number") == 2  # any iterable of choices
    with pytest.raises(ValueError) as e:
        check_choice("z", ["a", "b"], "letter")
    assert str(e.value) == "unknown letter 'z'; valid choices: a, b"
    assert str(unknown_choice(3, (1, 2), "count")) == "unknown count 3; valid choices: 1, 2"


def test_library_errors_use_the_one_wording():
    with pytest.raises(ValueError, match="^unknown weighting 'x'; valid choices: incremental, ratio, current$"):
        SMCConfig(weighting="x")
    with pytest.raises(ValueError, match="^unknown aggregation 'x'; valid choices: min, last, prod, mean$"):
        aggregate_step_scores([0.5], "x")


def test_no_hand_written_unknown_choice_errors_are_left():
    lib = Path(__file__).resolve().parents[1] / "lib" / "prmlab"
    pattern = re.compile(r"raise \w+Error\(f?[\"']unknown |choose one of|valid: \{")
    offenders = [f"{p.relative_to(lib)}:{i}" for p in lib.rglob("*.py") if p.name != "choices.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
