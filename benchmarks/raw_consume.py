"""The raw kafka-python consume baseline, run in a fresh spawned interpreter that imports only kafka-python.

Run in the benchmark's own process, the bare consumer's garbage collector would walk a heap holding pyspark
(and, after an ingestion run, Great Expectations): the baseline would measure the benchmark, not kafka-python.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

TIMEOUT_S = 600.0


def _consume_all(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """A bare consumer with kafka-python's default settings reading n records from the start; each record is
    only touched (its value's length), never parsed."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = sorted(consumer.partitions_for_topic(topic) or [])
    if not parts:
        consumer.close()
        raise RuntimeError(f"topic {topic} has no partitions at {bootstrap}: produce the events first")
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    nbytes = 0
    t0 = time.perf_counter()
    while seen < n:
        for records in consumer.poll(timeout_ms=1000, max_records=20_000).values():
            seen += len(records)
            nbytes += sum(len(r.value) for r in records)
    seconds = time.perf_counter() - t0
    consumer.close()
    return _rate(seen, seconds, nbytes)


def _rate(seen: int, seconds: float, nbytes: int) -> dict[str, float]:
    return {"events": seen, "seconds": round(seconds, 3), "events_per_s": round(seen / seconds, 1), "bytes": nbytes}


def _spawned(fn: Callable[[str, str, int], dict[str, float]], bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """`fn` in a new spawned process (its interpreter start is not measured)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, bootstrap, topic, n).result(timeout=TIMEOUT_S)


def raw_consume_rate(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """`_consume_all` in a new spawned process."""
    return _spawned(_consume_all, bootstrap, topic, n)


def _consume_all_librdkafka(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """The same with a bare librdkafka (confluent-kafka) consumer, its default settings: how fast the client
    that ingestion reads with is by itself (not the goal's baseline, which the issue sets on kafka-python)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-raw", "enable.auto.commit": False})
    parts = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    seen = 0
    nbytes = 0
    t0 = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    while seen < n:
        for msg in consumer.consume(20_000, 1.0):
            if msg.error() is None:
                seen += 1
                nbytes += len(msg.value())
    seconds = time.perf_counter() - t0
    consumer.close()
    return _rate(seen, seconds, nbytes)


def raw_librdkafka_consume_rate(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    """`_consume_all_librdkafka` in a new spawned process."""
    return _spawned(_consume_all_librdkafka, bootstrap, topic, n)
