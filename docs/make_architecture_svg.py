"""Writes docs/architecture.svg, the picture of the loop in the README (no graphviz: plain SVG by hand).

    python docs/make_architecture_svg.py

Edit the boxes and arrows below and rerun; tests/unit/test_docs.py checks the committed file is current.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).with_name("architecture.svg")
W, H = 1100, 560
BOX_W, BOX_H = 170, 56

# name -> (x, y, title, subtitle, kind); kind picks the colour: system (a server), asset (a Dagster asset/sensor)
BOXES: dict[str, tuple[int, int, str, str, str]] = {
    "producers": (30, 70, "producers", "flywheel produce / your apps", "system"),
    "kafka": (240, 70, "Kafka", "events topic", "system"),
    "raw": (450, 70, "raw_events", "event check, quarantine", "asset"),
    "features": (660, 70, "features", "Spark Connect", "asset"),
    "validated": (870, 70, "validated_dataset", "Great Expectations (blocking)", "asset"),
    "lakefs": (870, 200, "lakeFS main", "commit + Kafka offsets", "system"),
    "trained": (660, 200, "trained_model", "DDP on a pinned commit", "asset"),
    "optimized": (450, 200, "optimized_model", "int8, pruned, distilled, ONNX", "asset"),
    "evaluated": (240, 200, "evaluated_model", "gate: alias challenger", "asset"),
    "mlflow": (30, 200, "MLflow", "runs, versions, aliases", "system"),
    "deployment": (30, 330, "deployment", "starts the rollout", "asset"),
    "serving": (240, 330, "flywheel serve", "champion + canary arms", "system"),
    "online": (240, 450, "online store", "Redis: aggregates", "system"),
    "predictions": (450, 330, "predictions topic", "every answer logged", "system"),
    "canary": (450, 450, "canary_analysis", "sensor: promote / roll back", "asset"),
    "drift": (660, 330, "drift_sensor", "PSI, KS, chi2; guarded", "asset"),
    "retrain": (870, 330, "pipeline_job", "ingest + retrain", "asset"),
}
ARROWS: list[tuple[str, str, str]] = [
    ("producers", "kafka", ""),
    ("kafka", "raw", ""),
    ("raw", "features", ""),
    ("features", "validated", ""),
    ("validated", "lakefs", "merge"),
    ("lakefs", "trained", ""),
    ("trained", "optimized", ""),
    ("optimized", "evaluated", ""),
    ("evaluated", "mlflow", ""),
    ("mlflow", "deployment", ""),
    ("deployment", "serving", ""),
    ("online", "serving", ""),
    ("serving", "predictions", ""),
    ("predictions", "canary", ""),
    ("predictions", "drift", ""),
    ("drift", "retrain", ""),
    ("retrain", "lakefs", ""),
]
FILL = {"system": "#e8f0fe", "asset": "#fef7e0"}
STROKE = {"system": "#1a73e8", "asset": "#e37400"}


def _centre(name: str) -> tuple[float, float]:
    x, y, *_ = BOXES[name]
    return x + BOX_W / 2, y + BOX_H / 2


def _edge_point(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre towards a point leaves the box."""
    cx, cy = _centre(name)
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min(
        (BOX_W / 2) / abs(dx) if dx else float("inf"),
        (BOX_H / 2) / abs(dy) if dy else float("inf"),
    )
    return cx + dx * scale, cy + dy * scale


def render() -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        '<text x="30" y="36" font-size="20" font-weight="bold">Flywheel: the loop, orchestrated by Dagster</text>',
        '<rect x="560" y="24" width="14" height="14" fill="#fef7e0" stroke="#e37400"/>'
        '<text x="580" y="36" font-size="13">Dagster asset, check or sensor</text>',
        '<rect x="800" y="24" width="14" height="14" fill="#e8f0fe" stroke="#1a73e8"/>'
        '<text x="820" y="36" font-size="13">server (embedded stack or your own)</text>',
        # the canary's decision moves the MLflow aliases: routed left of the boxes, not through them
        '<polyline points="535,506 535,518 15,518 15,228 28,228" fill="none" stroke="#555" stroke-width="1.5" '
        'marker-end="url(#arrow)"/><text x="22" y="512" font-size="11" fill="#333">moves champion</text>',
    ]
    for src, dst, label in ARROWS:
        start = _edge_point(src, _centre(dst))
        end = _edge_point(dst, _centre(src))
        parts.append(
            f'<line x1="{start[0]:.0f}" y1="{start[1]:.0f}" x2="{end[0]:.0f}" y2="{end[1]:.0f}" '
            'stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            parts.append(f'<text x="{mx + 4:.0f}" y="{my - 4:.0f}" font-size="11" fill="#333">{escape(label)}</text>')
    for x, y, title, subtitle, kind in BOXES.values():
        parts.append(
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{FILL[kind]}" '
            f'stroke="{STROKE[kind]}" stroke-width="1.5"/>'
        )
        parts.append(
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + 24}" font-size="14" font-weight="bold" '
            f'text-anchor="middle">{escape(title)}</text>'
        )
        parts.append(
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + 42}" font-size="11" fill="#444" '
            f'text-anchor="middle">{escape(subtitle)}</text>'
        )
    parts.append(
        f'<text x="30" y="{H - 20}" font-size="12" fill="#444">Every arrow between assets is a typed record '
        "(pipelines/lineage/records.py); lakeFS commits, MLflow tags and Dagster metadata share the lineage keys "
        "that `flywheel lineage` follows.</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
