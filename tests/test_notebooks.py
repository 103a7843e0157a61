"""Smoke runs of every notebook through `prmlab run --profile smoke`, in order, into one temporary MLflow
store (later notebooks load what earlier ones logged), from an unrelated working directory."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from prmlab import tracking


def smoke(number: str, cwd: Path):
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, "--profile", "smoke"], capture_output=True,
                         text=True, cwd=cwd, env=os.environ.copy(), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    executed = Path(next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("notebook: ")))
    # kept beside the (temporary) store it was tracked in, whatever the working directory
    assert executed.parent == tracking.local_store_path().parent / "notebooks" and executed.exists()
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
    for scorer in ("prm", "oracle"):
        for method in ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority"):
            key = f"{method}/{scorer}"
            assert f"acc/{key}" in m and f"tokens/{key}" in m and f"wall_time/{key}" in m, key
    assert "acc/majority" in m
    assert "sensitivity/scheme/residual" in m and "sensitivity/tau" in m
    assert len(tracking.client().get_metric_history(run.info.run_id, "acc/smc/prm")) == 3  # N = 1, 2, 4
    figs = artifacts(run, "figures")
    assert {"figures/accuracy_vs_n.html", "figures/accuracy_vs_tokens.html", "figures/genealogy.html"} <= figs
    assert "comparison_rows.json" in artifacts(run)


PAPER_SMALL = {
    "00": ["-p", "n_eval", "3", "-p", "max_k", "2", "-p", "max_new_tokens", "16", "-p", "sample_batch", "8",
           "-p", "explorer_samples", "2"],
    "01": ["-p", "n_label_problems", "2", "-p", "n_per_problem", "2", "-p", "mc_n", "2", "-p", "prm_steps", "2",
           "-p", "prm_batch", "2", "-p", "n_eval", "2", "-p", "bon_max_n", "2", "-p", "real_text", "false",
           "-p", "max_new_tokens", "16", "-p", "sample_batch", "8", "-p", "explorer_samples", "1"],
    "04": ["-p", "n_problems", "2", "-p", "max_n", "2", "-p", "beam_m", "2", "-p", "repetitions", "1",
           "-p", "sensitivity_n", "2", "-p", "tau_grid", "1", "-p", "genealogy_particles", "2",
           "-p", "max_new_tokens", "16"],
}


def test_paper_profile_path_runs_on_a_local_model(tmp_path, monkeypatch, char_tokenizer):
    """The paper profile's code path (a pretrained model by path, GSM8K, graded answers, LoRA PRM on
    Monte Carlo labels, no step oracle) end to end on CPU, with a tiny local model standing in for the
    hub model and sizes cut to seconds."""
    from prmlab.models import PolicyConfig, build_policy, save_pretrained

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    model_dir = tmp_path / "local-model"
    save_pretrained(build_policy(char_tokenizer, PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                                              intermediate_size=64)), char_tokenizer, model_dir)
    runs = {}
    for nb in ("00", "01", "04"):
        extra = ["-p", "policy", str(model_dir)] if nb == "00" else []
        res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", nb, "--profile", "paper", *extra, *PAPER_SMALL[nb]],
                             capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy(), timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
        runs[nb] = tracking.client().get_run(run_id)
    assert runs["00"].data.params["dataset"] == "gsm8k" and "eval/pass_at_1" in runs["00"].data.metrics
    assert "eval/first_error/none" not in runs["00"].data.metrics  # no oracle on real data
    assert runs["01"].data.params["lora"] == "true" and "headline/prm_best_of_n" in runs["01"].data.metrics
    assert "acc/smc/prm" in runs["04"].data.metrics
