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
from pipelines.config import setting
from pipelines.errors import FlywheelError
from pipelines.ingest.lag import kafka_lag
from pipelines.ingest.runner import CONSUMER_DEFAULTS
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource

DEFAULT_THRESHOLD = 10_000
DEFAULT_COOLDOWN_S = 900.0
MAX_ATTEMPTS = 3
STATE_TAG = "flywheel/lag_state"
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def _positive_setting(name: str, default: float) -> float:
    raw = setting(name, str(default))
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FlywheelError(f"{name}={raw!r} is not a number; set it to a positive number or unset it") from None
    if value <= 0:
        raise FlywheelError(f"{name}={raw!r} must be positive; unset it for the default {default:g}")
    return value


def lag_threshold() -> int:
    return int(_positive_setting("FLYWHEEL_INGEST_LAG_THRESHOLD", DEFAULT_THRESHOLD))


def retry_decision(failure_end_times: list[float], now: float, cooldown_s: float) -> tuple[int | None, str]:
    """For one lag state: which attempt to launch (0 = first), or None and why not."""
    failures = len(failure_end_times)
    if failures >= MAX_ATTEMPTS:
        return None, (
            f"{failures} ingest runs for this Kafka/main state failed; fix the cause (see the last run's error) "
            "and run ingest_job by hand"
        )
    if failures and now - max(failure_end_times) < cooldown_s:
        wait = cooldown_s - (now - max(failure_end_times))
        return None, f"the last ingest run for this state failed; retrying in {wait:.0f}s (attempt {failures + 1})"
    return failures, ""


@sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    description="Launch ingest_job when Kafka holds FLYWHEEL_INGEST_LAG_THRESHOLD+ events beyond main's offsets",
)
def kafka_lag_sensor(context: SensorEvaluationContext, kafka: KafkaResource, lakefs: LakeFSResource):
    spec = load_spec()
    try:
        threshold = lag_threshold()
        cooldown_s = _positive_setting("FLYWHEEL_INGEST_RETRY_COOLDOWN_S", DEFAULT_COOLDOWN_S)
        lag = kafka_lag(lakefs.lake, lambda: kafka.consumer(**CONSUMER_DEFAULTS), spec)
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
    attempt, why_not = retry_decision(
        [(r.end_time or r.create_timestamp.timestamp()) for r in failed], time.time(), cooldown_s
    )
    if attempt is None:
        return SkipReason(f"lag {lag.total}: {why_not}")
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
