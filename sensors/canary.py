"""Canary analysis sensor: every tick, compares the rolling-out challenger with the champion over the step's
window from serving's Prometheus metrics (error rate, p99 latency, score distribution shift) and, where labels
arrived, the label AUC of each arm (the predictions topic joined with the events topic by event id), and promotes,
advances or rolls back by itself (pipelines.serving.analysis); the first model ever becomes champion directly.
Each decision is recorded as version tags (flywheel.rollout.decision/reason) and as an observation with
metadata on the `deployment` asset. The step's baseline counters live in the cursor.

It launches no runs, so it needs no run guard: a rollback is final for that version (the alias is gone) and a
new rollout starts only from retrain_job's `deployment`.
"""

from __future__ import annotations

import json

from dagster import (
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from pipelines.config import setting
from pipelines.errors import FlywheelError
from pipelines.serving.analysis import analyze
from pipelines.serving.labels import KafkaLabels
from pipelines.serving.service import DEFAULT_TOPIC
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.mlflow import MLflowResource
from resources.serving import ServingResource

DECISIONS = ("first_model", "advanced", "promoted", "rolled_back")


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Judge the challenger's rollout from serving's metrics; promote, advance or roll back by itself",
)
def canary_analysis_sensor(
    context: SensorEvaluationContext, mlflow: MLflowResource, serving: ServingResource, kafka: KafkaResource
):
    spec = load_spec()
    name = setting("FLYWHEEL_SERVING_MODEL") or spec.name
    topic = setting("FLYWHEEL_PREDICTIONS_TOPIC") or DEFAULT_TOPIC
    labels = KafkaLabels(kafka.reader_factory(), spec, topic) if kafka.bootstrap_servers.strip() else None
    try:
        cursor = json.loads(context.cursor) if context.cursor else None
    except ValueError:
        cursor = None
    try:
        result = analyze(name, serving.url or None, spec.rollout, cursor, mlflow.configure(), labels=labels)
    except FlywheelError as exc:
        return SkipReason(str(exc))
    context.update_cursor(json.dumps(result.cursor))
    if result.action not in DECISIONS:
        return SkipReason(result.message)
    metadata = {
        "decision": MetadataValue.text(result.action),
        "model": MetadataValue.text(name),
        "version": MetadataValue.text(result.version or ""),
        "reason": MetadataValue.text(result.message),
    }
    if result.verdict is not None:
        metadata["measures"] = MetadataValue.json({k: round(v, 6) for k, v in result.verdict.measures.items()})
    context.log.info(f"canary analysis: {result.message}")
    return SensorResult(asset_events=[AssetObservation(asset_key="deployment", metadata=metadata)])
