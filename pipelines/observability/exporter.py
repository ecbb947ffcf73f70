"""The pipeline's Prometheus exporter: GET /metrics answers the PIPELINE metrics of the catalog
(pipelines/observability/metrics.py), each value read from the system that owns it on every scrape:

    flywheel_ingest_lag_events{topic}             Kafka end offsets minus main's offsets (pipelines/ingest/lag.py)
    flywheel_ingest_rows{dataset}                 rows of the latest validated_dataset record (else of features)
    flywheel_ingest_quarantine_fraction{dataset}  quarantined / events of the latest raw_events record
    flywheel_gate_decisions_total{model,decision} model versions tagged passed/rejected by the gate (MLflow tags)
    flywheel_drift_score{feature,statistic}, flywheel_drift_detected
                                                  the latest drift record (drift_report asset or the check's
                                                  reports/drift/latest.json), when there is one
    flywheel_retrain_circuit_open                 the drift sensor's guard state (reports/drift/guard.json)
    flywheel_exporter_source_up{source}           1 when that source answered within the timeout, else 0

Stage records are read as the plain JSON resources/records_io.py writes (`<base>/flywheel-records/<asset>.json`,
{"kind", "schema", "record"}), so nothing here needs Dagster. Each scrape builds a fresh registry: a value whose
source is gone disappears instead of going stale, and one slow or broken source never blocks the others (each
read runs with a deadline; the exporter answers with what arrived in time and says which sources failed).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pipelines.lineage import keys
from pipelines.lineage.records import DriftReport, RecordError, record_from_json
from pipelines.observability.metrics import CATALOG, PIPELINE, create
from pipelines.registry import DECISION_TAG

log = logging.getLogger("flywheel.observability.exporter")  # the CLI configures it (pipelines.logs)

RECORDS_FOLDER = "flywheel-records"  # resources/records_io.py: <base>/flywheel-records/<asset>.json
# The drift check's files (pipelines/monitoring/stage.py: LATEST, GUARD_FILE), relative to <base>/flywheel-records;
# spelled out rather than imported so the exporter does not load the drift statistics (pyarrow, scipy).
DRIFT_FILES = ("drift_report.json", "reports/drift/latest.json")
GUARD_FILE = "reports/drift/guard.json"
DECISIONS = ("passed", "rejected")
PIPELINE_NAMES = [m.name for m in PIPELINE]
SOURCE_UP = "flywheel_exporter_source_up"


@dataclass(frozen=True)
class Sample:
    """One value for one metric of the catalog (counters are incremented by `value`, gauges set to it)."""

    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


Reader = Callable[[], list[Sample]]


# ---- stage records ------------------------------------------------------------------------------------


def read_record(base: Path, asset: str) -> dict[str, Any] | None:
    """The `record` part of `<base>/flywheel-records/<asset>.json`, or None when no run wrote it yet."""
    path = base / RECORDS_FOLDER / f"{asset}.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path} is not a stage record ({exc}); re-materialize {asset}") from None
    record = doc.get("record") if isinstance(doc, dict) else None
    if not isinstance(record, dict):
        raise ValueError(f"{path} has no 'record' object; re-materialize {asset}")
    return record


def ingest_samples(base: Path) -> list[Sample]:
    """Rows and quarantined share of the latest ingestion run, labelled with the dataset (spec) name."""
    samples: list[Sample] = []
    raw = read_record(base, "raw_events")
    dataset = str(raw.get("spec", "")) if raw else ""
    if raw and raw.get("events"):
        fraction = float(raw.get("quarantined", 0)) / float(raw["events"])
        samples.append(Sample("flywheel_ingest_quarantine_fraction", fraction, {"dataset": dataset}))
    published = read_record(base, "validated_dataset")
    if published and keys.ROWS in (published.get("metadata") or {}):
        name = str(published.get("spec") or dataset)
        samples.append(Sample("flywheel_ingest_rows", float(published["metadata"][keys.ROWS]), {"dataset": name}))
    else:
        features = read_record(base, "features")
        if features and "rows" in features:
            samples.append(Sample("flywheel_ingest_rows", float(features["rows"]), {"dataset": dataset}))
    return samples


def _number(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    return None


def latest_drift(base: Path) -> tuple[str, dict[str, Any]] | None:
    """The newest drift record: the `drift_report` asset's, or the drift check's latest.json (the sensor's checks
    write only that one), whichever was checked last; (JSON text, record)."""
    newest: tuple[float, str, dict[str, Any]] | None = None
    for relative in DRIFT_FILES:
        path = base / RECORDS_FOLDER / relative
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        record = read_record(base, relative.removesuffix(".json"))
        checked = _number((record or {}).get("checked_at")) or 0.0
        if record is not None and (newest is None or checked > newest[0]):
            newest = (checked, text, record)
    return (newest[1], newest[2]) if newest else None


def drift_scores(text: str) -> dict[str, dict[str, float]]:
    """{feature: {statistic: value}}: the drift record's own `scores` (pipelines.lineage.records.DriftReport),
    the one definition of which statistics a column exports."""
    try:
        record = record_from_json(text)
    except RecordError as exc:
        raise ValueError(f"the latest drift record cannot be read ({exc}); run the drift check again") from None
    if not isinstance(record, DriftReport):
        raise ValueError(f"the latest drift record is a {record.KIND!r} record, not a drift report")
    return record.scores


def drift_samples(base: Path) -> list[Sample]:
    """Scores and verdict of the latest drift record and the retraining breaker's state (guard.json, written by
    the drift sensor); nothing for what does not exist yet."""
    samples: list[Sample] = []
    latest = latest_drift(base)
    if latest is not None:
        text, record = latest
        for feature, stats in drift_scores(text).items():
            for statistic, value in stats.items():
                labels = {"feature": feature, "statistic": statistic}
                samples.append(Sample("flywheel_drift_score", float(value), labels))
        if _number(record.get("drifted")) is not None:
            samples.append(Sample("flywheel_drift_detected", float(record["drifted"])))
    guard = base / RECORDS_FOLDER / GUARD_FILE
    if guard.exists():
        state = json.loads(guard.read_text())
        if _number(state.get("breaker_open")) is not None:
            samples.append(Sample("flywheel_retrain_circuit_open", float(state["breaker_open"])))
    return samples


# ---- MLflow and Kafka -----------------------------------------------------------------------------------


def gate_samples(tracking_uri: str | None, page_size: int = 1000) -> list[Sample]:
    """How many versions of each registered model the gate tagged passed and rejected."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    counts: dict[tuple[str, str], int] = {}
    token = None
    while True:
        page = client.search_model_versions(max_results=page_size, page_token=token)
        for version in page:
            decision = (version.tags or {}).get(DECISION_TAG)
            if decision in DECISIONS:
                counts[(version.name, decision)] = counts.get((version.name, decision), 0) + 1
        token = page.token
        if not token:
            break
    return [
        Sample("flywheel_gate_decisions", count, {"model": model, "decision": decision})
        for (model, decision), count in sorted(counts.items())
    ]


def lag_samples(lag: Callable[[], Mapping[str, int]]) -> list[Sample]:
    return [Sample("flywheel_ingest_lag_events", float(events), {"topic": topic}) for topic, events in lag().items()]


# ---- the exporter -------------------------------------------------------------------------------------


class Exporter:
    """Reads every source on each `render()` within `timeout_s` and returns the exposition text."""

    def __init__(self, readers: Mapping[str, Reader], timeout_s: float = 5.0) -> None:
        self.readers = dict(readers)
        self.timeout_s = timeout_s
        # Shared workers: a source stuck past its deadline holds one worker until its own client timeout ends,
        # never the scrape.
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.readers)), thread_name_prefix="exporter")

    def render(self) -> bytes:
        futures = {name: self._pool.submit(reader) for name, reader in self.readers.items()}
        read: dict[str, list[Sample] | None] = {}
        for name, future in futures.items():
            try:
                read[name] = future.result(timeout=self.timeout_s)
            except FutureTimeout:
                log.warning(
                    "exporter: source %s gave no answer in %.1fs; its metrics are left out", name, self.timeout_s
                )
                read[name] = None
            except Exception as exc:  # any failure of one source must not fail the scrape
                log.warning("exporter: reading source %s failed: %s; its metrics are left out", name, exc)
                read[name] = None
        # Only metrics with a value are created: an unlabelled gauge would otherwise show 0 ("no drift",
        # "breaker closed") for a source that said nothing.
        samples = [s for got in read.values() for s in got or []]
        registry = CollectorRegistry()
        metrics = create(sorted({SOURCE_UP, *(s.metric for s in samples)}), registry)
        for name, got in read.items():
            metrics[SOURCE_UP].labels(source=name).set(0 if got is None else 1)
        for sample in samples:
            metric = metrics[sample.metric]
            target = metric.labels(**sample.labels) if sample.labels else metric
            if CATALOG[sample.metric].kind == "counter":
                target.inc(sample.value)
            else:
                target.set(sample.value)
        return generate_latest(registry)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def readers_for(
    records_base: Path | None, tracking_uri: str | None, lag: Callable[[], Mapping[str, int]] | None
) -> dict[str, Reader]:
    """One reader per configured source (a source without settings is not read, and not reported)."""
    readers: dict[str, Reader] = {}
    if records_base is not None:
        readers["records"] = lambda: ingest_samples(records_base)
        readers["drift"] = lambda: drift_samples(records_base)
    if tracking_uri:
        readers["mlflow"] = lambda: gate_samples(tracking_uri)
    if lag is not None:
        readers["kafka"] = lambda: lag_samples(lag)
    return readers


def make_handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, ctype = exporter.render(), 200, CONTENT_TYPE_LATEST
            elif path == "/healthz":
                body, status, ctype = b"ok\n", 200, "text/plain; charset=utf-8"
            else:
                body, status, ctype = b"not found: try /metrics or /healthz\n", 404, "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("exporter: " + format, *args)

    return Handler


def serve(exporter: Exporter, host: str, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the HTTP server in a daemon thread; returns it (call `shutdown()` to stop) and its thread."""
    server = ThreadingHTTPServer((host, port), make_handler(exporter))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="flywheel-exporter", daemon=True)
    thread.start()
    return server, thread
