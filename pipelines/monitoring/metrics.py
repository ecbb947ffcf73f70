"""The drift gauges of the metric catalog (pipelines.observability.metrics), set from the latest drift record and
the retraining guard's state: what a pipeline exporter serves on /metrics.

    gauges = drift_gauges(registry)                  # created once, through the catalog's `create`
    update(gauges, latest_report(), guard_state())   # on every scrape or check
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from pipelines.lineage.records import DriftReport
from pipelines.monitoring.stage import reports_dir
from pipelines.observability.metrics import create

NAMES = ["flywheel_drift_score", "flywheel_drift_detected", "flywheel_retrain_circuit_open"]
GUARD_FILE = "guard.json"  # written by the drift sensor next to latest.json


def drift_gauges(registry: CollectorRegistry | None = None) -> dict[str, Any]:
    return create(NAMES, registry)


def guard_state(base: str | None = None) -> dict[str, Any] | None:
    """The drift sensor's latest guard decision ({"breaker_open", "consecutive_rejections", ...}), if any."""
    path: Path = reports_dir(base) / GUARD_FILE
    return json.loads(path.read_text()) if path.exists() else None


def update(gauges: dict[str, Any], report: DriftReport | None, guard: dict[str, Any] | None) -> None:
    """Set the gauges: one flywheel_drift_score per column and statistic, the decision, the breaker."""
    if report is not None:
        score = gauges["flywheel_drift_score"]
        score.clear()  # columns of an older champion's report must not linger
        for column, values in report.scores.items():
            for statistic, value in values.items():
                score.labels(feature=column, statistic=statistic).set(value)
        gauges["flywheel_drift_detected"].set(1.0 if report.drifted else 0.0)
    if guard is not None:
        gauges["flywheel_retrain_circuit_open"].set(1.0 if guard.get("breaker_open") else 0.0)
