"""Plotly figures and ipywidgets explorers used by the notebooks."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import zlib
from collections import Counter

import numpy as np
import plotly.colors
import plotly.graph_objects as go

KIND_COLORS = {
    "ok": "#2ca02c",
    "arithmetic": "#d62728",
    "misconception": "#e377c2",
    "carry": "#ff7f0e",
    "skipped": "#9467bd",
    "extra": "#8c564b",
    "malformed": "#7f7f7f",
}


# One colour per arm or method in every figure: one mapping, name -> colour, from one palette of distinct
# colours (24, more than any figure draws); names outside it get a colour by their hash (`series_styles`).
PALETTE = tuple(plotly.colors.qualitative.Dark24)
SERIES_COLORS = dict(zip((
    "verifiable", "prm-sum", "prm-min", "prm-min+vr", "oracle-sum", "oracle-min", "likelihood-sum", "likelihood-min",
    "rloo", "prime",  # the arms of 02 and 03 (`prmlab.rl.pure_arms`, `prmlab.rl.prime_arms`)
    "smc", "best_of_n", "beam_search", "dvts", "weighted_majority", "majority", "greedy",  # 04's methods
), PALETTE))
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SCORER_DASHES = {"prm": "solid", "oracle": "dash", "likelihood": "dot", "implicit": "dashdot"}  # 04's scorers
_SCORED = re.compile(r"(?P<key>.+) \[(?P<scorer>[^\]]+)\]")  # "<method> [<scorer>]" (04)
_SEEDED = re.compile(r"(?P<key>.+) \(seed (?P<seed>\d+)\)")  # "<arm> (seed <k>)" (03)


def _split(name: str) -> tuple[str, str]:
    """(the part of a series name that picks its colour, the part that picks its dash)."""
    m = _SCORED.fullmatch(name) or _SEEDED.fullmatch(name)
    return (m["key"], m.groupdict().get("scorer") or f"seed {m['seed']}") if m else (name, "")


def series_styles(names) -> dict[str, tuple[str, str]]:
    """``(colour, dash)`` of each series of one figure, no two alike. The colour is its arm's or method's
    (``SERIES_COLORS``; another name takes the first colour free in the figure from a place set by its
    hash, so that it too keeps its colour from figure to figure); the dash is its scorer's
    (``SCORER_DASHES``: "smc [oracle]"), else the next dash free in the figure by first appearance (a
    seed: "prime (seed 1)"); a series that would still look like another takes the next free dash."""
    parts = {n: _split(n) for n in names}
    colors = {k: SERIES_COLORS[k] for k, _ in parts.values() if k in SERIES_COLORS}
    for key, _ in parts.values():
        if key not in colors:
            start = zlib.crc32(key.encode()) % len(PALETTE)
            free = [c for c in PALETTE[start:] + PALETTE[:start] if c not in colors.values()]
            colors[key] = free[0] if free else PALETTE[start]
    dashes = {t: SCORER_DASHES.get(t, "solid") for _, t in parts.values() if t in SCORER_DASHES or t == ""}
    for _, tag in parts.values():
        if tag not in dashes:
            dashes[tag] = next((d for d in DASHES if d not in dashes.values()), DASHES[len(dashes) % len(DASHES)])
    out: dict[str, tuple[str, str]] = {}
    for name, (key, tag) in parts.items():
        tried = [(colors[key], d) for d in (dashes[tag], *DASHES)]
        out[name] = next((style for style in tried if style not in out.values()), tried[0])
    return out


def smooth(values, window: int = 20) -> np.ndarray:
    """Trailing moving average (the first points average what there is)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def training_curve(history: list[dict], key: str = "train/loss", title: str = "Training loss", window: int = 20) -> go.Figure:
    steps = np.arange(len(history))
    y = [h[key] for h in history]
    fig = go.Figure()
    fig.add_scatter(x=steps, y=y, mode="lines", name=key, line=dict(width=1, color="#c7c7c7"))
    fig.add_scatter(x=steps, y=smooth(y, window), mode="lines", name=f"{key} (moving average {window})")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=key, template="plotly_white")
    return fig


def curves_figure(curves: dict[str, dict], title: str, xaxis: str, yaxis: str, log_x: bool = True, bands: dict | None = None) -> go.Figure:
    """One line per entry of ``curves`` (label -> {x: y}), styled by ``series_styles``; optional ``bands``
    label -> {x: (lo, hi)}, each in its line's colour."""
    fig = go.Figure()
    styles = series_styles(curves)
    for label, curve in curves.items():
        xs, (color, dash) = sorted(curve), styles[label]
        fig.add_scatter(x=xs, y=[curve[x] for x in xs], mode="lines+markers", name=label,
                        line=dict(color=color, dash=dash))
        if bands and label in bands:
            b = bands[label]
            fig.add_scatter(x=xs + xs[::-1], y=[b[x][1] for x in xs] + [b[x][0] for x in xs[::-1]], fill="toself",
                            fillcolor=color, opacity=0.15, line=dict(width=0, color=color), showlegend=False,
                            hoverinfo="skip", name=f"{label} spread")
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template="plotly_white")
    if log_x:
        fig.update_xaxes(type="log")
    return readable_ticks(fig)


def pass_at_k_figure(curves: dict[str, dict[int, float]], title: str = "pass@k on the eval split") -> go.Figure:
    return curves_figure(curves, title, "k (samples per problem)", "pass@k")


def error_position_figure(by_position: dict[str, Counter], title: str = "First errors by step position") -> go.Figure:
    """Stacked bars: how many solutions first go wrong at each step index, by kind of error."""
    positions = sorted({p for c in by_position.values() for p in c})
    fig = go.Figure()
    for kind in sorted(by_position, key=lambda k: list(KIND_COLORS).index(k) if k in KIND_COLORS else 99):
        fig.add_bar(x=positions, y=[by_position[kind].get(p, 0) for p in positions], name=kind,
                    marker_color=KIND_COLORS.get(kind))
    fig.update_layout(barmode="stack", title=title, xaxis_title="step index (0 = first step; the answer line is the last)",
                      yaxis_title="solutions", template="plotly_white")
    return fig


def taxonomy_figure(counts: Counter, title: str = "Error taxonomy (first error of each solution)") -> go.Figure:
    kinds = [k for k in list(KIND_COLORS) + ["none"] if k in counts] + [k for k in counts if k not in KIND_COLORS and k != "none"]
    fig = go.Figure(go.Bar(x=kinds, y=[counts[k] for k in kinds], marker_color=[KIND_COLORS.get(k, "#1f77b4") for k in kinds]))
    fig.update_layout(title=title, xaxis_title="kind ('none': every step right)", yaxis_title="solutions", template="plotly_white")
    return fig


def first_error_probability_figure(records: list[dict], title: str = "How sure the policy was of its first wrong token") -> go.Figure:
    """Histogram, per kind of first error, of the probability the policy gave the first wrong token of
    each erring solution (`prmlab.self_certainty.first_error_probabilities`); right of 0.5: confident errors."""
    fig = go.Figure()
    for kind in [k for k in KIND_COLORS if any(r["kind"] == k for r in records)]:
        fig.add_trace(go.Histogram(x=[r["prob"] for r in records if r["kind"] == kind], name=kind,
                                   marker_color=KIND_COLORS[kind], xbins=dict(start=0, end=1, size=0.05)))
    fig.add_vline(x=0.5, line_dash="dash", line_color="#555")
    fig.update_layout(title=title, barmode="stack", xaxis_title="probability of the first wrong token under the policy",
                      yaxis_title="erring solutions", template="plotly_white")
    return fig


def render_solution(prompt: str, steps: list[str], kinds: list[str] | None = None, scores: list[float] | None = None,
                    correct: bool | None = None) -> str:
    """HTML of one solution: each step with the oracle's verdict and, if given, a score (e.g. PRM reward)."""
    rows = []
    for i, text in enumerate(steps):
        kind = kinds[i] if kinds and i < len(kinds) else None
        color = KIND_COLORS.get(kind, "#333") if kind else "#333"
        verdict = "" if kind is None else ("✓" if kind == "ok" else f"✗ {kind}")
        score = "" if scores is None or i >= len(scores) else f"{scores[i]:.3f}"
        bar = "" if score == "" else f"<div style='background:#1f77b4;height:8px;width:{max(0.0, min(1.0, scores[i])) * 80:.0f}px'></div>"
        rows.append(f"<tr><td style='color:#999'>{i}</td><td style='font-family:monospace'>{html.escape(text)}</td>"
                    f"<td style='color:{color}'>{verdict}</td><td>{score}</td><td>{bar}</td></tr>")
    head = "<tr><th>#</th><th>step</th><th>oracle</th>" + ("<th>score</th><th></th>" if scores is not None else "<th></th><th></th>") + "</tr>"
    outcome = "" if correct is None else (
        "<b style='color:#2ca02c'>final answer correct</b>" if correct else "<b style='color:#d62728'>final answer wrong</b>")
    return (f"<div><pre style='margin:0'>{html.escape(prompt)}</pre><table>{head}{''.join(rows)}</table>{outcome}</div>")


def render_item(item: dict) -> str:
    """HTML of one explorer item (its title, then ``render_solution``)."""
    title = f"<h4 style='margin:4px 0'>{html.escape(item['title'])}</h4>" if item.get("title") else ""
    return title + render_solution(item["prompt"], item["steps"], item.get("kinds"), item.get("scores"), item.get("correct"))


def static_items(items: list[dict], count: int = 3) -> str:
    """The first ``count`` items as static HTML: what viewers without a live kernel show of an explorer."""
    shown = items[:count]
    note = (f"<p style='color:#777'><i>Static view: the first {len(shown)} of {len(items)} solutions "
            "(the slider needs a live kernel).</i></p>")
    return note + "".join(render_item(it) for it in shown)


def solution_explorer(items: list[dict], static_count: int = 3):
    """A widget to page through solutions. Each item: prompt, steps, and optionally kinds, scores, correct,
    title. Returns an ipywidgets VBox (a slider and the rendered solution) that also carries a static
    HTML view of its first ``static_count`` items, shown where widgets cannot run (nbconvert, GitHub)."""
    import ipywidgets as widgets

    if not items:
        return widgets.HTML("<i>no solutions to show</i>")
    view = widgets.HTML()
    slider = widgets.IntSlider(value=0, min=0, max=len(items) - 1, description="solution", continuous_update=False)

    def show(change=None):
        view.value = render_item(items[slider.value])

    slider.observe(show, names="value")
    show()
    return _with_static_html(widgets.VBox([slider, view]), static_items(items, static_count))


def _with_static_html(widget, fallback: str):
    """``widget`` whose display also offers ``fallback`` as text/html (live frontends prefer the widget)."""
    live = widget._repr_mimebundle_

    def bundle(**kwargs):
        data = live(**kwargs) or {}
        return {**data, "text/html": fallback}

    widget._repr_mimebundle_ = bundle
    return widget


def explorer_items(task, ev, count: int, scores=None, rotate: bool = False) -> list[dict]:
    """Explorer items for the first ``count`` problems of the evaluation ``ev``: one sample each
    (sample 0, or sample ``i mod n`` of problem i with ``rotate``), its steps, the oracle's verdict on
    each step where there is an oracle, and ``scores[i][j]`` (e.g. PRM rewards) if given."""
    items = []
    for i in range(min(len(ev.problems), count)):
        j = i % ev.n if rotate else 0
        text = ev.solutions(i)[j]
        v = ev.verdicts[i][j] if ev.verdicts is not None else None
        item = dict(title=f"eval problem {i}, sample {j}", prompt=task.prompt(ev.problems[i]), steps=task.split_steps(text),
                    kinds=list(v.kinds) if v else None, correct=bool(ev.correct[i, j]))
        if scores is not None:
            item["scores"] = list(scores[i][j])
        items.append(item)
    return items


def genealogy_figure(smc_result, rewards_from_log_potential=None, title: str = "Particle genealogy") -> go.Figure:
    """Which particles survived, split and died at each SMC step.

    Node (t, i) is slot i after step t, coloured by its PRM reward and sized by its weight; an edge joins
    it to the slot it descends from at step t - 1. Lineages of the final particles are drawn dark, those
    that died out light. ``rewards_from_log_potential`` maps log-potentials back to rewards (default:
    the logistic function, for the logit potential)."""
    from .decoding.smc import lineage

    to_reward = rewards_from_log_potential or (lambda lg: 1.0 / (1.0 + np.exp(-lg)))
    hist = smc_result.history
    n = len(hist[0].ancestors) if hist else 0
    alive_edges = set()
    for i in range(n):
        slots = lineage(smc_result, i)
        for t in range(1, len(slots)):
            alive_edges.add((t, int(slots[t - 1]), int(slots[t])))
    lines = {True: ([], []), False: ([], [])}
    for t, rec in enumerate(hist, start=1):
        if t == 1:
            continue  # step 1's parents are the empty initial particles
        for i, a in enumerate(rec.ancestors):
            xs, ys = lines[(t, int(a), i) in alive_edges]
            xs += [t - 1, t, None]
            ys += [int(a), i, None]
    fig = go.Figure()
    for survived, (xs, ys) in ((False, lines[False]), (True, lines[True])):
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=True,
                        name="lineage of a final particle" if survived else "lineage that died out",
                        line=dict(color="#1f77b4" if survived else "#d9d9d9", width=2 if survived else 1))
    xs, ys, colors, sizes, texts = [], [], [], [], []
    for t, rec in enumerate(hist, start=1):
        w = np.exp(np.asarray(rec.log_weights, dtype=float))
        r = to_reward(np.asarray(rec.log_potentials, dtype=float))
        for i in range(n):
            xs.append(t)
            ys.append(i)
            colors.append(float(r[i]) if np.isfinite(r[i]) else 0.0)
            sizes.append(6 + 30 * float(w[i]) ** 0.5)
            texts.append(f"step {t}, slot {i}<br>reward {r[i]:.3f}<br>weight {w[i]:.3f}<br>"
                         f"{'extended' if rec.alive[i] else 'finished'}{'; resampled before' if rec.resampled else ''}")
    fig.add_scatter(x=xs, y=ys, mode="markers", text=texts, hoverinfo="text", name="particle",
                    marker=dict(color=colors, size=sizes, colorscale="RdYlGn", cmin=0, cmax=1,
                                colorbar=dict(title="PRM reward"), line=dict(width=0.5, color="#555")))
    fig.update_layout(title=title, xaxis_title="SMC step", yaxis_title="particle slot", template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    return fig


# ----------------------------------------------------------------------------------------------
# Tables and summary figures.


def html_table(rows: list[dict], columns=None, title: str | None = None, fmt: str = ".3f",
               formats: dict | None = None) -> str:
    """An HTML table of ``rows`` (dicts; ``columns`` default to the keys of all rows, in order of first
    appearance). Floats are formatted by ``fmt``, or by ``formats[column]`` where given; other values
    as text."""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    formats = formats or {}

    def cell(column, value):
        text = format(value, formats.get(column, fmt)) if isinstance(value, float) else ("" if value is None else str(value))
        return f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(c, r.get(c)) for c in columns) + "</tr>" for r in rows)
    caption = f"<h4>{html.escape(title)}</h4>" if title else ""
    return f"{caption}<table><tr>{head}</tr>{body}</table>"


def mean_curves_figure(summary: dict[str, dict], title: str, xaxis: str, yaxis: str, bands: bool = True,
                       log_x: bool = True) -> go.Figure:
    """``curves_figure`` of a summary label -> {x: (mean, min, max)}: the means, and the min-max band."""
    curves = {label: {x: v[0] for x, v in c.items()} for label, c in summary.items()}
    spread = {label: {x: (v[1], v[2]) for x, v in c.items()} for label, c in summary.items()} if bands else None
    return curves_figure(curves, title, xaxis, yaxis, log_x=log_x, bands=spread)


def range_bars_figure(summary: dict[str, tuple], title: str, yaxis: str) -> go.Figure:
    """One bar per label of ``summary`` label -> (mean, min, max), the error bar spanning min to max."""
    means = [v[0] for v in summary.values()]
    fig = go.Figure(go.Bar(x=list(summary), y=means, error_y=dict(
        type="data", symmetric=False, array=[v[2] - v[0] for v in summary.values()],
        arrayminus=[v[0] - v[1] for v in summary.values()])))
    fig.update_layout(title=title, yaxis_title=yaxis, template="plotly_white")
    return fig


def summary_bars_figure(rows: list[dict], columns: list[str], label: str, title: str) -> go.Figure:
    """One panel per column of ``columns`` measured in ``rows`` (e.g. `prmlab.rl.arms.arm_summary`'s), a
    bar per row named by its ``label`` in its ``series_styles`` colour, the error bar ``<column> se``."""
    from plotly.subplots import make_subplots

    columns = [c for c in columns if any(c in r for r in rows)]
    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=columns)
    styles = series_styles([r[label] for r in rows])

    def finite(x):  # plotly draws no error bar for None
        return x if x is not None and math.isfinite(x) else None

    for col, column in enumerate(columns, start=1):
        for r in rows:
            fig.add_bar(x=[r[label]], y=[finite(r.get(column))], name=r[label], legendgroup=r[label],
                        marker_color=styles[r[label]][0], showlegend=col == 1, row=1, col=col,
                        error_y=dict(type="data", array=[finite(r.get(f"{column} se"))]))
    fig.update_layout(title=title, template="plotly_white", barmode="group")
    return fig


def loss_curves_figure(histories: dict[str, list[dict]], title: str, key: str = "train/loss",
                       yaxis: str = "binary cross-entropy") -> go.Figure:
    """One training curve per model (its ``key`` at every step)."""
    curves = {name: {i: h[key] for i, h in enumerate(hist)} for name, hist in histories.items()}
    return curves_figure(curves, title, "step", yaxis, log_x=False)


def label_quality_figure(quality: list[dict], measures=("agreement", "bad_precision", "bad_recall")) -> go.Figure:
    """Monte Carlo label quality against the oracle (rows of ``LabelSet.quality``) by tokens sampled."""
    mc = [r for r in quality if r["labels"] == "mc"]
    return curves_figure({m: {r["tokens"]: r[m] for r in mc} for m in measures},
                         "Monte Carlo labels against the oracle, by cost", "tokens sampled (N = 1, 2, 4, ...)", "")


def picks_figure(profiles: dict[str, dict], title: str = "What best-of-N picks, against all samples") -> go.Figure:
    """Share of solutions by first-error kind (left) and by number of steps (right), for all samples and
    for each scorer's picks (``prmlab.prm.reranking.picks_profiles``)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("first error ('none': every step right)", "steps"))
    kinds = [k for k in ["none", *KIND_COLORS] if any(k in p["first_error"] for p in profiles.values())]
    kinds += sorted({k for p in profiles.values() for k in p["first_error"]} - set(kinds))
    lengths = sorted({n for p in profiles.values() for n in p["steps"]})
    styles = series_styles(profiles)
    for label, p in profiles.items():
        color = styles[label][0]
        for col, (counts, xs) in enumerate(((p["first_error"], kinds), (p["steps"], lengths)), start=1):
            total = max(sum(counts.values()), 1)
            fig.add_bar(x=[str(x) for x in xs], y=[counts.get(x, 0) / total for x in xs], name=label, legendgroup=label,
                        marker_color=color, showlegend=col == 1, row=1, col=col)
    fig.update_layout(title=title, barmode="group", template="plotly_white", yaxis_title="share of solutions")
    return fig


REAL_TEXT_LABELS = {
    "random": "random choice",
    "best_of_n_verifier": "best-of-N (verifier)",
    "majority": "majority vote",
    "weighted_majority_verifier": "weighted majority (verifier)",
    "oracle": "oracle pass@N",
}


def real_text_figure(study: dict, title: str = "GSM8K real solutions: accuracy vs N (test questions)") -> go.Figure:
    """Accuracy against N for each selection method of `prmlab.real_text.gsm8k_real_text_study`."""
    fig = go.Figure()
    styles = series_styles(study["accuracy"])
    for method, acc in study["accuracy"].items():
        ns = sorted(acc)
        dash = "dot" if method in ("random", "oracle") else None
        fig.add_scatter(x=ns, y=[acc[n] for n in ns], mode="lines+markers", name=REAL_TEXT_LABELS.get(method, method),
                        line=dict(dash=dash, color=styles[method][0]))
    fig.update_layout(title=title, xaxis_title="N (solutions per question)", yaxis_title="accuracy",
                      xaxis=dict(type="log", tickvals=study["ns"], ticktext=[str(n) for n in study["ns"]]),
                      template="plotly_white")
    return fig


# ----------------------------------------------------------------------------------------------
# Readable figures: per-step curves smoothed, tick labels a person can read. ``prmlab report`` applies
# both to every logged figure (older runs' too); ``curves_figure`` applies the ticks when it draws.

SMOOTH_MIN_POINTS = 20  # a line of at least this many points on a linear x axis is a noisy per-step curve
MOVING_AVERAGE = "moving average"  # in the name of a smoothed trace: a figure showing one is left alone
MAX_TICKS = 10


def smoothing_window(n: int) -> int:
    """The moving-average window for a curve of ``n`` points: 20 (the SFT curve's) for long curves,
    about an eighth of shorter ones (40 RL steps: 5), never under 3."""
    return min(20, max(3, n // 8))


def trace_values(values) -> list:
    """A trace's x or y as a list, decoding plotly's typed arrays (``{"dtype", "bdata"}`` in logged JSON)."""
    if values is None:
        return []
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _axis_key(trace, letter: str) -> str:
    """The layout key of the ``letter`` ("x" or "y") axis ``trace`` is drawn on: "xaxis", "yaxis2", ..."""
    ref = getattr(trace, f"{letter}axis", None) or letter
    return f"{letter}axis{ref[1:]}"


def _is_step_curve(fig: go.Figure, trace) -> bool:
    """A line (not a band, not a broken line) of many points, x increasing, on a linear x axis."""
    if trace.type not in ("scatter", "scattergl") or "lines" not in (trace.mode or "lines"):
        return False
    if trace.fill not in (None, "none") or fig.layout[_axis_key(trace, "x")].type in ("log", "category", "date"):
        return False
    x, y = trace_values(trace.x), trace_values(trace.y)
    if len(y) < SMOOTH_MIN_POINTS or len(x) != len(y) or not all(_number(v) for v in x + y):
        return False
    return all(b > a for a, b in zip(x, x[1:]))


def _colorway(fig: go.Figure) -> list:
    import plotly.colors

    return list(fig.layout.colorway or fig.layout.template.layout.colorway or plotly.colors.DEFAULT_PLOTLY_COLORS)


def smooth_curves(fig: go.Figure) -> go.Figure:
    """``fig`` with each noisy per-step curve (``SMOOTH_MIN_POINTS`` or more points on a linear x axis)
    drawn faint under its trailing moving average (``smooth``, window ``smoothing_window``) in the same
    colour, as ``training_curve`` draws the SFT loss. Other traces keep their colours; a figure that
    already shows a moving average is returned unchanged."""
    if any(MOVING_AVERAGE in (t.name or "") for t in fig.data) or not any(_is_step_curve(fig, t) for t in fig.data):
        return fig
    colors = _colorway(fig)
    traces = []
    for i, t in enumerate(fig.data):
        # plotly colours an uncoloured trace by its index: pin it, since the faint copies shift indices
        color = (t.line.color if t.type.startswith("scatter") else None) or colors[i % len(colors)]
        if not _is_step_curve(fig, t):
            if t.type.startswith("scatter") and t.line.color is None:
                t = type(t)(t, line_color=color)
            traces.append(t)
            continue
        x, y, name = trace_values(t.x), trace_values(t.y), t.name or "value"
        window = smoothing_window(len(y))
        common = dict(x=x, mode="lines", legendgroup=name, xaxis=t.xaxis, yaxis=t.yaxis)
        traces.append(go.Scatter(y=y, name=f"{name} (per step)", showlegend=False, opacity=0.35,
                                 line=dict(color=color, width=1), **common))
        traces.append(go.Scatter(y=smooth(y, window), name=f"{name} ({MOVING_AVERAGE} {window})",
                                 line=dict(color=color, width=2, dash=t.line.dash), **common))
    return go.Figure(traces, layout=fig.layout)


def tick_label(v: float) -> str:
    """A short tick label: at most 4 significant digits; k from 10 000, M from a million, G from a
    billion (0.30000000000000004 -> "0.3", 8192 -> "8192", 16384 -> "16.4k", 2e6 -> "2M")."""
    for div, unit, start in ((1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
        if abs(v) >= start:
            return f"{v / div:.3g}{unit}"
    return f"{v:.4g}"


def log_ticks(lo: float, hi: float, most: int = MAX_TICKS) -> list[float]:
    """Tick values for a log axis showing [lo, hi] (lo > 0), from the tick at or below lo to the one
    at or above hi: powers of two for counts up to 8192 (N, k), else 1-2-5, 1-3 or 1 per decade,
    the first of these that gives at most ``most``; then every other (third, ...) one if still more."""
    def span(ticks):
        first = max(i for i, v in enumerate(ticks) if v <= lo * (1 + 1e-9))
        last = min(i for i, v in enumerate(ticks) if v >= hi * (1 - 1e-9))
        return ticks[first:last + 1]

    if hi <= 8192 and hi / lo <= 2.0**most:
        ticks = span([2.0**e for e in range(math.floor(math.log2(lo)), math.ceil(math.log2(hi)) + 1)])
    else:
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for mantissas in ((1, 2, 5), (1, 3), (1,)):
            ticks = span([m * 10.0**e for e in decades for m in mantissas])
            if len(ticks) <= most:
                break
    return ticks[:: math.ceil(len(ticks) / most)]


def _axis_values(fig: go.Figure, key: str) -> tuple[list, bool]:
    """(values of the traces drawn on axis ``key``, whether all of them are scatter traces)."""
    letter = key[0]
    on_axis = [t for t in fig.data if _axis_key(t, letter) == key]
    values = [v for t in on_axis for v in trace_values(getattr(t, letter, None)) if v is not None]
    return values, all(t.type.startswith("scatter") for t in on_axis)


def readable_ticks(fig: go.Figure) -> go.Figure:
    """``fig`` with readable tick labels on every axis whose ticks were not set explicitly (in place):
    a log axis gets ``log_ticks`` labelled by ``tick_label`` (not 12 ticks like "131.072k"); a linear
    axis of lines over few whole numbers (steps 0..3) ticks at whole numbers only (not "0.5"); numbers
    used as categories are labelled by ``tick_label`` ("0.3", not "0.30000000000000004")."""
    keys = {_axis_key(t, letter) for t in fig.data for letter in "xy"}
    for key in sorted(keys):
        ax = fig.layout[key]
        if ax.tickvals is not None:
            continue
        values, lines = _axis_values(fig, key)
        numbers = [float(v) for v in values if _number(v)]
        if ax.type == "log" and any(v > 0 for v in numbers):
            positive = [v for v in numbers if v > 0]
            ticks = log_ticks(min(positive), max(positive))
            ax.update(dtick=None, tick0=None, tickmode="array", tickvals=ticks, ticktext=[tick_label(v) for v in ticks])
        elif values and all(isinstance(v, str) for v in values) and ax.type in (None, "-", "category"):
            categories = list(dict.fromkeys(values))
            labels = [tick_label(float(c)) if _float_text(c) else c for c in categories]
            if labels != categories:
                ax.update(type="category", tickmode="array", tickvals=categories, ticktext=labels)
        elif (lines and numbers and len(numbers) == len(values) and ax.dtick is None and ax.type in (None, "-", "linear")
              and all(v == int(v) for v in numbers) and max(numbers) - min(numbers) <= MAX_TICKS):
            ax.update(tick0=0, dtick=1)
    return fig


def _float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Showing figures so that static viewers see them too.

_plotlyjs_shown = False  # plotly.js goes into the first figure's HTML of a kernel, once


def figure_bundle(fig: go.Figure) -> dict:
    """The display data of ``fig``: plotly's own mimetype (live frontends) and HTML for static
    viewers (nbconvert, GitHub), plotly.js inlined in the first figure shown by this process."""
    global _plotlyjs_shown
    html_view = fig.to_html(full_html=False, include_plotlyjs=not _plotlyjs_shown, default_height=525)
    _plotlyjs_shown = True
    return {"application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/html": html_view}


def show(fig: go.Figure) -> None:
    """Display ``fig`` in the notebook with its static HTML view (``figure_bundle``)."""
    from IPython.display import display

    display(figure_bundle(fig), raw=True)
