"""The per-arm summary on the parent run of 02 and 03 (issue 23: which arm won, one click away), from
hand-made histories: final sampled and greedy accuracy and the hacking meters, with standard errors over
seeds, as a table artifact and a figure."""

import json
import math
from pathlib import Path

import pytest

from prmlab import tracking, viz
from prmlab.rl.arms import SUMMARY_COLUMNS, arm_summary, log_arm_summary
from test_headlines import SE_1, _hist, _pure_arms

WRONG = "wrong-step share, last 5 steps"


def test_arm_summary_gives_means_and_standard_errors_over_seeds():
    rows = {r["arm"]: r for r in arm_summary(_pure_arms())}
    assert list(rows) == list(_pure_arms())
    s = rows["prm-sum"]  # final 0.10, 0.14, 0.12; greedy 0.50, 0.55, 0.45; wrong steps 0.20 -> 0.50, 0.52, 0.48
    assert s["seeds"] == 3
    assert s["final sampled accuracy"] == pytest.approx(0.12) and s["final sampled accuracy se"] == pytest.approx(SE_1)
    assert s["final greedy accuracy"] == pytest.approx(0.5)
    assert s["final greedy accuracy se"] == pytest.approx(0.05 / math.sqrt(3))
    assert s[WRONG] == pytest.approx(0.5) and s[f"{WRONG} se"] == pytest.approx(SE_1)
    assert s["wrong-step share rise"] == pytest.approx(0.3) and s["wrong-step share rise se"] == pytest.approx(SE_1)
    one = arm_summary({"prime": _hist([0.4, 0.5, 0.6], [0.8, 0.8, 0.85])})[0]  # one history: one seed, no oracle
    assert one["seeds"] == 1 and one["final sampled accuracy"] == pytest.approx(0.6)
    assert math.isnan(one["final sampled accuracy se"]) and WRONG not in one


def test_the_summary_is_logged_as_a_table_and_a_figure_on_the_parent_run(mlflow_store, tmp_path):
    run = tracking.start_run("02_pure_min_form", params={"profile": "smoke", "seed": 0})
    rows, fig = log_arm_summary(run, _pure_arms())
    run.finish()
    c = tracking.client()
    table = json.loads(Path(c.download_artifacts(run.id, "arm_summary.json", str(tmp_path))).read_text())
    logged = dict(zip(table["columns"], table["data"][1]))  # MLflow's table format: columns and rows
    assert logged["arm"] == "prm-sum" and logged["final sampled accuracy"] == 0.12  # not 0.12000000000000005
    assert logged["final sampled accuracy se"] == 0.01155  # SE_1 = 0.0115470..., to 4 significant digits
    assert rows[1]["final sampled accuracy"] != 0.12 and rows[1]["final sampled accuracy"] == pytest.approx(0.12)
    figures = {a.path for a in c.list_artifacts(run.id, "figures")}
    assert {"figures/arm_summary.html", "figures/arm_summary.json"} <= figures
    # one panel per measured column, a bar per arm in its colour with its standard error
    assert [a.text for a in fig.layout.annotations] == list(SUMMARY_COLUMNS)
    first = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in first] == list(_pure_arms())
    assert all(t.marker.color == viz.SERIES_COLORS[t.name] for t in fig.data)
    assert first[1].error_y.array[0] == pytest.approx(SE_1)
