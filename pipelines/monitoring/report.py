"""The drift report as one self-contained HTML file: the decision and why, a summary table (most severe column
first), and per column (the prediction score included) the reference against the current window as inline SVG
bars over the reference bins or categories. No scripts, no external resources: it opens offline and in a
lakeFS object viewer alike."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from pipelines.lineage.records import DriftReport

_W, _H, _PAD = 460, 170, 28
_REF, _CUR = "#9aa5b1", "#d9480f"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def bars_svg(labels: list[str], ref: list[float], cur: list[float], title: str) -> str:
    """Grouped bars: reference share (grey) and current share (orange) per bin or category."""
    n = max(len(labels), 1)
    top = max([*ref, *cur, 1e-9])
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD
    slot = plot_w / n
    bar = max(slot * 0.38, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{_PAD}" y="14" font-size="12">{html.escape(title)}</text>',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
    ]
    for i, label in enumerate(labels):
        x = _PAD + i * slot
        pair = ((ref[i] if i < len(ref) else 0.0, _REF), (cur[i] if i < len(cur) else 0.0, _CUR))
        for j, (share, color) in enumerate(pair):
            h = plot_h * share / top
            parts.append(
                f'<rect x="{x + slot * 0.1 + j * bar:.1f}" y="{_H - _PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{html.escape(label)}: {"reference" if j == 0 else "current"} '
                f"{share:.2%}</title></rect>"
            )
        if n <= 16:
            short = label if len(label) <= 12 else label[:11] + "…"
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{_H - _PAD + 12}" font-size="9" text-anchor="middle">'
                f"{html.escape(short)}</text>"
            )
    parts.append(
        f'<text x="{_W - _PAD}" y="14" font-size="10" text-anchor="end"><tspan fill="{_REF}">■ reference</tspan> '
        f'<tspan fill="{_CUR}">■ current</tspan></text></svg>'
    )
    return "".join(parts)


def render(report: DriftReport) -> str:
    """The HTML text of a drift report."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.checked_at))
    color = {"drift": "#c92a2a", "no drift": "#2b8a3e"}.get(report.decision, "#868e96")
    rows = []
    for col in report.columns:
        p_text = _fmt(col.get("p_value"), 3)
        rows.append(
            "<tr{cls}><td>{name}</td><td>{kind}</td><td>{test}</td><td>{psi}</td><td>{js}</td><td>{ks}</td>"
            "<td>{p}</td><td>{pa}</td><td>{sev}</td><td>{drifted}</td><td>{n}</td><td>{unseen}</td><td>{note}</td>"
            "</tr>".format(
                cls=' class="drifted"' if col.get("drifted") else "",
                name=f'<a href="#col-{html.escape(col["name"])}">{html.escape(col["name"])}</a>',
                kind=_fmt(col.get("kind")),
                test=_fmt(col.get("test")),
                psi=_fmt(col.get("psi"), 3),
                js=_fmt(col.get("js"), 3),
                ks=_fmt(col.get("ks"), 3),
                p=p_text,
                pa=_fmt(col.get("p_adjusted"), 3),
                sev=_fmt(col.get("severity"), 3),
                drifted="yes" if col.get("drifted") else ("not judged" if not col.get("judged", True) else "no"),
                n=f"{col.get('n_cur', 0)} / {col.get('n_ref', 0)}",
                unseen=_fmt(col.get("unseen")),
                note=_fmt(col.get("note")),
            )
        )
    plots = []
    for col in report.columns:
        title = f"{col['name']} ({col.get('kind')}): PSI {col.get('psi', 0):.3f}, JS {col.get('js', 0):.3f}"
        plots.append(
            f'<figure id="col-{html.escape(col["name"])}">'
            f"{bars_svg(col.get('bins', []), col.get('ref_share', []), col.get('cur_share', []), title)}</figure>"
        )
    label = report.label
    quality = report.quality
    alerts = "".join(f"<li>{html.escape(a)}</li>" for a in quality.get("alerts", [])) or "<li>none</li>"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons) or "<li>none</li>"
    window = report.window
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {html.escape(report.spec)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ border: 1px solid #ccc; padding: 3px 6px; }}
tr.drifted td {{ background: #fff0f0; }} .decision {{ color: {color}; font-weight: bold; }}
figure {{ display: inline-block; margin: 6px; border: 1px solid #eee; }}
</style></head><body>
<h1>Drift report: {html.escape(report.spec)}</h1>
<p>Checked {when} in {report.seconds:.2f}s. Decision: <span class="decision">{html.escape(report.decision)}</span></p>
<ul>{reasons}</ul>
<p>Reference: champion {html.escape(report.model_name)} v{_fmt(report.champion_version)}, the train split at
<code>{html.escape(report.reference_uri)}</code> ({report.reference_rows} rows).
Current: the latest {window.get("valid", 0)} valid of {window.get("events", 0)} events of topic
<code>{html.escape(str(window.get("topic", "")))}</code>; {report.predictions} predictions.
Evidence commit: <code>{_fmt(report.evidence_commit)}</code></p>
<p>Decision rule: a column drifts when its test (KS / chi-squared) is significant after the
{html.escape(report.correction)} correction at alpha={report.alpha:g} over all columns judged, and PSI, JS or KS
crosses its threshold (severity = the largest effect / its threshold).</p>
<h2>Columns, most severe first</h2>
<table><tr><th>column</th><th>kind</th><th>test</th><th>PSI</th><th>JS</th><th>KS D</th><th>p</th><th>p adjusted</th>
<th>severity</th><th>drifted</th><th>n current / reference</th><th>unseen</th><th>note</th></tr>
{"".join(rows)}</table>
<h2>Labels</h2>
<p>Label rate: reference {_fmt(label.get("ref_rate"))}, current {_fmt(label.get("cur_rate"))}
(p adjusted {_fmt(label.get("p_adjusted"), 3)}; drifted: {"yes" if label.get("drifted") else "no"}).
Realized AUC on {label.get("labelled_predictions", 0)} labelled predictions: {_fmt(label.get("realized_auc"))}.</p>
<h2>Data quality</h2>
<p>Quarantined: {quality.get("quarantined", 0)} of {quality.get("events", 0)} events.
Out of the spec's range: {html.escape(str(quality.get("out_of_range", {})))}.</p><ul>{alerts}</ul>
<h2>Reference against current</h2>
{"".join(plots)}
</body></html>
"""


def write_report(report: DriftReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.rename(path)
    return path
