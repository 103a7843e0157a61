import json
import re

import numpy as np
import plotly.graph_objects as go

from prmlab import tracking, viz
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


def _plots(page: str) -> list[tuple[list, dict]]:
    """(data, layout) of every figure of the page, as the page hands them to plotly.js."""
    decoder, plots = json.JSONDecoder(), []
    for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        data, end = decoder.raw_decode(page, call.end())
        layout, _ = decoder.raw_decode(page, end + re.match(r"\s*,\s*", page[end:]).end())
        plots.append((data, layout))
    return plots


def _log_readability_figures(profile: str):
    """A finished run of 02 with a noisy per-step figure, a log axis over tokens and a 3-step axis."""
    rng = np.random.default_rng(1)
    reward = {arm: {s: 0.5 + float(rng.normal(0, 0.2)) for s in range(40)} for arm in ("sum", "min")}
    run = tracking.start_run("02_pure_min_form", params={"profile": profile, "seed": 0})
    run.log_figure(viz.curves_figure(reward, "PRM reward", "RL step", "reward/prm_mean", log_x=False), "a_prm_reward")
    run.log_figure(viz.curves_figure({"smc": {300: 0.2, 5000: 0.4, 400000: 0.5}}, "t", "tokens", "accuracy"), "b_tokens")
    steps = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.1, 0.2, 0.3], mode="lines"))  # as an older run logged it
    steps.update_xaxes(title="RL step")
    run.log_figure(steps, "c_steps")
    run.finish()
    return reward


def test_report_smooths_per_step_curves_and_labels_ticks_readably(mlflow_store, tmp_path):
    reward = _log_readability_figures("smoke")
    plots = _plots(write_report("smoke", tmp_path / "s.html").read_text())
    assert len(plots) == 3
    (curve, _), (_, tokens), (_, steps) = plots
    traces = {t["name"]: t for t in curve}
    for arm, values in reward.items():
        values = [values[s] for s in range(40)]
        smoothed = viz.trace_values(traces[f"{arm} (moving average 5)"]["y"])
        expected = [float(np.mean(values[max(0, i - 4):i + 1])) for i in range(40)]  # trailing mean of 5
        assert np.allclose(smoothed, expected) and np.allclose(smoothed, viz.smooth(values, 5))
        assert viz.trace_values(traces[f"{arm} (per step)"]["y"]) == values
    assert tokens["xaxis"]["ticktext"] == ["300", "1000", "3000", "10k", "30k", "100k", "300k", "1M"]
    assert steps["xaxis"]["dtick"] == 1


def test_report_figures_draw_readable_ticks_in_a_real_browser(mlflow_store, tmp_path):
    from headless import dump_dom, require_browser

    require_browser()
    _log_readability_figures("tiny")
    dom = dump_dom((write_report("tiny", tmp_path / "t.html")).as_uri(), wait_ms=10000)
    xticks = re.findall(r'class="xtick".*?<text[^>]*>(.*?)</text>', dom)
    assert {"1000", "10k", "100k"} <= set(xticks)  # the tokens axis
    assert not [t for t in xticks if re.fullmatch(r"\d+\.\d+k|0\.5|1\.5", t)]  # no "16.384k", no half steps
    assert {"sum (moving average 5)", "min (moving average 5)"} <= set(re.findall(r'class="legendtext"[^>]*>([^<]*)<', dom))


def test_each_headline_line_is_classed_held_not_held_within_noise_or_without_verdict():
    from prmlab.report import verdict

    lines = {
        "pass@1 is 0.420: the target (between 0.35 and 0.75) holds.": "yes",
        "Monte Carlo labels approach oracle labels (within 0.03) holds.": "yes",
        "'sum-form is hacked and collapses' does not hold: the reverse is beyond 2 standard errors (...)": "no",
        "the headline holds at 0.450 but not at 0.500: it does not hold.": "no",
        "'min-form trains stably' is within noise (2 seeds; a claim needs at least 3; ...)": "noise",
        "It is not shown to be worth its tokens: its lead over greedy is within noise (...).": "noise",
        "It is worth its tokens: it beats greedy decoding ...": "yes",
        "It is not worth its tokens: it does not beat greedy": "no",
        "Sampled pass@1 and greedy accuracy at the end (change from the start): ...": "na",
    }
    assert {line: verdict(line) for line in lines} == lines


def test_report_links_each_run_and_its_executed_notebook_and_marks_noise(mlflow_store, tmp_path):
    run = tracking.start_run("02_pure_min_form", params={"profile": "tiny", "seed": 0})
    (tmp_path / "nb.ipynb").write_text("{}")
    run.log_artifact(tmp_path / "nb.ipynb", "notebook")  # as the runner attaches it
    run.set_headline(["The best arm is within noise (2 seeds; a claim needs at least 3). [2 seeds × 100 problems]"])
    run.finish()
    page = write_report("tiny", tmp_path / "r.html", ui="http://host:5000").read_text()
    info = tracking.client().get_run(run.id).info
    assert f"<a href='http://host:5000/#/experiments/{info.experiment_id}/runs/{run.id}'>MLflow run</a>" in page
    assert f"<a href='{info.artifact_uri}/notebook/nb.ipynb'>executed notebook (ipynb)</a>" in page
    assert "<li class='held-noise'>The best arm is within noise" in page and "≈ within noise" in page
