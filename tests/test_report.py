import re

import plotly.graph_objects as go

from prmlab import tracking
from prmlab.cli import main
from prmlab.report import write_report


def test_report_summarises_latest_finished_runs(mlflow_store, tmp_path):
    run = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0, "lr": 0.003})
    run.log_metrics({"eval/pass_at_1": 0.42, "train/loss": 1.0})
    run.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[0.4, 0.9], name="policy")), "pass_at_k")
    run.set_headline(["pass@1 is 0.420: the target (between 0.35 and 0.75) holds.",
                      "pass@16 is 0.850: the target (at least 0.9) does not hold, by -0.050."])
    run.finish()
    out = write_report("tiny", tmp_path / "summary.html")
    page = out.read_text()
    assert "policy_sft-tiny-seed0" in page and "eval/pass_at_1" in page and "0.42" in page
    assert "train/loss" not in page  # training curves are figures, not table rows
    assert page.count("Plotly.newPlot") == 1 and "plotly.js" in page.lower()  # embedded once, offline
    assert "no finished run of notebook 01_prm_training" in page  # missing notebooks say what to run
    # the headline box comes first, each claim marked held or not; the metric list is collapsed
    box = page.index("<h2>Headlines</h2>")
    assert box < page.index("<h2 id='00_policy_sft'>") < page.index("Plotly.newPlot") < page.index("all metrics (1;")
    assert re.search(r"<li class='held-yes'>pass@1 is 0.420.*?</li><li class='held-no'>pass@16 is 0.850", page)
    assert page.index("<details><summary>all metrics") < page.index("<td>eval/pass_at_1</td>")
    assert main(["report", "--profile", "tiny", "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").exists()


def test_report_without_a_headline_read_out_lists_the_headline_metrics(mlflow_store, tmp_path):
    run = tracking.start_run("04_smc_decoding", params={"profile": "smoke", "seed": 0})
    run.log_metrics({"headline/oracle/smc_advantage_vs_best_of_n": 2.8, "acc/majority": 0.3})
    run.finish()
    page = write_report("smoke", tmp_path / "s.html").read_text()
    row = page[page.index("<h2>Headlines</h2>"):page.index("</table>")]
    assert "<code>headline/oracle/smc_advantage_vs_best_of_n</code> = 2.8" in row and "acc/majority" not in row


def test_a_notebook_still_running_is_reported_in_progress(mlflow_store, tmp_path):
    finished = tracking.start_run("00_policy_sft", params={"profile": "tiny", "seed": 0})
    finished.finish()
    newer = tracking.create_run("00_policy_sft", "tiny", 1)  # RUNNING, as under `prmlab run`
    first = tracking.create_run("01_prm_training", "tiny", 0)  # RUNNING, and none finished
    page = write_report("tiny", tmp_path / "r.html").read_text()
    assert f"in progress: run {newer} started" in page and f"in progress: run {first} started" in page
    assert "no finished run of notebook 01_prm_training" not in page  # not "run it first"
    assert finished.id in page  # the latest finished run is still reported
