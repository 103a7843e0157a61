"""Tracking store resolution and run lifecycle (no notebook kernel involved)."""

import os
import subprocess
import sys

import pytest

from prmlab import artifacts, tracking
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
    artifacts.log_model(run, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer, config={"k": 1})
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

    model, tok, found = artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke", device="cpu")
    assert found.info.run_id == run.id
    assert tok("Q: 1 +1\n").input_ids == char_tokenizer("Q: 1 +1\n").input_ids


def test_missing_run_says_which_notebook_to_run(mlflow_store):
    with pytest.raises(tracking.NoRunError, match=r"prmlab run 00 --profile smoke"):
        artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke")


def test_unfinished_or_other_profile_runs_are_not_used(mlflow_store, tiny_policy, char_tokenizer):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    artifacts.log_model(run, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer)
    with pytest.raises(tracking.NoRunError):  # still RUNNING
        tracking.latest_run("00_policy_sft", "tiny")
    run.finish()
    assert tracking.latest_run("00_policy_sft", "tiny").info.run_id == run.id
    with pytest.raises(tracking.NoRunError):
        tracking.latest_run("00_policy_sft", "smoke")


def test_an_unfinished_interactive_run_ends_killed_when_superseded(mlflow_store):
    first = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    second = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})  # re-run from the top
    c = tracking.client()
    assert c.get_run(first.id).info.status == "KILLED"
    assert "superseded" in c.get_run(first.id).data.tags["prmlab.error"]
    assert c.get_run(second.id).info.status == "RUNNING"
    second.finish()
    tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 1}).finish()
    assert c.get_run(second.id).info.status == "FINISHED"  # a finished run is never touched again


@pytest.mark.parametrize("finish", [False, True])
def test_a_kernel_that_exits_ends_its_unfinished_run_killed(mlflow_store, finish):
    code = ("from prmlab import tracking\n"
            "run = tracking.start_run('00_policy_sft', params={'profile': 'tiny', 'seed': 0})\n"
            f"{'run.finish()' if finish else 'pass'}\n"
            "print(run.id)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = tracking.client().get_run(out.stdout.strip().splitlines()[-1])
    assert r.info.status == ("FINISHED" if finish else "KILLED")
    assert ("prmlab.error" in r.data.tags) == (not finish)


def test_shutting_down_a_jupyter_kernel_ends_its_unfinished_run_killed(mlflow_store):
    """What JupyterLab's "Restart kernel" / "Shut down kernel" does: a shutdown request to the kernel."""
    from jupyter_client.manager import start_new_kernel

    outputs = []
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ})
    try:
        reply = kc.execute_interactive(
            "from prmlab import tracking\n"
            "run = tracking.start_run('00_policy_sft', params={'profile': 'tiny', 'seed': 0})\n"
            "print(run.id)", timeout=120, output_hook=lambda msg: outputs.append(msg))
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)  # graceful, as the Jupyter server does first
    printed = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
    run_id = printed.strip().splitlines()[-1]
    r = tracking.client().get_run(run_id)
    assert r.info.status == "KILLED"
    assert "exited" in r.data.tags["prmlab.error"]


def test_experiments_are_model_development_experiments_described_by_their_notebook(mlflow_store):
    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    c = tracking.client()
    tags = c.get_experiment(run.info.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"  # not GenAI: runs, not traces
    assert tags["mlflow.note.content"] == "The base policy (supervised fine-tuning)"
    run.set_headline(["pass@1 is 0.400: the target holds.", "pass@16 is 0.950: the target holds."])
    assert c.get_run(run.id).data.tags["mlflow.note.content"] == (
        "- pass@1 is 0.400: the target holds.\n- pass@16 is 0.950: the target holds.")
    run.finish()
    # an experiment from before these tags gets them the next time it is used
    old = c.create_experiment("01_prm_training")
    tracking.experiment_id("01_prm_training")
    assert c.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    # an experiment that is not a notebook's has no description
    assert "mlflow.note.content" not in c.get_experiment(tracking.experiment_id("scratch")).tags


def test_latest_runs_per_profile_whatever_their_status_and_without_child_runs(mlflow_store):
    first = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    first.finish()
    smoke = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    smoke.finish("FAILED")
    running = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 1})
    arm = running.child("arm")  # a newer run, but an arm of `running`, not a run of the notebook
    latest = tracking.latest_runs("00_policy_sft")
    assert {p: (r.info.run_id, r.info.status) for p, r in latest.items()} == {
        "tiny": (running.id, "RUNNING"), "smoke": (smoke.id, "FAILED")}
    arm.finish()
    assert tracking.latest_run("00_policy_sft", "tiny").info.run_id == first.id  # the latest FINISHED one
    running.end_running_children("test")
    running.finish()
    assert tracking.latest_runs("nobody") == {}


def test_a_stopped_run_ends_its_running_children_killed(mlflow_store):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    done, left = run.child("done"), run.child("left")
    done.finish()
    run.end_running_children("the parent run was stopped: test")
    c = tracking.client()
    assert c.get_run(done.id).info.status == "FINISHED"
    assert c.get_run(left.id).info.status == "KILLED"
    assert c.get_run(left.id).data.tags["prmlab.error"] == "the parent run was stopped: test"
    run.finish()


def test_runs_whose_process_died_end_killed_and_others_are_left_alone(mlflow_store):
    """The next prmlab command ends a RUNNING run whose process is gone (this host: its pid; elsewhere:
    a heartbeat silent for longer than the timeout), with its children; a live one, or a run without
    these tags, it leaves RUNNING."""
    import socket
    import time

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid no process has any more
    host, old = socket.gethostname(), tracking.heartbeat_now(time.time() - 2 * tracking.HEARTBEAT_TIMEOUT_S)
    made = {
        "dead here": {tracking.HOST_TAG: host, tracking.PID_TAG: str(gone.pid)},
        "silent elsewhere": {tracking.HOST_TAG: "elsewhere", tracking.PID_TAG: "1", tracking.HEARTBEAT_TAG: old},
        "beating elsewhere": {tracking.HOST_TAG: "elsewhere", tracking.PID_TAG: "1", tracking.HEARTBEAT_TAG: tracking.heartbeat_now()},
        "alive here": {},  # create_run records this process
        "untagged": {tracking.HOST_TAG: "", tracking.PID_TAG: ""},  # a run from before these tags
    }
    runs = {what: tracking.create_run("00_policy_sft", "tiny", 0, tags) for what, tags in made.items()}
    c = tracking.client()
    assert c.get_run(runs["alive here"]).data.tags[tracking.PID_TAG] == str(os.getpid())
    arm = tracking.Run(runs["dead here"]).child("arm")
    assert tracking.HEARTBEAT_TAG not in c.get_run(arm.id).data.tags  # a parent's beat is not a child's
    ended = dict(tracking.end_dead_runs())
    assert set(ended) == {runs["dead here"], runs["silent elsewhere"]}
    assert f"its process {gone.pid} on {host} died" in ended[runs["dead here"]]
    assert "no heartbeat from its process 1 on elsewhere since" in ended[runs["silent elsewhere"]]
    status = {what: c.get_run(run_id).info.status for what, run_id in runs.items()}
    assert status == {"dead here": "KILLED", "silent elsewhere": "KILLED", "beating elsewhere": "RUNNING",
                      "alive here": "RUNNING", "untagged": "RUNNING"}
    assert c.get_run(runs["dead here"]).data.tags["prmlab.error"] == ended[runs["dead here"]]
    assert c.get_run(arm.id).info.status == "KILLED"
    assert tracking.end_dead_runs() == []  # once ended, never again


def test_looking_for_dead_runs_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    assert tracking.end_dead_runs() == [] and not (tmp_path / "none").exists()


def _serve(folder):
    """An HTTP server for ``folder`` on 127.0.0.1 (a free port) in a thread; returns (server, base url)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_figure_artifacts_draw_offline_in_a_real_browser(mlflow_store, tmp_path):
    """A figure artifact opened with no internet: plotly.js must be in the file (a CDN link draws nothing)."""
    import plotly.graph_objects as go
    from headless import dump_dom, require_browser

    require_browser()
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="lines", name="curve"))
    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    run.log_figure(fig, "curve")
    run.finish()
    folder = tmp_path / "dl"
    tracking.client().download_artifacts(run.id, "figures", str(folder))
    fig.write_html(folder / "figures" / "from_cdn.html", include_plotlyjs="cdn")  # the control: needs the internet
    server, base = _serve(folder / "figures")
    try:
        drawn = dump_dom(f"{base}/curve.html", wait_ms=10000)
        control = dump_dom(f"{base}/from_cdn.html", wait_ms=10000)
    finally:
        server.shutdown()
    assert 'class="main-svg"' in drawn and 'class="js-line"' in drawn  # the axes and the line were drawn
    assert 'class="main-svg"' not in control  # the check sees a figure that did not draw


def test_child_runs_are_named_by_arm_and_seed_with_the_parents_tags(mlflow_store):
    """Issue 23: a child named "<parent name>/<arm>" truncates to its parent's prefix in the MLflow UI."""
    run = tracking.start_run("02_pure_min_form", params={"profile": "smoke", "seed": 5})
    arm = run.child("prm-min", {"lr": 1e-4}, seed=7)
    r = tracking.client().get_run(arm.id)
    assert r.info.run_name == "prm-min · seed 7"
    assert r.data.tags["prmlab.arm"] == "prm-min" and r.data.tags["prmlab.seed"] == "7"
    assert r.data.tags["mlflow.parentRunId"] == run.id and r.data.tags["prmlab.profile"] == "smoke"
    assert tracking.client().get_run(run.child("probe").id).info.run_name == "probe"  # no seed: the arm alone
    run.end_running_children("test")
    run.finish()


def test_params_and_tags_show_floats_without_arithmetic_noise(mlflow_store):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    run.log_params({"noisy": 0.1 + 0.02, "typed": 0.123456789, "lr": 3e-4, "grid": [0.1 + 0.2, 2]})
    run.set_tags({"prmlab.share": 0.1 + 0.02, "prmlab.ratio": 2 / 3, "prmlab.name": "a 0.30000000000000004"})
    run.log_metrics({"eval/x": 0.1 + 0.02})
    run.finish()
    r = tracking.client().get_run(run.id)
    assert {k: r.data.params[k] for k in ("noisy", "typed", "lr", "grid")} == {
        "noisy": "0.12", "typed": "0.123456789", "lr": "0.0003", "grid": "[0.3, 2]"}  # every typed digit kept
    assert r.data.tags["prmlab.share"] == "0.12" and r.data.tags["prmlab.ratio"] == "0.6667"  # 4 significant digits
    assert r.data.tags["prmlab.name"] == "a 0.30000000000000004"  # text is left as it is
    assert r.data.metrics["eval/x"] == 0.1 + 0.02  # metrics keep full precision
    assert tracking.rounded({"a": [0.12000000000000005, 2], "b": "x"}) == {"a": [0.12, 2], "b": "x"}
