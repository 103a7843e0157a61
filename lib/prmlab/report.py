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


def _claims(run) -> str:
    """The run's headline read-out, each claim marked held or not; else its headline/ metrics."""
    note = run.data.tags.get(tracking.NOTE_TAG, "").strip()
    if note:
        items = []
        for line in note.splitlines():
            line = line.strip().removeprefix("- ").strip()
            if line:
                held = "no" if re.search(r"\bdoes not hold\b|\bnot held\b", line) else (
                    "yes" if re.search(r"\bholds?\b|\bheld\b", line) else "")
                items.append(f"<li class='held-{held or 'na'}'>{html.escape(line)}</li>")
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


def _run_line(run) -> str:
    info, tags = run.info, run.data.tags
    dirty = " (dirty)" if tags.get(f"{tracking.TAG_PREFIX}git_dirty") == "true" else ""
    return (f"run <code>{html.escape(info.run_name)}</code> ({info.run_id}), {_when(info.start_time)}, "
            f"commit {html.escape(tags.get(f'{tracking.TAG_PREFIX}git_commit', '?')[:10])}{dirty}")


def _notebook(nb: Path, profile: str, workdir: Path) -> tuple[str, str]:
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
           f"</span></td><td>{_claims(run)}{progress}</td></tr>")
    section = (f"<h2 id='{name}'>{name}</h2><p>{html.escape(purpose(nb))}</p>{progress}<p>{_run_line(run)}</p>"
               f"<details><summary>parameters</summary><p class='p'>{html.escape(params)}</p></details>"
               f"{figs}{_metrics_table(run.data.metrics)}")
    return row, section


def write_report(profile: str = "tiny", out: str | Path | None = None) -> Path:
    """Write the summary for ``profile``'s runs; notebooks without a finished run say what to run."""
    import plotly.offline

    check_profile(profile)
    out = Path(out) if out else reports_dir() / f"summary-{profile}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, sections = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in available_notebooks():
            row, section = _notebook(nb, profile, Path(tmp))
            rows.append(row)
            sections.append(section)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>prmlab summary ({profile})</title>
<script>{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table.m td,table.m th{{padding:2px 10px;text-align:left}}
.p{{font-family:monospace;font-size:12px}} .fig{{margin:10px 0}} table.box{{border-collapse:collapse;width:100%}}
table.box td{{border:1px solid #ccc;padding:6px 10px;vertical-align:top}} .claims{{margin:0;padding-left:18px}}
.held-yes::marker{{content:"✔ ";color:#1a7f37}} .held-no::marker{{content:"✘ ";color:#cf222e}} .running{{color:#9a6700}}</style>
</head><body>
<h1>prmlab: latest runs, profile <code>{html.escape(profile)}</code></h1>
<p>Tracking store: <code>{html.escape(tracking.tracking_uri())}</code>. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>
<h2>Headlines</h2><table class="box"><tr><th>notebook</th><th>headline (latest finished run)</th></tr>{''.join(rows)}</table>
{''.join(sections)}</body></html>"""
    out.write_text(page)
    return out
