"""Kafka-lag sensor: launches ingest_job when the topic holds enough events beyond main's offsets.

Lag = true end offsets (fetch high watermarks, right on Tansu too) minus the offsets committed on lakeFS
`main`. The run key is derived from main's commit id and offsets, so while a run is pending, and after a
run that failed (main unchanged), the same state never launches a second run; once a run publishes,
main moves and the next lag gets a new key. After the topic was recreated (a new topic id, e.g. a restarted
memory-only broker), the lag is everything in the new log, which the next run reads from its beginning.
Threshold: FLYWHEEL_INGEST_LAG_THRESHOLD (default 10000).
"""

from __future__ import annotations

from dagster import DagsterRunStatus, RunRequest, RunsFilter, SensorEvaluationContext, SkipReason, sensor

from jobs import ingest_job
from pipelines.config import setting
from pipelines.errors import FlywheelError
from pipelines.ingest.lag import kafka_lag
from pipelines.ingest.runner import CONSUMER_DEFAULTS
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource

DEFAULT_THRESHOLD = 10_000
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def lag_threshold() -> int:
    return int(setting("FLYWHEEL_INGEST_LAG_THRESHOLD", str(DEFAULT_THRESHOLD)) or DEFAULT_THRESHOLD)


@sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    description="Launch ingest_job when Kafka holds FLYWHEEL_INGEST_LAG_THRESHOLD+ events beyond main's offsets",
)
def kafka_lag_sensor(context: SensorEvaluationContext, kafka: KafkaResource, lakefs: LakeFSResource):
    spec = load_spec()
    try:
        lag = kafka_lag(lakefs.lake, lambda: kafka.consumer(**CONSUMER_DEFAULTS), spec)
    except FlywheelError as exc:  # no topic yet, lakeFS down: say why this tick did nothing
        return SkipReason(f"cannot measure Kafka lag: {exc}")
    threshold = lag_threshold()
    if lag.total < threshold:
        return SkipReason(f"lag {lag.total} < threshold {threshold} on {spec.topic.name} (main {lag.main_commit})")
    active = context.instance.get_runs(RunsFilter(job_name=ingest_job.name, statuses=ACTIVE), limit=1)
    if active:
        return SkipReason(f"lag {lag.total}, but ingest run {active[0].run_id} is still in progress")
    tags = {
        "flywheel/trigger": "kafka_lag",
        "flywheel/lag": str(lag.total),
        "flywheel/main_commit": lag.main_commit or "",
    }
    if lag.topic_reset is not None:
        context.log.warning(
            f"topic {spec.topic.name} was recreated (topic id {lag.topic_reset['previous_topic_id']} -> "
            f"{lag.topic_id}): lag counts the whole new log"
        )
        tags["flywheel/topic_reset"] = f"{lag.topic_reset['previous_topic_id']}->{lag.topic_id}"
    return RunRequest(run_key=lag.run_key(spec), tags=tags)
