"""Tracking store resolution and run lifecycle (no notebook kernel involved)."""

import os
import subprocess
import sys

import pytest

from prmlab import tracking
from prmlab.paths import project_root


def test_default_store_is_under_project_runs_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{project_root() / 'runs' / 'mlflow.db'}"
    assert tracking.artifact_root() == (project_root() / "runs" / "mlartifacts").as_uri()
    # the same answer from a subprocess started elsewhere (as a kernel would be)
    code = "from prmlab import tracking; print(tracking.tracking_uri())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert out.stdout.strip() == tracking.tracking_uri()


def test_env_overrides_store_and_artifacts_go_beside_sqlite(mlflow_store, tmp_path):
    assert tracking.tracking_uri() == mlflow_store
    assert tracking.artifact_root() == (tmp_path / "store" / "mlartifacts").as_uri()
    assert tracking.artifact_root("http://127.0.0.1:5000") is None  # a server chooses its own


def test_run_logs_params_metrics_artifacts_and_tags(mlflow_store, tmp_path, tiny_policy, char_tokenizer):
    import plotly.graph_objects as go

    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 3, "lr": 0.001, "arch": "llama"})
    run.log_metrics({"train/loss": 2.0}, step=0)
    run.log_metrics({"train/loss": 1.0}, step=1)
    run.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "curve")
    run.log_dict({"a": 1}, "summary.json")
    run.log_model(tiny_policy, char_tokenizer, "policy", config={"k": 1})
    run.finish()
    c = tracking.client()
    r = c.get_run(run.id)
    assert r.info.status == "FINISHED"
    assert r.data.params == {"profile": "smoke", "seed": "3", "lr": "0.001", "arch": "llama"}
    assert [m.value for m in c.get_metric_history(run.id, "train/loss")] == [2.0, 1.0]
    tags = r.data.tags
    assert tags["prmlab.notebook"] == "00_policy_sft" and tags["prmlab.profile"] == "smoke"
    assert len(tags["prmlab.git_commit"]) in (40, 7) and tags["prmlab.git_dirty"] in ("true", "false", "unknown")
    assert r.info.run_name == "policy_sft-smoke-seed3"
    names = {a.path for a in c.list_artifacts(run.id)} | {a.path for a in c.list_artifacts(run.id, "figures")}
    assert {"figures/curve.html", "figures/curve.json", "summary.json", "policy"} <= names
    assert str(tmp_path / "store" / "mlartifacts") in r.info.artifact_uri  # artifacts beside the store

    model, tok, found = tracking.load_model("00_policy_sft", "policy", profile="smoke", device="cpu")
    assert found.info.run_id == run.id
    assert tok("Q: 1 +1\n").input_ids == char_tokenizer("Q: 1 +1\n").input_ids


def test_missing_run_says_which_notebook_to_run(mlflow_store):
    with pytest.raises(tracking.NoRunError, match=r"prmlab run 00 --profile smoke"):
        tracking.load_model("00_policy_sft", "policy", profile="smoke")


def test_unfinished_or_other_profile_runs_are_not_used(mlflow_store, tiny_policy, char_tokenizer):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    run.log_model(tiny_policy, char_tokenizer, "policy")
    with pytest.raises(tracking.NoRunError):  # still RUNNING
        tracking.latest_run("00_policy_sft", "tiny")
    run.finish()
    assert tracking.latest_run("00_policy_sft", "tiny").info.run_id == run.id
    with pytest.raises(tracking.NoRunError):
        tracking.latest_run("00_policy_sft", "smoke")
