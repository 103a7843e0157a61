import plotly.graph_objects as go

from prmlab import tracking
from prmlab.cli import main
from prmlab.report import write_report


def test_report_summarises_latest_finished_runs(mlflow_store, tmp_path):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0, "lr": 0.003})
    run.log_metrics({"eval/pass_at_1": 0.42, "train/loss": 1.0})
    run.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[0.4, 0.9], name="policy")), "pass_at_k")
    run.finish()
    out = write_report("tiny", tmp_path / "summary.html")
    page = out.read_text()
    assert "policy_sft-tiny-seed0" in page and "eval/pass_at_1" in page and "0.42" in page
    assert "train/loss" not in page  # training curves are figures, not table rows
    assert page.count("Plotly.newPlot") == 1 and "plotly.js" in page.lower()  # embedded once, offline
    assert "no finished run of notebook 01_prm_training" in page  # missing notebooks say what to run
    assert main(["report", "--profile", "tiny", "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").exists()
