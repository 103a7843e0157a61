"""The benchmarks' own machinery: the PRM bench/smc.py times (01's logged 'prm', else 01's default build) and
the turn-taking that interleaves bench/rl_step.py's two trainings step by step."""

import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from prmlab import artifacts, studies, tracking
from prmlab.prm.model import PRMConfig, ProcessRewardModel
from prmlab.tasks.arith import ArithTask

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_smc_benchmark_times_the_prm_of_01s_latest_tiny_run(mlflow_store, tiny_policy, char_tokenizer):
    smc = bench_module("smc")
    logged = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(readout="likelihood",
                                                                                   freeze_backbone=True))
    run = tracking.Run(tracking.create_run("01_prm_training", "tiny", 0))
    artifacts.log_model(run, "prm", logged, kind="prm")
    run.finish()
    prm, info = smc.bench_prm(tiny_policy, char_tokenizer, ArithTask(n_train=4, n_eval=1), prm_steps=0)
    assert info["run_id"] == run.id and info["source"].startswith(f"01_prm_training run {run.id[:8]}")
    assert prm.config.readout == "likelihood" and info["readout"] == "likelihood" and info["trained"]


@pytest.mark.parametrize("prm_steps", [0, 2])
def test_without_a_run_of_01_the_smc_benchmark_builds_01s_default_prm(mlflow_store, tiny_policy, char_tokenizer,
                                                                       prm_steps):
    smc = bench_module("smc")
    task = ArithTask(n_train=8, n_eval=1, seed=0)
    prm, info = smc.bench_prm(tiny_policy, char_tokenizer, task, clean_steps=1, label_problems=2, prm_steps=prm_steps)
    d = studies.PRM_TRAINING.defaults
    assert (prm.config.readout, prm.config.freeze_backbone, prm.config.lora) == (
        d["prm_readout"], d["prm_freeze_backbone"], d["lora"])
    assert info["backbone"] == d["prm_backbone"] and info["labels"] == d["label_source"]
    assert info["trained"] == (prm_steps > 0)
    assert ("UNTRAINED" in info["source"]) == (prm_steps == 0) and "no tiny run of notebook 01" in info["source"]
    if d["prm_backbone"] == "clean":  # a fresh LM, not the policy's weights
        assert prm.backbone is not tiny_policy
    prm.score(["Q: 1+2\n"], [["1+2=3", "A: 3"]])


def test_the_two_sides_of_the_rl_benchmark_take_turns_step_by_step():
    rl_step = bench_module("rl_step")
    turns = rl_step.Turns(first="a", sides=("a", "b"))
    log = []

    def side(me: str, steps: int):
        turns.wait(me)
        try:
            for i in range(steps):
                log.append(f"{me}{i}")
                turns.handover(me)
        finally:
            turns.finish(me)

    other = threading.Thread(target=side, args=("b", 4))
    other.start()
    side("a", 2)  # a finishes first: b runs its remaining steps without waiting
    other.join(timeout=10)
    assert not other.is_alive()
    assert log == ["a0", "b0", "a1", "b1", "b2", "b3"]


def test_a_side_alone_never_waits():
    rl_step = bench_module("rl_step")
    turns = rl_step.Turns(first="a", sides=("a", "b"))
    turns.finish("b")  # b never runs (e.g. TRL is not installed)
    done = threading.Event()

    def alone():
        turns.wait("a")
        for _ in range(3):
            turns.handover("a")
        done.set()

    threading.Thread(target=alone, daemon=True).start()
    assert done.wait(timeout=10)
