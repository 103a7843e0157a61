"""An HTML summary of the latest finished run of every notebook (``prmlab report``, ``make demo``).

One self-contained file: plotly.js is embedded once and every figure is rebuilt from the JSON the run
logged, so the report opens offline.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from . import tracking
from .paths import reports_dir
from .runner import available_notebooks

# the numbers the issues ask to report (headline/...) and the evaluations; a curve shows its value at its last step
SHOWN_METRIC_PREFIXES = ("headline/", "eval/", "acc/", "sensitivity/", "label/", "bon/", "real/", "perf/", "model/")


def _metrics_table(metrics: dict) -> str:
    rows = [(k, v) for k, v in sorted(metrics.items()) if k.startswith(SHOWN_METRIC_PREFIXES)]
    if not rows:
        return "<p><i>no metrics</i></p>"
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in rows)
    return f"<table class='m'><tr><th>metric</th><th>value</th></tr>{body}</table>"


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
        fig = pio.from_json(Path(local).read_text())
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return out


def write_report(profile: str = "tiny", out: str | Path | None = None) -> Path:
    """Write the summary for ``profile``'s runs; notebooks without a finished run are listed as such."""
    import tempfile

    import plotly.offline

    out = Path(out) if out else reports_dir() / f"summary-{profile}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in available_notebooks():
            try:
                run = tracking.latest_run(nb.stem, profile)
            except tracking.NoRunError as e:
                sections.append(f"<h2>{nb.stem}</h2><p><i>{html.escape(str(e))}</i></p>")
                continue
            info, data = run.info, run.data
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.start_time / 1000))
            params = ", ".join(f"{k}={v}" for k, v in sorted(data.params.items()))
            figs = "".join(f"<div class='fig'>{f}</div>" for f in _figures(run, Path(tmp) / info.run_id))
            sections.append(
                f"<h2>{nb.stem}</h2><p>run <code>{info.run_name}</code> ({info.run_id}), {when}, "
                f"commit {data.tags.get('prmlab.git_commit', '?')[:10]}"
                f"{' (dirty)' if data.tags.get('prmlab.git_dirty') == 'true' else ''}</p>"
                f"<details><summary>parameters</summary><p class='p'>{html.escape(params)}</p></details>"
                f"{_metrics_table(data.metrics)}{figs}"
            )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>prmlab summary ({profile})</title>
<script>{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table.m td,table.m th{{padding:2px 10px;text-align:left}}
.p{{font-family:monospace;font-size:12px}} .fig{{margin:10px 0}}</style></head><body>
<h1>prmlab: latest runs, profile <code>{html.escape(profile)}</code></h1>
<p>Tracking store: <code>{html.escape(tracking.tracking_uri())}</code>. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>
{''.join(sections)}</body></html>"""
    out.write_text(page)
    return out
