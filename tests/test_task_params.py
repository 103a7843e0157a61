"""Tasks as later notebooks use them: rebuilt from the parameters notebook 00 logged, and answered from a
solution's text alone."""

import pytest

from prmlab.tasks import get_task, task_from_params


def test_the_task_is_rebuilt_from_logged_parameters_with_new_sizes():
    logged = {"dataset": "arith", "seed": "3", "min_ops": "2", "max_ops": "3", "max_operand": "9", "max_value": "40",
              "lr": "0.003"}  # as MLflow keeps them: strings, and parameters that do not concern the task
    task = task_from_params(logged, n_train=5, n_eval=7)
    same = get_task("arith", n_train=5, n_eval=7, seed=3, min_ops=2, max_ops=3, max_operand=9, max_value=40)
    assert (len(task.train), len(task.eval)) == (5, 7)
    assert [p.prompt for p in task.eval] == [p.prompt for p in same.eval]
    assert [p.prompt for p in task_from_params({**logged, "seed": 3, "max_ops": 3}, 5, 7).eval] == [p.prompt for p in same.eval]
    defaults = task_from_params({}, n_eval=4)  # a run that logged nothing about its task: the arith defaults, seed 0
    assert [p.prompt for p in defaults.eval] == [p.prompt for p in get_task("arith", n_eval=4).eval]


def test_an_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown task 'svamp'"):
        task_from_params({"dataset": "svamp"})


@pytest.mark.parametrize("name", ["arith", "gsm8k", "math500"])
def test_every_task_answers_from_the_text_alone(name):
    """``answer_of_text`` (what decoding votes on) needs no problem and says what ``answer`` says; on a
    reference solution it is the reference answer, and a text that states none has none."""
    task = get_task(name, n_train=5, n_eval=5)
    for p in task.eval:
        text = task.reference_solution(p)
        assert task.answer_of_text(text) == task.answer(p, text) == task.reference_answer(p)
    assert task.answer_of_text("I do not know.") is None
