"""The catalog of Prometheus metrics Flywheel exports: one place for names, types, labels and help.

Serving (`pipelines.serving`) and the pipeline exporter create their metrics from here with `create`, and the
deploy kit's dashboards and alert rules may only name metrics listed here (a test checks both ends).
Histograms and counters get Prometheus' usual suffixes on the wire (_bucket/_sum/_count, _total).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Kind = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


SERVING = [
    MetricDef(
        "flywheel_serving_requests",
        "counter",
        "Predict requests by model version, arm and HTTP status",
        ("model_version", "arm", "status"),
    ),
    MetricDef(
        "flywheel_serving_request_latency_seconds", "histogram", "Request latency by route", ("route",), LATENCY_BUCKETS
    ),
    MetricDef(
        "flywheel_serving_model_latency_seconds",
        "histogram",
        "Predict request latency by the model version and arm that answered (the canary analysis compares them)",
        ("model_version", "arm"),
        LATENCY_BUCKETS,
    ),
    MetricDef(
        "flywheel_serving_predictions", "counter", "Predictions made by model version and arm", ("model_version", "arm")
    ),
    MetricDef(
        "flywheel_serving_prediction_score", "histogram", "Scores by model version", ("model_version",), SCORE_BUCKETS
    ),
    MetricDef(
        "flywheel_serving_batch_size", "histogram", "Records per model call after micro-batching", (), BATCH_BUCKETS
    ),
    MetricDef(
        "flywheel_serving_rollout_state", "gauge", "1 for the current rollout strategy and state", ("strategy", "state")
    ),
    MetricDef(
        "flywheel_serving_traffic_share",
        "gauge",
        "Share of traffic routed to each model version",
        ("model_version", "arm"),
    ),
    MetricDef(
        "flywheel_serving_prediction_log_dropped",
        "counter",
        "Prediction log records dropped (queue full or Kafka unreachable)",
        ("reason",),
    ),
    MetricDef(
        "flywheel_serving_online_lookup_latency_seconds",
        "histogram",
        "Online feature store lookups",
        (),
        LATENCY_BUCKETS,
    ),
]

PIPELINE = [
    MetricDef(
        "flywheel_drift_score", "gauge", "Drift statistic per feature (PSI, KS, chi2, JS)", ("feature", "statistic")
    ),
    MetricDef("flywheel_drift_detected", "gauge", "1 when the latest drift check decided the data drifted"),
    MetricDef("flywheel_retrain_circuit_open", "gauge", "1 when retraining stopped after consecutive gate rejections"),
    MetricDef("flywheel_ingest_lag_events", "gauge", "Events in the topic not yet ingested", ("topic",)),
    MetricDef("flywheel_ingest_rows", "gauge", "Rows the latest ingestion run published", ("dataset",)),
    MetricDef(
        "flywheel_ingest_quarantine_fraction", "gauge", "Quarantined share of the latest ingestion run", ("dataset",)
    ),
    MetricDef("flywheel_gate_decisions", "counter", "Evaluation gate decisions", ("model", "decision")),
    MetricDef(
        "flywheel_features_updater_events",
        "counter",
        "Events the feature updater read, by outcome (applied, duplicate, rejected)",
        ("spec", "outcome"),
    ),
    MetricDef("flywheel_features_updater_lag_events", "gauge", "Events not yet applied to the online store", ("spec",)),
    MetricDef(
        "flywheel_exporter_source_up",
        "gauge",
        "1 when the pipeline exporter read this source (records, mlflow, kafka, drift) in time on the last scrape",
        ("source",),
    ),
]

CATALOG = {m.name: m for m in SERVING + PIPELINE}


def create(names: list[str] | None = None, registry: CollectorRegistry | None = None) -> dict[str, Any]:
    """The prometheus_client objects for `names` (default: all), registered in `registry`."""
    made: dict[str, Any] = {}
    for name in names or list(CATALOG):
        m = CATALOG[name]
        if m.kind == "counter":
            made[name] = Counter(name, m.help, m.labels, registry=registry)
        elif m.kind == "gauge":
            made[name] = Gauge(name, m.help, m.labels, registry=registry)
        else:
            made[name] = Histogram(name, m.help, m.labels, registry=registry, buckets=m.buckets)
    return made
