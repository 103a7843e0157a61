"""ProcessBench scored as its authors score it: against ProcessBench's own evaluation code (transcribed below),
against brute force over thresholds on a hand-made file, and through ``prmlab processbench``."""

import json

import numpy as np
import pytest

from prmlab import tracking
from prmlab.cli import main
from prmlab.prm import processbench as pb
from prmlab.prm.formats import ProcessBenchRecord, write_processbench_jsonl

# A hand-made file: (id, label, the step rewards a scorer gives); the problem text keys the rewards.
HAND = [("gsm8k-0", -1, [0.9, 0.8, 0.7]), ("gsm8k-1", 1, [0.9, 0.2, 0.6]), ("gsm8k-2", 0, [0.3, 0.9]),
        ("gsm8k-3", -1, [0.6, 0.4]), ("gsm8k-4", 2, [0.8, 0.7, 0.1]), ("gsm8k-5", 1, [0.5, 0.5]),
        ("math-0", -1, [0.95, 0.55]), ("math-1", 0, [0.45, 0.9, 0.9]), ("math-2", 1, [0.7, 0.65]),
        ("math-3", -1, [0.5]), ("math-4", 2, [0.9, 0.3, 0.2])]


class Fixed:
    """A scorer that gives the hand-made rewards."""

    def score(self, prompts, steps):
        rewards = {f"problem {rid}": r for rid, _, r in HAND}
        return [np.array(rewards[p]) for p in prompts]


@pytest.fixture()
def hand_file(tmp_path):
    path = tmp_path / "processbench.jsonl"
    write_processbench_jsonl([ProcessBenchRecord(rid, f"problem {rid}", [f"step {i}" for i in range(len(r))], label,
                                                 generator="hand") for rid, label, r in HAND], path)
    return path


def reference_code(data, is_right):
    """ProcessBench's code/run_eval_prm_rlhflow.py for one subset, with the PRM's '+' replaced by
    ``is_right(reward)``: the first step not judged right is the prediction, then its metric (percentages)."""
    def single_process(d):
        for sdx, reward in enumerate(d["rewards"]):
            if not is_right(reward):
                return sdx
        return -1

    res_data = [dict(d, prediction=single_process(d)) for d in data]
    for d in res_data:
        d["match"] = d["prediction"] == d["label"]
    data1 = [e for e in res_data if e["label"] != -1]
    data2 = [e for e in res_data if e["label"] == -1]
    acc1 = np.mean([e["match"] for e in data1]) * 100
    acc2 = np.mean([e["match"] for e in data2]) * 100
    f1 = 2 * acc1 * acc2 / (acc1 + acc2)
    return acc1, acc2, f1


def subset_data(name):
    return [{"label": label, "rewards": r} for rid, label, r in HAND if rid.startswith(name + "-")]


def ours(hand_file, rule):
    subsets = pb.read_subsets(hand_file)
    return pb.evaluate(subsets, pb.score_subsets(Fixed(), subsets), rule)


def test_argmax_matches_processbench_code_and_a_tie_is_an_error(hand_file):
    res = ours(hand_file, "argmax")
    assert list(res["subsets"]) == ["gsm8k", "math"] and res["chosen_on"] is None
    for name, got in res["subsets"].items():
        want = reference_code(subset_data(name), lambda p: p > 0.5)  # the "+" class wins only above one half
        np.testing.assert_allclose([100 * got["error_acc"], 100 * got["correct_acc"], 100 * got["f1"]], want)
    assert res["predictions"]["gsm8k"][5] == 0 and res["predictions"]["math"][3] == 0  # rewards of exactly 0.5
    assert res["avg_f1"] == pytest.approx(np.mean([v["f1"] for v in res["subsets"].values()]))


def brute_force_f1(data, t):
    """F1 of one subset at threshold t, by the definition: flag the first step with reward < t."""
    preds = [next((i for i, x in enumerate(d["rewards"]) if x < t), -1) for d in data]
    err = [p == d["label"] for p, d in zip(preds, data) if d["label"] != -1]
    cor = [p == -1 for p, d in zip(preds, data) if d["label"] == -1]
    a, b = np.mean(err), np.mean(cor)
    return 0.0 if a + b == 0 else 2 * a * b / (a + b), (a, b)


def test_f1_rule_chooses_the_gsm8k_threshold_by_brute_force_and_applies_it_everywhere(hand_file):
    res = ours(hand_file, "f1")
    gsm8k, math = subset_data("gsm8k"), subset_data("math")
    grid = np.linspace(0.0, 1.0, 2001)  # every 0.0005: between any two distinct rewards of the file
    best = max(brute_force_f1(gsm8k, t)[0] for t in grid)
    assert res["chosen_on"] == "gsm8k" and res["subsets"]["gsm8k"]["f1"] == pytest.approx(best)
    t = res["threshold"]
    for name, data in (("gsm8k", gsm8k), ("math", math)):
        f1, (a, b) = brute_force_f1(data, t)
        got = res["subsets"][name]
        assert (got["error_acc"], got["correct_acc"], got["f1"]) == pytest.approx((a, b, f1))
        np.testing.assert_allclose(reference_code(data, lambda p: not p < t), [100 * a, 100 * b, 100 * f1])
    assert best > brute_force_f1(gsm8k, 0.5)[0]  # the hand-made file makes tuning matter
    fixed = ours(hand_file, 0.5)
    assert fixed["rule"] == "fixed" and fixed["subsets"]["math"]["f1"] == pytest.approx(brute_force_f1(math, 0.5)[0])
    with pytest.raises(ValueError, match="unknown subset to choose the threshold on 'omnimath'; valid choices: gsm8k, math"):
        pb.evaluate(pb.read_subsets(hand_file), pb.score_subsets(Fixed(), pb.read_subsets(hand_file)), "f1", "omnimath")


def test_rules_and_subsets_are_read_as_written(tmp_path):
    assert pb.parse_rule(" argmax ") == "argmax" and pb.parse_rule("0.25") == 0.25
    with pytest.raises(ValueError, match="unknown ProcessBench threshold rule .*'best'; valid choices: auto, argmax, f1"):
        pb.parse_rule("best")
    with pytest.raises(ValueError, match="must lie in"):
        pb.parse_rule("1.5")
    record = ProcessBenchRecord("omnimath-12", "p", ["s"], -1)
    assert pb.subset_of(record, "x") == "omnimath" and pb.subset_of(ProcessBenchRecord(7, "p", ["s"], -1), "x") == "x"
    assert pb.describe({"rule": "f1", "threshold": 0.4321, "chosen_on": "gsm8k"}).startswith("threshold 0.4321, chosen")


def test_the_processbench_command_logs_one_run(mlflow_store, hand_file, tmp_path, capsys):
    from stand_ins import save_stand_in

    prm = save_stand_in("token-classification", tmp_path / "prm")
    assert main(["processbench", f"token-classification:{prm}", "--data", str(hand_file)]) == 0
    out = capsys.readouterr().out
    assert "argmax of the two-class PRM" in out and "gsm8k error acc: " in out and "average f1: " in out
    run = tracking.latest_run("processbench")
    m = run.data.metrics
    assert run.info.status == "FINISHED" and run.data.params["threshold"] == "auto"
    assert {"processbench/prm/gsm8k/f1", "processbench/prm/math/error_acc", "processbench/prm/avg_f1"} <= set(m)
    assert m["processbench/prm/gsm8k/n_error"] == 4 and run.data.tags["prmlab.scorer.prm"] == f"token-classification:{prm}"
    assert main(["processbench", f"token-classification:{prm}", "--data", str(hand_file), "--threshold", "f1"]) == 0
    assert "chosen by F1 on the gsm8k subset" in capsys.readouterr().out
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"id": "gsm8k-0", "problem": "p", "steps": ["a"], "label": 3}) + "\n")
    n_runs = len(tracking.client().search_runs([run.info.experiment_id]))
    for args, says in [(["--data", str(broken)], "broken.jsonl line 1: field 'label' is 3 but there are 1 steps"),
                       (["--data", str(hand_file), "--threshold", "best"], "unknown ProcessBench threshold rule"),
                       (["--data", str(tmp_path / "none.jsonl")], "no such ProcessBench file")]:
        assert main(["processbench", f"token-classification:{prm}", *args]) == 2, args
        assert says in capsys.readouterr().err, args
    assert main(["processbench", "qwen:/x", "--data", str(hand_file)]) == 2
    assert "unknown PRM convention" in capsys.readouterr().err
    assert main(["processbench", "oracle", "--data", str(hand_file)]) == 2  # no oracle reads a ProcessBench file
    assert "unknown scorer entry 'oracle'" in capsys.readouterr().err
    assert len(tracking.client().search_runs([run.info.experiment_id])) == n_runs  # nothing logged for bad input
