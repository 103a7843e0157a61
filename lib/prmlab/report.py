"""An HTML summary of the latest runs of every notebook (``prmlab report``, ``make demo``).

First a headline box: for each notebook, its headline claims read out with the measured values and
whether each held (the run's description, ``Run.set_headline``), or its ``headline/`` metrics. Then one
section per notebook: the run, its figures, and every metric in a collapsed list. A notebook whose
latest run is still RUNNING is shown as in progress.

One self-contained file: plotly.js is embedded once and every figure is rebuilt from the JSON the run
logged, so the report opens offline. Rebuilt figures are made readable (``readable_figure``): noisy
per-step curves (PRM training loss, RL metrics per step) drawn faint under their moving average, and
tick labels a person can read.
"""

from __future__ import annotations

import html
import re
import tempfile
import time
from pathlib import Path

from . import tracking
from .metrics import MIN_SEEDS, Z
from .notebooks import available_notebooks, purpose
from .paths import reports_dir
from .profiles import check_profile

CURVE_PREFIXES = ("train/",)  # per-step training curves: shown as figures, not as a last value


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def _metrics_table(metrics: dict) -> str:
    rows = [(k, v) for k, v in sorted(metrics.items()) if not k.startswith(CURVE_PREFIXES)]
    if not rows:
        return "<p><i>no metrics</i></p>"
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in rows)
    return (f"<details><summary>all metrics ({len(rows)}; a curve shows its value at its last step)</summary>"
            f"<table class='m'><tr><th>metric</th><th>value</th></tr>{body}</table></details>")


# How a headline line's verdict reads (`prmlab.headlines`), checked in this order: the first that matches
# decides, so "does not hold" is never read as "holds", nor "is within noise (...)" as held.
VERDICTS = (
    ("no", r"\bdoes not hold\b|\bnot held\b|\bis not worth its tokens\b"),
    ("noise", r"\bwithin noise\b|\bnot shown to be\b"),
    ("yes", r"\bholds?\b|\bheld\b|\bis worth its tokens\b"),
)


def verdict(line: str) -> str:
    """The class of a headline line: "yes" (held), "no" (not held), "noise" (within noise: neither shown
    nor refuted) or "na" (a line without a verdict, e.g. the arms' accuracies)."""
    return next((cls for cls, pattern in VERDICTS if re.search(pattern, line)), "na")


def _claims(run) -> str:
    """The run's headline read-out, each claim marked by its `verdict`; else its headline/ metrics."""
    note = run.data.tags.get(tracking.NOTE_TAG, "").strip()
    if note:
        lines = [line.strip().removeprefix("- ").strip() for line in note.splitlines()]
        items = [f"<li class='held-{verdict(line)}'>{html.escape(line)}</li>" for line in lines if line]
        return f"<ul class='claims'>{''.join(items)}</ul>"
    heads = {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("headline/")}
    if not heads:
        return "<i>no headline logged</i>"
    return "<br>".join(f"<code>{html.escape(k)}</code> = {v:.4g}" for k, v in heads.items())


def readable_figure(fig):
    """A logged figure as the report shows it: per-step curves smoothed, readable ticks."""
    from . import viz

    return viz.readable_ticks(viz.smooth_curves(fig))


def _figures(run, workdir: Path) -> list[str]:
    import plotly.io as pio

    c = tracking.client()
    try:
        items = c.list_artifacts(run.info.run_id, "figures")
    except Exception:  # noqa: BLE001 - a run without figures is fine
        return []
    out = []
    for item in sorted(items, key=lambda a: a.path):
        if not item.path.endswith(".json"):
            continue
        local = c.download_artifacts(run.info.run_id, item.path, str(workdir))
        fig = readable_figure(pio.from_json(Path(local).read_text()))
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return out


def ui_address() -> str:
    """Where the MLflow UI over the store serves: the tracking server, else what ``prmlab ui`` starts."""
    uri = tracking.tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def _links(run, ui: str) -> str:
    """Links to the run's page in the MLflow UI and to its executed notebook (each file under
    ``notebook/``): the file itself where the artifacts are local, else its page in the UI."""
    info = run.info
    page = f"{ui}/#/experiments/{info.experiment_id}/runs/{info.run_id}"
    links = [f"<a href='{html.escape(page)}'>MLflow run</a>"]
    try:
        notebooks = tracking.client().list_artifacts(info.run_id, "notebook")
    except Exception:  # noqa: BLE001 - a run without an executed notebook (interactive) has none to link
        notebooks = []
    local = info.artifact_uri.startswith("file:")
    for item in sorted(notebooks, key=lambda a: a.path):
        href = f"{info.artifact_uri}/{item.path}" if local else f"{page}/artifacts/{item.path}"
        links.append(f"<a href='{html.escape(href)}'>executed notebook ({html.escape(Path(item.path).suffix[1:])})</a>")
    return " · ".join(links)


def _run_line(run, ui: str) -> str:
    info, tags = run.info, run.data.tags
    dirty = " (dirty)" if tags.get(f"{tracking.TAG_PREFIX}git_dirty") == "true" else ""
    return (f"run <code>{html.escape(info.run_name)}</code> ({info.run_id}), {_when(info.start_time)}, "
            f"commit {html.escape(tags.get(f'{tracking.TAG_PREFIX}git_commit', '?')[:10])}{dirty}: {_links(run, ui)}")


def _notebook(nb: Path, profile: str, workdir: Path, ui: str) -> tuple[str, str]:
    """(headline box row, section) of notebook ``nb``."""
    name = nb.stem
    latest = tracking.latest_runs(name).get(profile)
    running = latest if latest is not None and latest.info.status == "RUNNING" else None
    progress = (f"<p class='running'>in progress: run {running.info.run_id} started {_when(running.info.start_time)}</p>"
                if running else "")
    try:
        run = tracking.latest_run(name, profile)
    except tracking.NoRunError as e:
        todo = f"<i>no finished run yet: <code>prmlab run {name[:2]} --profile {html.escape(profile)}</code></i>"
        return (f"<tr><td>{name}</td><td>{progress or todo}</td></tr>",
                f"<h2 id='{name}'>{name}</h2>{progress or f'<p><i>{html.escape(str(e))}</i></p>'}")
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.data.params.items()))
    figs = "".join(f"<div class='fig'>{f}</div>" for f in _figures(run, workdir / run.info.run_id))
    row = (f"<tr><td><a href='#{name}'>{name}</a><br><span class='p'>{run.info.run_id[:8]}, {_when(run.info.start_time)}"
           f"</span><br><span class='p'>{_links(run, ui)}</span></td><td>{_claims(run)}{progress}</td></tr>")
    section = (f"<h2 id='{name}'>{name}</h2><p>{html.escape(purpose(nb))}</p>{progress}<p>{_run_line(run, ui)}</p>"
               f"<details><summary>parameters</summary><p class='p'>{html.escape(params)}</p></details>"
               f"{figs}{_metrics_table(run.data.metrics)}")
    return row, section


def write_report(profile: str = "tiny", out: str | Path | None = None, ui: str | None = None) -> Path:
    """Write the summary for ``profile``'s runs; notebooks without a finished run say what to run. Runs
    link to the MLflow UI at ``ui`` (default `ui_address`)."""
    import plotly.offline

    check_profile(profile)
    out = Path(out) if out else reports_dir() / f"summary-{profile}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, sections, ui = [], [], (ui or ui_address()).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        for nb in available_notebooks():
            row, section = _notebook(nb, profile, Path(tmp), ui)
            rows.append(row)
            sections.append(section)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>prmlab summary ({profile})</title>
<script>{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table.m td,table.m th{{padding:2px 10px;text-align:left}}
.p{{font-family:monospace;font-size:12px}} .fig{{margin:10px 0}} table.box{{border-collapse:collapse;width:100%}}
table.box td{{border:1px solid #ccc;padding:6px 10px;vertical-align:top}} .claims{{margin:0;padding-left:18px}}
.held-yes::marker{{content:"✔ ";color:#1a7f37}} .held-no::marker{{content:"✘ ";color:#cf222e}}
.held-noise::marker{{content:"≈ ";color:#9a6700}} .running{{color:#9a6700}}</style>
</head><body>
<h1>prmlab: latest runs, profile <code>{html.escape(profile)}</code></h1>
<p>Tracking store: <code>{html.escape(tracking.tracking_uri())}</code>. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>
<h2>Headlines</h2><p>✔ held, ✘ not held, ≈ within noise (neither shown nor refuted: a difference counts beyond
{Z:g} standard errors over at least {MIN_SEEDS} seeds).</p>
<table class="box"><tr><th>notebook</th><th>headline (latest finished run)</th></tr>{''.join(rows)}</table>
{''.join(sections)}</body></html>"""
    out.write_text(page)
    return out
