"""Tables, figures and explorers the notebooks show, and their static views (what a viewer without a
live kernel sees)."""

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from IPython.core.formatters import format_display_data

from prmlab import viz
from prmlab.tasks.arith import ArithTask


def test_html_table_formats_floats_and_escapes_text():
    rows = [{"model": "PRM<a>", "AUROC": 0.91234, "n": 3}, {"model": "ORM", "AUROC": float("inf"), "extra": None}]
    html = viz.html_table(rows, title="t & u")
    assert html.startswith("<h4>t &amp; u</h4><table>")
    assert "<th>model</th><th>AUROC</th><th>n</th><th>extra</th>" in html  # columns in order of first appearance
    assert "<td>PRM&lt;a&gt;</td><td>0.912</td><td>3</td><td></td>" in html
    assert "<td>inf</td>" in html
    html = viz.html_table(rows, ["AUROC"], fmt=".1f", formats={"AUROC": ".2f"})
    assert "<td>0.91</td>" in html and "model" not in html
    assert viz.html_table([], ["a", "b"]) == "<table><tr><th>a</th><th>b</th></tr></table>"
    assert "<td>0.5</td>" in viz.html_table([{"x": np.float64(0.5)}], fmt=".1f")  # numpy floats are floats


@pytest.fixture(scope="module")
def evaluation():
    """A stand-in Evaluation: 3 problems x 2 samples (reference solution and a wrong one)."""
    task = ArithTask(n_train=0, n_eval=3, seed=0)
    texts = [[p.reference_solution(), p.reference_solution().replace("A: ", "A: 1")] for p in task.eval]
    verdicts = [[task.judge(p, t) for t in row] for p, row in zip(task.eval, texts)]
    ev = SimpleNamespace(problems=task.eval, n=2, verdicts=verdicts, solutions=lambda i: texts[i],
                         correct=np.array([[v.answer_correct for v in row] for row in verdicts]))
    return task, ev


def test_explorer_items_show_one_sample_per_problem(evaluation):
    task, ev = evaluation
    items = viz.explorer_items(task, ev, 5)
    assert [it["title"] for it in items] == [f"eval problem {i}, sample 0" for i in range(3)]
    assert items[0]["prompt"] == task.prompt(task.eval[0]) and items[0]["correct"] is True
    assert items[0]["kinds"] == list(ev.verdicts[0][0].kinds) and "scores" not in items[0]
    scores = [[np.arange(len(v.steps)) / 10 for v in row] for row in ev.verdicts]
    rotated = viz.explorer_items(task, ev, 2, scores=scores, rotate=True)
    assert [it["title"] for it in rotated] == ["eval problem 0, sample 0", "eval problem 1, sample 1"]
    assert rotated[1]["correct"] is False and rotated[1]["scores"] == list(scores[1][1])
    assert viz.explorer_items(task, SimpleNamespace(**{**vars(ev), "verdicts": None}), 1)[0]["kinds"] is None


def test_an_explorer_carries_a_static_view_of_its_first_items(evaluation):
    task, ev = evaluation
    items = viz.explorer_items(task, ev, 3)
    data, _ = format_display_data(viz.solution_explorer(items, static_count=2))
    assert "application/vnd.jupyter.widget-view+json" in data  # live frontends get the widget
    static = data["text/html"]
    assert "the first 2 of 3 solutions" in static
    assert "eval problem 0, sample 0" in static and "eval problem 1" in static and "eval problem 2" not in static
    assert static.count("<table>") == 2


def test_figures_carry_html_and_plotly_js_is_inlined_once(monkeypatch):
    monkeypatch.setattr(viz, "_plotlyjs_shown", False)
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    first, second = viz.figure_bundle(fig), viz.figure_bundle(fig)
    assert json.loads(json.dumps(first["application/vnd.plotly.v1+json"]))["data"][0]["y"] == [3, 4]
    assert "plotly.js v" in first["text/html"] and "Plotly.newPlot" in first["text/html"]  # the library, offline
    assert "plotly.js v" not in second["text/html"] and "Plotly.newPlot" in second["text/html"]
    assert 'src="http' not in first["text/html"] + second["text/html"]  # nothing loaded from a network


def test_summary_figures():
    summary = {"smc": {1: (0.5, 0.4, 0.6), 2: (0.7, 0.6, 0.8)}, "beam": {2: (0.6, 0.6, 0.6)}}
    fig = viz.mean_curves_figure(summary, "t", "N", "accuracy")
    lines = [t for t in fig.data if t.name in summary]
    assert [list(t.y) for t in lines] == [[0.5, 0.7], [0.6]]
    band = next(t for t in fig.data if t.name == "smc spread")
    assert list(band.y) == [0.6, 0.8, 0.6, 0.4]  # upper edge forth, lower edge back
    assert len(viz.mean_curves_figure(summary, "t", "N", "accuracy", bands=False).data) == 2
    bars = viz.range_bars_figure({"multinomial": (0.5, 0.4, 0.7)}, "t", "accuracy").data[0]
    assert list(bars.y) == [0.5] and list(bars.error_y.array) == pytest.approx([0.2])
    assert list(bars.error_y.arrayminus) == pytest.approx([0.1])
    losses = viz.loss_curves_figure({"ORM": [{"train/loss": 0.7}, {"train/loss": 0.5}]}, "t")
    assert list(losses.data[0].x) == [0, 1] and list(losses.data[0].y) == [0.7, 0.5]
    quality = [{"labels": "outcome", "n": 0, "tokens": 0, "agreement": 0.5, "bad_precision": 0.4, "bad_recall": 0.3},
               {"labels": "mc", "n": 1, "tokens": 10, "agreement": 0.8, "bad_precision": 0.7, "bad_recall": 0.9}]
    fig = viz.label_quality_figure(quality)
    assert [t.name for t in fig.data] == ["agreement", "bad_precision", "bad_recall"] and list(fig.data[0].x) == [10]


def test_picks_figure_shows_shares_of_each_profile():
    profiles = {"all samples": {"first_error": Counter(none=3, carry=1), "steps": Counter({3: 2, 4: 2})},
                "PRM": {"first_error": Counter(skipped=2), "steps": Counter({2: 2})}}
    fig = viz.picks_figure(profiles)
    kinds = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in kinds] == ["all samples", "PRM"]
    assert list(kinds[0].x) == ["none", "carry", "skipped"] and list(kinds[0].y) == [0.75, 0.25, 0.0]
    assert list(kinds[1].y) == [0.0, 0.0, 1.0]
    steps = [t for t in fig.data if t.xaxis == "x2"]
    assert list(steps[0].x) == ["2", "3", "4"] and list(steps[1].y) == [1.0, 0.0, 0.0]
