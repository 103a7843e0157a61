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


def _noisy_history_figure():
    """Notebook 02's kind of figure: two arms' metric at each of 40 RL steps (noisy), an eval curve every
    5 steps, a band; rebuilt from its JSON as the report does (numpy arrays come back as typed arrays)."""
    import plotly.io as pio

    rng = np.random.default_rng(0)
    curves = {arm: {s: 0.5 + 0.01 * s + float(rng.normal(0, 0.1)) for s in range(40)} for arm in ("sum", "min")}
    curves["eval"] = {s: 0.4 + 0.01 * s for s in range(0, 40, 5)}
    bands = {"min": {s: (0.0, 1.0) for s in range(40)}}
    fig = viz.curves_figure(curves, "PRM reward", "RL step", "reward/prm_mean", log_x=False, bands=bands)
    fig.add_scatter(x=np.arange(40), y=np.linspace(0, 1, 40), mode="markers", name="points")
    return curves, pio.from_json(fig.to_json())


def test_noisy_per_step_curves_are_drawn_faint_under_their_moving_average():
    import pandas as pd

    curves, fig = _noisy_history_figure()
    smoothed = viz.smooth_curves(fig)
    by_name = {t.name: t for t in smoothed.data}
    assert viz.smoothing_window(40) == 5
    for arm in ("sum", "min"):
        raw, avg = by_name[f"{arm} (per step)"], by_name[f"{arm} (moving average 5)"]
        values = [curves[arm][s] for s in range(40)]
        reference = pd.Series(values).rolling(5, min_periods=1).mean().to_numpy()  # trailing mean, partial at the start
        assert list(avg.x) == list(range(40)) and np.allclose(avg.y, reference) and np.allclose(avg.y, viz.smooth(values, 5))
        assert list(raw.y) == values and raw.opacity < 1 and raw.showlegend is False  # the data, faint
        assert raw.line.color == avg.line.color and raw.legendgroup == avg.legendgroup == arm
    assert by_name["sum (moving average 5)"].line.color != by_name["min (moving average 5)"].line.color
    assert by_name["min spread"].line.color == by_name["min (moving average 5)"].line.color  # the band keeps its colour
    assert list(by_name["eval"].y) == [curves["eval"][s] for s in range(0, 40, 5)]  # 8 eval points: not a per-step curve
    assert "points" in by_name and len(smoothed.data) == len(fig.data) + 2  # markers are not a curve
    assert len(viz.smooth_curves(smoothed).data) == len(smoothed.data)  # smoothing twice changes nothing
    sft = viz.training_curve([{"train/loss": float(v)} for v in range(60)])
    assert viz.smooth_curves(sft) is sft  # the SFT curve already shows its moving average
    log_axis = viz.curves_figure({"a": {n: 1.0 / n for n in range(1, 41)}}, "t", "N", "y")
    assert viz.smooth_curves(log_axis) is log_axis  # a curve over N on a log axis is no per-step curve


def test_tick_labels_and_log_ticks_are_short():
    assert [viz.tick_label(v) for v in (0.1 + 0.2, 0.125, 8192, 16384, 2e6, 3e9, -20000)] == \
        ["0.3", "0.125", "8192", "16.4k", "2M", "3G", "-20k"]
    assert viz.log_ticks(1, 128) == [2.0**e for e in range(8)]  # N and k: powers of two
    assert len(viz.log_ticks(1, 1024)) <= viz.MAX_TICKS and viz.log_ticks(1, 1024)[-1] == 1024
    tokens = viz.log_ticks(300, 400000)
    assert [viz.tick_label(v) for v in tokens] == ["300", "1000", "3000", "10k", "30k", "100k", "300k", "1M"]
    for lo, hi in ((0.001, 5), (1, 1e9), (0.1, 2), (20000, 80000), (7, 7)):
        ticks = viz.log_ticks(lo, hi)
        assert len(ticks) <= viz.MAX_TICKS and ticks[0] <= lo and ticks[-1] >= hi


def test_readable_ticks_on_log_step_and_category_axes():
    tokens = viz.curves_figure({"smc": {300: 0.2, 5000: 0.4, 400000: 0.5}}, "t", "tokens", "accuracy")
    ax = tokens.layout.xaxis  # curves_figure applies them: not 12 ticks like "131.072k"
    assert ax.type == "log" and ax.dtick is None and list(ax.ticktext) == ["300", "1000", "3000", "10k", "30k", "100k", "300k", "1M"]
    assert list(viz.pass_at_k_figure({"p": {1: 0.1, 4: 0.3, 16: 0.5}}).layout.xaxis.ticktext) == ["1", "2", "4", "8", "16"]
    steps = viz.curves_figure({"a": {0: 0.1, 1: 0.2, 2: 0.3}}, "t", "RL step", "y", log_x=False)
    assert (steps.layout.xaxis.dtick, steps.layout.xaxis.tick0) == (1, 0)  # steps 0, 1, 2: no tick at 0.5
    assert steps.layout.yaxis.dtick is None  # fractional values keep plotly's ticks
    long_run = viz.curves_figure({"a": {s: 0.1 for s in range(40)}}, "t", "RL step", "y", log_x=False)
    assert long_run.layout.xaxis.dtick is None  # 40 steps: plotly's 0, 5, 10, ...
    bars = viz.readable_ticks(viz.range_bars_figure({str(0.1 * 3): (0.5, 0.4, 0.6), "systematic": (0.4, 0.3, 0.5)}, "t", "a"))
    assert bars.layout.xaxis.type == "category" and list(bars.layout.xaxis.ticktext) == ["0.3", "systematic"]
    assert list(bars.layout.xaxis.tickvals) == ["0.30000000000000004", "systematic"]  # the categories themselves
    plain = viz.readable_ticks(viz.range_bars_figure({"multinomial": (0.5, 0.4, 0.7)}, "t", "a"))
    assert plain.layout.xaxis.tickvals is None  # nothing to fix
    study = {"ns": [1, 2, 4], "accuracy": {"majority": {1: 0.2, 2: 0.3, 4: 0.4}}}
    chosen = viz.readable_ticks(viz.real_text_figure(study))
    assert list(chosen.layout.xaxis.tickvals) == [1, 2, 4]  # ticks a figure set itself are kept


def _styles(fig) -> dict:
    return {t.name: (t.line.color, t.line.dash) for t in fig.data if t.showlegend is not False}


def test_one_colour_per_arm_or_method_in_every_figure():
    """Issue 23: prm-sum was red in one figure and blue in the next; 04's 11 series shared a 10-colour cycle."""
    from prmlab.decoding.compare import METHODS
    from prmlab.rl.pure_arms import PURE_ARMS

    curve = {0: 0.1, 1: 0.2}
    first = _styles(viz.curves_figure({"prm-sum": curve, "verifiable": curve}, "a", "step", "y", log_x=False))
    second = _styles(viz.curves_figure({"oracle-min": curve, "prm-min": curve, "prm-sum": curve}, "b", "step", "y"))
    assert first["prm-sum"] == second["prm-sum"] == (viz.SERIES_COLORS["prm-sum"], "solid")
    assert {*PURE_ARMS, "rloo", "prime", *METHODS, "greedy"} <= set(viz.SERIES_COLORS)
    assert len(set(viz.SERIES_COLORS.values())) == len(viz.SERIES_COLORS)  # one colour each
    # 04: method x scorer, the scorer as dash; more series than any 10-colour cycle, no two alike
    scored = [f"{m} [{s}]" for m in ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority")
              for s in ("prm", "oracle", "likelihood")] + ["best_of_n_t0.5 [prm]", "best_of_n_t0.7 [prm]"]
    names = scored + ["majority", "majority_t0.5", "majority_t0.7", "greedy", "smc [prm_mc_soft]"]
    summary = {n: {1: (0.5, 0.4, 0.6), 2: (0.6, 0.5, 0.7)} for n in names}
    styles = _styles(viz.mean_curves_figure(summary, "c", "N", "acc"))
    assert len(styles) == len(names) > 20 and len(set(styles.values())) == len(names)
    assert styles["smc [oracle]"][0] == styles["smc [prm]"][0] == viz.SERIES_COLORS["smc"]
    assert {styles[f"{m} [oracle]"][1] for m in ("smc", "dvts", "best_of_n")} == {"dash"}
    assert styles["smc [prm_mc_soft]"][1] not in {"solid", "dash", "dot"}  # a scorer of its own: a dash of its own
    # a name outside the mapping keeps its colour from figure to figure; seeds of one arm share its colour
    alone = _styles(viz.curves_figure({"PRM-oracle (min)": curve}, "d", "N", "acc"))
    beside = _styles(viz.curves_figure({"majority vote": curve, "PRM-oracle (min)": curve}, "e", "N", "acc"))
    assert alone["PRM-oracle (min)"] == beside["PRM-oracle (min)"]
    seeds = viz.series_styles(["prime (seed 0)", "prime (seed 1)", "rloo (seed 0)"])
    assert seeds["prime (seed 0)"][0] == seeds["prime (seed 1)"][0] == viz.SERIES_COLORS["prime"]
    assert seeds["prime (seed 0)"][1] != seeds["prime (seed 1)"][1] and seeds["rloo (seed 0)"][1] == "solid"
