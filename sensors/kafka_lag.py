"""Kafka-lag sensor: launches ingest_job when the topic holds enough events beyond main's offsets.

Lag = true end offsets (fetch high watermarks, right on Tansu too) minus the offsets committed on lakeFS
`main`. The run key is derived from main's commit id and offsets, so while a run is pending the same state
never launches a second run; once a run publishes, main moves and the next lag gets a new key. A run that
failed (main unchanged) is retried under a new key after a cooldown, at most MAX_ATTEMPTS times for one
state (a breaker: a gate that keeps failing on bad data needs a person, not a retry every minute).
After the topic was recreated (a new topic id, e.g. a restarted
memory-only broker), the lag is everything in the new log, which the next run reads from its beginning.
Threshold: FLYWHEEL_INGEST_LAG_THRESHOLD (default 10000); retry cooldown: FLYWHEEL_INGEST_RETRY_COOLDOWN_S
(default 900).
"""

from __future__ import annotations

import time

from dagster import DagsterRunStatus, RunRequest, RunsFilter, SensorEvaluationContext, SkipReason, sensor
from kafka.errors import KafkaError

from jobs import ingest_job
from pipelines.config import float_setting
from pipelines.errors import FlywheelError
from pipelines.guard import GuardPolicy, PastRun
from pipelines.ingest.lag import kafka_lag
from pipelines.ingest.parallel import READER_SETTINGS
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource

DEFAULT_THRESHOLD = 10_000
DEFAULT_COOLDOWN_S = 900.0
MAX_ATTEMPTS = 3
STATE_TAG = "flywheel/lag_state"
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def lag_threshold() -> int:
    return int(float_setting("FLYWHEEL_INGEST_LAG_THRESHOLD", default=DEFAULT_THRESHOLD, positive=True))


def guard_policy() -> GuardPolicy:
    """The retry guard for one lag state (pipelines.guard): cooldown after a failure, breaker at MAX_ATTEMPTS."""
    return GuardPolicy(
        cooldown_s=float_setting("FLYWHEEL_INGEST_RETRY_COOLDOWN_S", default=DEFAULT_COOLDOWN_S, positive=True),
        max_consecutive_failures=MAX_ATTEMPTS,
        what="ingest run for this Kafka/main state",
        by_hand="fix the cause (see the last run's error) and run ingest_job by hand",
    )


@sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    description="Launch ingest_job when Kafka holds FLYWHEEL_INGEST_LAG_THRESHOLD+ events beyond main's offsets",
)
def kafka_lag_sensor(context: SensorEvaluationContext, kafka: KafkaResource, lakefs: LakeFSResource):
    spec = load_spec()
    try:
        threshold = lag_threshold()
        policy = guard_policy()
        lag = kafka_lag(lakefs.lake, lambda: kafka.consumer(**READER_SETTINGS), spec)
    except (FlywheelError, KafkaError, OSError) as exc:  # bad setting, broker or lakeFS down: say why, skip
        return SkipReason(f"cannot measure Kafka lag: {exc}")
    if lag.total < threshold:
        return SkipReason(f"lag {lag.total} < threshold {threshold} on {spec.topic.name} (main {lag.main_commit})")
    active = context.instance.get_runs(RunsFilter(job_name=ingest_job.name, statuses=ACTIVE), limit=1)
    if active:
        return SkipReason(f"lag {lag.total}, but ingest run {active[0].run_id} is still in progress")
    state = lag.run_key(spec)
    failed = context.instance.get_run_records(
        RunsFilter(job_name=ingest_job.name, statuses=[DagsterRunStatus.FAILURE], tags={STATE_TAG: state}),
        limit=MAX_ATTEMPTS,
    )
    history = [PastRun(r.start_time or r.create_timestamp.timestamp(), r.end_time, failed=True) for r in failed]
    decision = policy.decide(history, time.time())
    if not decision.allowed:
        return SkipReason(f"lag {lag.total}: {decision.reason}")
    attempt = decision.attempt
    tags = {
        STATE_TAG: state,
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
    return RunRequest(run_key=state if attempt == 0 else f"{state}-retry{attempt}", tags=tags)
