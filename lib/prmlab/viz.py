"""Plotly figures and ipywidgets explorers used by the notebooks."""

from __future__ import annotations

import html
from collections import Counter

import numpy as np
import plotly.graph_objects as go

KIND_COLORS = {
    "ok": "#2ca02c",
    "arithmetic": "#d62728",
    "carry": "#ff7f0e",
    "skipped": "#9467bd",
    "extra": "#8c564b",
    "malformed": "#7f7f7f",
}


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
    """One line per entry of ``curves`` (label -> {x: y}); optional ``bands`` label -> {x: (lo, hi)}."""
    fig = go.Figure()
    for label, curve in curves.items():
        xs = sorted(curve)
        fig.add_scatter(x=xs, y=[curve[x] for x in xs], mode="lines+markers", name=label)
        if bands and label in bands:
            b = bands[label]
            fig.add_scatter(x=xs + xs[::-1], y=[b[x][1] for x in xs] + [b[x][0] for x in xs[::-1]], fill="toself",
                            opacity=0.15, line=dict(width=0), showlegend=False, hoverinfo="skip", name=f"{label} spread")
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template="plotly_white")
    if log_x:
        fig.update_xaxes(type="log", dtick=np.log10(2))
    return fig


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


def solution_explorer(items: list[dict]):
    """A widget to page through solutions. Each item: prompt, steps, and optionally kinds, scores, correct,
    title. Returns an ipywidgets VBox (a slider and the rendered solution)."""
    import ipywidgets as widgets

    if not items:
        return widgets.HTML("<i>no solutions to show</i>")
    view = widgets.HTML()
    slider = widgets.IntSlider(value=0, min=0, max=len(items) - 1, description="solution", continuous_update=False)

    def show(change=None):
        it = items[slider.value]
        title = f"<h4 style='margin:4px 0'>{html.escape(it.get('title', ''))}</h4>" if it.get("title") else ""
        view.value = title + render_solution(it["prompt"], it["steps"], it.get("kinds"), it.get("scores"), it.get("correct"))

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, view])


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
