"""Getting events onto the stream: JSON encoding per spec, file replay, and the Kafka producer."""

from pipelines.devstack.produce.encode import event_key, frame_to_events, iter_events
from pipelines.devstack.produce.producer import (
    KafkaSink,
    LineSink,
    ProduceError,
    ProduceResult,
    ProducerSettings,
    Progress,
    ensure_topic,
    kafka_sink,
    produce_events,
    produce_file,
    produce_scenario,
)
from pipelines.devstack.produce.replay import read_replay_frame

__all__ = [
    "KafkaSink",
    "LineSink",
    "ProduceError",
    "ProduceResult",
    "ProducerSettings",
    "Progress",
    "ensure_topic",
    "event_key",
    "frame_to_events",
    "iter_events",
    "kafka_sink",
    "produce_events",
    "produce_file",
    "produce_scenario",
    "read_replay_frame",
]
