"""The prediction log against the embedded Kafka: a clean shutdown right after a burst loses no prediction (close
sends what is queued and waits for Kafka's acknowledgements), every record is one message in the contract the
drift monitor reads (pipelines.monitoring.window.parse_predictions), keyed by its entity; and a Kafka that is
not there is counted, never raised."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry

from pipelines.devstack.net import free_port
from pipelines.monitoring.window import Message, parse_predictions
from pipelines.observability.metrics import create
from pipelines.serving.predlog import KAFKA_UNAVAILABLE, PredictionLog

pytestmark = [pytest.mark.slow]


def _dropped_counter():
    return create(["flywheel_serving_prediction_log_dropped"], CollectorRegistry())[
        "flywheel_serving_prediction_log_dropped"
    ]


def _record(i: int) -> dict:
    return {
        "request_id": f"r{i // 32}",
        "event_id": f"e{i}",
        "entity": f"c{i % 7}",
        "model_version": "3",
        "arm": "champion",
        "features": {"amount": float(i), "cust_txn_count_24h": 0.0},
        "score": i / 1000,
        "time_ms": 1_700_000_000_000 + i,
        "event_time_ms": 1_700_000_000_000 + i,
    }


def test_a_clean_shutdown_loses_no_prediction(stack_env: dict[str, str]) -> None:
    from kafka import KafkaConsumer

    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"predictions-log-{uuid.uuid4().hex[:6]}"
    log = PredictionLog(bootstrap, topic, _dropped_counter(), maxsize=10_000)
    log.start()
    records = [_record(i) for i in range(3000)]
    for start in range(0, len(records), 64):  # micro-batches, as the scorer offers them
        log.offer(records[start : start + 64])
    log.close(timeout_s=20)  # at once: whatever is still queued must be sent and acknowledged now
    assert log.drops == {} and log.sent == len(records), log.last_error

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        request_timeout_ms=15000,
    )
    try:
        messages = [m for m in consumer]
    finally:
        consumer.close()
    assert len(messages) == len(records)  # one message per prediction, none twice
    parsed = parse_predictions([Message(m.partition, m.offset, m.timestamp, m.value) for m in messages])
    assert parsed.malformed == 0
    assert sorted(parsed.event_ids.tolist()) == sorted(r["event_id"] for r in records)
    by_key: dict[bytes, set[int]] = {}
    for m in messages:
        by_key.setdefault(m.key, set()).add(m.partition)
    assert set(by_key) == {f"c{i}".encode() for i in range(7)}
    assert all(len(partitions) == 1 for partitions in by_key.values())  # an entity's records in one partition


def test_kafka_absent_is_counted_and_offer_never_raises() -> None:
    log = PredictionLog(f"127.0.0.1:{free_port()}", "predictions", _dropped_counter(), timeout_s=1, retry_s=60)
    log.start()
    log.offer([_record(i) for i in range(40)])
    log.close(timeout_s=10)
    assert log.drops == {KAFKA_UNAVAILABLE: 40}
    assert "unreachable" in log.last_error
