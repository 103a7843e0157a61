"""Smoke runs of every notebook through `prmlab run --profile smoke`, in order, into one temporary MLflow
store (later notebooks load what earlier ones logged), from an unrelated working directory."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from prmlab import tracking
from prmlab.paths import project_root




def smoke(number: str, cwd: Path):
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, "--profile", "smoke"], capture_output=True,
                         text=True, cwd=cwd, env=os.environ.copy(), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    executed = Path(next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("notebook: ")))
    assert executed.parent == project_root() / "runs" / "notebooks" and executed.exists()
    assert not (cwd / "mlruns").exists() and not (cwd / "mlflow.db").exists()  # nothing lands in the cwd
    nb = nbformat.read(executed, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["profile"] == "smoke"
    return run


def artifacts(run, path=None) -> set[str]:
    return {a.path for a in tracking.client().list_artifacts(run.info.run_id, path)}


def test_00_policy_sft(module_store, tmp_path):
    run = smoke("00", tmp_path)
    p, m = run.data.params, run.data.metrics
    assert p["sft_steps"] == "25" and p["mistake_rate"] == "0.2"  # profile value, and an untouched default
    for key in ("eval/pass_at_1", "eval/pass_at_8", "perf/train_seconds", "train/loss", "model/parameters",
                "eval/first_error/none"):
        assert key in m, key
    assert len(tracking.client().get_metric_history(run.info.run_id, "eval/pass_at_k")) == 8  # one point per k
    assert {"notebook", "policy", "figures", "error_taxonomy.json"} <= artifacts(run)
    assert {"figures/pass_at_k.html", "figures/training_curve.html", "figures/errors_by_position.html"} <= artifacts(run, "figures")
    model, tok, found = tracking.load_model("00_policy_sft", "policy", profile="smoke", device="cpu")
    assert found.info.run_id == run.info.run_id


def test_01_prm_training(module_store, tmp_path):
    run = smoke("01", tmp_path)
    m = run.data.metrics
    assert run.data.tags["prmlab.policy_run"] == tracking.latest_run("00_policy_sft", "smoke").info.run_id
    # (AUROC and ProcessBench F1 can be undefined on a smoke run's handful of one-class samples)
    for key in ("label/agreement", "eval/PRM-oracle/step_accuracy", "headline/prm_best_of_n",
                "headline/majority", "train/PRM-mc-hard/loss", "real/oracle/n4"):
        assert key in m, key
    assert {"prm", "prm_oracle", "prm_mc_soft", "orm", "label_quality.json", "real_text_study.json"} <= artifacts(run)
    assert {"figures/best_of_n.html", "figures/label_quality_vs_cost.html"} <= artifacts(run, "figures")
    from prmlab.prm.train import load_prm

    prm, found = load_prm("01_prm_training", "prm", profile="smoke", device="cpu")
    assert found.info.run_id == run.info.run_id
    rewards = prm.score(["Q: 1 +2\n"], [["1+2=3", "A: 3"]])
    assert rewards[0].shape == (2,)


def test_04_smc_decoding(module_store, tmp_path):
    run = smoke("04", tmp_path)
    m = run.data.metrics
    assert run.data.tags["prmlab.prm_run"] == tracking.latest_run("01_prm_training", "smoke").info.run_id
    for method in ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority", "majority"):
        assert f"acc/{method}" in m and f"tokens/{method}" in m and f"wall_time/{method}" in m, method
    assert "sensitivity/scheme/residual" in m and "sensitivity/tau" in m
    assert len(tracking.client().get_metric_history(run.info.run_id, "acc/smc")) == 3  # N = 1, 2, 4
    figs = artifacts(run, "figures")
    assert {"figures/accuracy_vs_n.html", "figures/accuracy_vs_tokens.html", "figures/genealogy.html"} <= figs
    assert "comparison_rows.json" in artifacts(run)
