"""The drift check's entry function (the `drift_report` asset and the drift sensor both call it), the report
files it leaves, and the evidence snapshot in lakeFS.

    outcome = run_check(spec, lake, consumer_factory, tracking_uri)     # DriftReport + HTML + latest.json
    if outcome.report.drifted:
        commit = snapshot_evidence(lake, spec, outcome)                 # the window, versioned

Files: <records dir>/flywheel-records/reports/drift/<check id>.html and .json, and latest.json (the newest
DriftReport as a stage record) and guard.json (the drift sensor's guard state): what the metrics exporter,
pipelines/observability/exporter.py, reads. The records dir is FLYWHEEL_RECORDS_DIR,
else what the caller passes (the Dagster instance's storage), else the state directory.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.config import setting, state_dir
from pipelines.lineage import keys
from pipelines.lineage.records import DriftReport, record_from_json, record_to_json
from pipelines.monitoring.check import DriftResult, check_drift
from pipelines.monitoring.reference import Champion, champion_of, load_reference
from pipelines.monitoring.report import write_report
from pipelines.monitoring.window import (
    Predictions,
    Window,
    events_window,
    labelled,
    parse_predictions,
    predictions_topic,
    read_latest,
)
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
EVIDENCE_BRANCH = "drift-evidence"
LATEST = "latest.json"
GUARD_FILE = "guard.json"  # written by the drift sensor next to latest.json


@dataclass
class DriftOutcome:
    report: DriftReport
    window: Window | None
    html: Path
    json: Path


def reports_dir(base: str | None = None) -> Path:
    """<records dir>/flywheel-records/reports/drift (a local directory; an fsspec URL falls back to the state dir)."""
    root = setting("FLYWHEEL_RECORDS_DIR") or base or ""
    if not root or "://" in root:
        root = str(state_dir())
    return Path(root) / "flywheel-records" / "reports" / "drift"


def latest_report(base: str | None = None) -> DriftReport | None:
    """The newest drift record (None before the first check)."""
    path = reports_dir(base) / LATEST
    if not path.exists():
        return None
    record = record_from_json(path.read_text(), where=str(path))
    return record if isinstance(record, DriftReport) else None


def to_record(
    spec: DatasetSpec, champion: Champion, result: DriftResult, window: Window, predictions: int, reference_rows: int
) -> DriftReport:
    quality = asdict(result.quality)
    quality["quarantine_rate"] = result.quality.quarantine_rate
    return DriftReport(
        spec=spec.name,
        decision=result.decision,
        drifted=result.drifted,
        reasons=list(result.reasons),
        drifted_columns=result.drifted_columns,
        model_name=champion.model_name,
        champion_version=champion.version,
        reference_uri=champion.data_uri,
        reference_rows=reference_rows,
        window={
            "topic": window.topic,
            "events": window.quality.events,
            "valid": window.rows,
            "offsets": {str(p): span for p, span in sorted(window.offsets.items())},
            "first_ms": window.first_ms,
            "last_ms": window.last_ms,
        },
        columns=[c.to_dict() for c in result.columns],
        label=asdict(result.label),
        quality=quality,
        predictions=predictions,
        correction=result.correction,
        alpha=result.alpha,
    )


def _save(report: DriftReport, base: str | None) -> tuple[Path, Path]:
    folder = reports_dir(base)
    millis = int(report.checked_at * 1000) % 1000
    check_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(report.checked_at)) + f"-{millis:03d}"
    html_path = folder / f"{report.spec}-{check_id}.html"
    report.report_path = str(html_path)
    write_report(report, html_path)
    return html_path, rewrite(report, folder / f"{report.spec}-{check_id}.json")


def rewrite(report: DriftReport, json_path: Path) -> Path:
    """Store the record next to its HTML report and as latest.json (atomically: a reader never sees half)."""
    text = record_to_json(report)
    for target in (json_path, json_path.parent / LATEST):
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(target)
    return json_path


def run_check(
    spec: DatasetSpec,
    lake: Any,
    consumer_factory: Callable[[], Any],
    tracking_uri: str | None = None,
    *,
    model_name: str | None = None,
    records_base: str | None = None,
    reference_cache: Path | None = None,
) -> DriftOutcome:
    """One drift check of the latest window against the champion's reference; writes the report files."""
    started = time.perf_counter()
    now = time.time()
    champion = champion_of(spec, tracking_uri, model_name)
    cfg = spec.drift
    if champion is None:
        report = DriftReport(
            spec=spec.name,
            decision="no champion",
            drifted=False,
            reasons=[f"model {model_name or spec.name!r} has no `champion` alias yet: nothing to compare with"],
            model_name=model_name or spec.name,
            checked_at=now,
            seconds=time.perf_counter() - started,
        )
        html_path, json_path = _save(report, records_base)
        return DriftOutcome(report, None, html_path, json_path)

    window = events_window(read_latest(consumer_factory, spec.topic.name, cfg.window_events, cfg.window_minutes), spec)
    predictions = _predictions(consumer_factory, cfg.window_events, cfg.window_minutes, champion.version)
    scored = len(predictions) >= cfg.min_samples
    profile = load_reference(champion, spec, lake, scored=scored, cache_dir=reference_cache)
    has_scores = profile.score is not None and len(predictions) > 0
    result = check_drift(
        profile,
        window.table,
        spec,
        scores=predictions.scores if has_scores else None,
        labelled=labelled(predictions, window, spec) if len(predictions) else None,
        quality=window.quality,
    )
    report = to_record(spec, champion, result, window, len(predictions), profile.rows)
    report.checked_at = now
    report.seconds = time.perf_counter() - started
    html_path, json_path = _save(report, records_base)
    log.info("drift check of %s: %s (%s)", spec.name, report.decision, "; ".join(report.reasons) or "no reasons")
    return DriftOutcome(report, window, html_path, json_path)


def _predictions(consumer_factory: Callable[[], Any], count: int, minutes: float | None, version: str) -> Predictions:
    messages = read_latest(consumer_factory, predictions_topic(), count, minutes)
    return parse_predictions(messages).of_version(version)


def snapshot_evidence(lake: Any, spec: DatasetSpec, outcome: DriftOutcome, run_key: str = "") -> str:
    """Commit the drift window (valid events as Parquet), the report and its record to the `drift-evidence`
    branch (created from main); returns the commit id, also set on the record and its files."""
    from pipelines.lake import MAIN

    report, window = outcome.report, outcome.window
    lake.ensure_repository()
    if not lake.branch_exists(EVIDENCE_BRANCH):
        lake.create_branch(EVIDENCE_BRANCH, source=MAIN, exist_ok=True)
    prefix = f"drift/{spec.name}/{outcome.html.stem}/"
    if window is not None:
        buffer = io.BytesIO()
        pq.write_table(window.table, buffer)
        lake.write_bytes(EVIDENCE_BRANCH, prefix + "events.parquet", buffer.getvalue(), "application/octet-stream")
    lake.write_bytes(EVIDENCE_BRANCH, prefix + "report.html", outcome.html.read_bytes(), "text/html")
    lake.write_bytes(EVIDENCE_BRANCH, prefix + "drift_report.json", record_to_json(report), "application/json")
    metadata = {
        keys.KIND: "drift_evidence",
        keys.SPEC: spec.name,
        keys.TOPIC: spec.topic.name,
        keys.OFFSET_RANGES: keys.dumps(report.window.get("offsets", {})),
        keys.MODEL_NAME: report.model_name,
        keys.MODEL_VERSION: report.champion_version or "",
        keys.DRIFT_DECISION: report.decision,
        keys.DRIFT_COLUMNS: keys.dumps(report.drifted_columns),
        keys.DRIFT_REPORT: report.report_path,
        keys.RUN_ID: run_key or "drift-sensor",
    }
    commit = lake.commit(EVIDENCE_BRANCH, f"drift window of {spec.name}: {report.decision}", metadata)
    report.evidence_commit = commit
    rewrite(report, outcome.json)
    return commit


def severity_table(report: DriftReport, limit: int = 10) -> str:
    """The summary as Markdown (most severe first), for Dagster metadata and logs."""
    lines = ["| column | kind | PSI | JS | KS D | p adj. | severity | drifted |", "|---|---|---|---|---|---|---|---|"]
    for col in report.columns[:limit]:
        ks = col.get("ks")
        lines.append(
            f"| {col['name']} | {col['kind']} | {col['psi']:.3f} | {col['js']:.3f} | "
            f"{'-' if ks is None else f'{ks:.3f}'} | {col['p_adjusted']:.3g} | {col['severity']:.2f} | "
            f"{'**yes**' if col['drifted'] else 'no'} |"
        )
    return "\n".join(lines)
