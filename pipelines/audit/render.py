"""The lineage chain of `pipelines.audit.trace` as Markdown or a self-contained HTML page."""

from __future__ import annotations

import html
import json
from typing import Any


def _offsets(ranges: Any) -> str:
    if not ranges:
        return "-"
    if isinstance(ranges, dict):
        return ", ".join(f"p{p}: {r}" for p, r in sorted(ranges.items()))
    return json.dumps(ranges)


def _run_line(label: str, run: dict[str, Any] | None) -> str:
    if not run:
        return f"- {label}: none recorded"
    if "error" in run:
        return f"- {label}: `{run['run_id']}` ({run['error']})"
    return f"- {label}: [{run.get('name') or run['run_id']}]({run['link']}) `{run['run_id']}` ({run['status']})"


def markdown(chain: dict[str, Any]) -> str:
    m, d, t, o, g = chain["model"], chain["dataset"], chain["training"], chain["optimization"], chain["gate"]
    lines = [f"# Lineage of {m['name']} version {m['version']}", ""]
    now = chain["now"]
    lines += [f"**Serving now:** aliases {', '.join(now['aliases']) or 'none'}", ""]
    lines += [
        "## Data",
        f"- lakeFS `{d['repository']}` commit `{d['commit']}` (spec `{d['spec']}`, hash `{d['spec_hash']}`)",
    ]
    lines += [
        "",
        "| batch | dataset version | topic | offset ranges | events | quarantined | validation | Data Docs | run |",
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for b in d["batches"]:
        lines.append(
            f"| `{b['commit'][:12]}` | {b['version']} | {b['topic']} | {_offsets(b['offset_ranges'])} | {b['events']} "
            f"| {b['quarantined']} | {b['validation']} | {b['data_docs'] or '-'} | `{b['dagster_run_id']}` |"
        )
    lines += ["", "## Training", _run_line("MLflow run", t)]
    if t and "params" in t:
        lines.append(f"- code version `{t['code_version']}`")
        lines.append(
            f"- metrics: {', '.join(f'{k}={v}' for k, v in sorted(t['metrics'].items()) if 'test' in k) or '-'}"
        )
    lines += ["", "## Optimization", _run_line("MLflow run", o["run"]), f"- chosen: **{o['chosen']}** ({o['reason']})"]
    for name, row in sorted((o["candidates"] or {}).items()):
        lines.append(f"  - {name}: AUC {row.get('auc')}, p50 {row.get('p50_b1_ms')} ms, {row.get('size_bytes')} bytes")
    lines += ["", "## Gate", f"- decision: **{g['decision']}** against champion {g['champion_version'] or 'none'}"]
    lines += [f"- reason: {g['reason']}", _run_line("report run", g["report_run"])]
    lines += ["", "## Rollout"]
    lines += [f"- `{k}`: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in chain["rollout"].items()] or [
        "- none"
    ]
    deployments = chain.get("deployments") or []
    if deployments:
        lines += ["", "| deployment run | strategy | steps (%) | state | traffic | previous champion | message |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for d in deployments:
            lines.append(
                f"| `{d['dagster_run_id'][:8]}` | {d.get('strategy')} | {d.get('steps')} | {d.get('state')} "
                f"| {json.dumps(d.get('traffic'))} | {d.get('previous_version') or '-'} | {d.get('message') or ''} |"
            )
    lines += ["", "## Dagster runs", "| run | job | status | trigger |", "|---|---|---|---|"]
    for r in chain["dagster_runs"].values():
        link = f"[`{r['run_id'][:8]}`]({r['link']})" if r.get("link") else f"`{r['run_id'][:8]}`"
        lines.append(f"| {link} | {r.get('job', '-')} | {r['status']} | {r.get('trigger', '-')} |")
    return "\n".join(lines) + "\n"


def html_page(chain: dict[str, Any]) -> str:
    """A standalone page: the Markdown text in <pre> plus the raw chain, no scripts, no external assets."""
    m = chain["model"]
    title = html.escape(f"Lineage of {m['name']} v{m['version']}")
    body = html.escape(markdown(chain))
    raw = html.escape(json.dumps(chain, indent=2, sort_keys=True, default=str))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{white-space:pre-wrap}</style></head>"
        f"<body><h1>{title}</h1><pre>{body}</pre><details><summary>raw chain (JSON)</summary><pre>{raw}</pre>"
        "</details></body></html>\n"
    )
