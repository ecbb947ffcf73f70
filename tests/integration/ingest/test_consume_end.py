"""A read stops as soon as it has reached the high watermark, without a last poll that can only come back
empty after waiting its whole timeout (the broker holds an empty fetch); a read with nothing new still ends
on that empty poll; a parallel read with nothing new starts no fork server. Real Tansu Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import IngestEnv

from pipelines.ingest import parallel
from pipelines.ingest.consume import consume, true_end_offsets
from pipelines.ingest.parallel import kafka_consumer_factory


class CountingConsumer:
    """A real KafkaConsumer whose polls are counted, empty ones apart."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.polls = 0
        self.empty_polls = 0

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        out = self._consumer.poll(*args, **kwargs)
        self.polls += 1
        self.empty_polls += 0 if any(out.values()) else 1
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_a_read_ends_at_the_high_watermark_without_an_empty_poll(ingest_env: IngestEnv) -> None:
    env = ingest_env
    env.produce(900)
    topic = env.spec.topic.name
    seen: list[int] = []
    consumer = CountingConsumer(kafka_consumer_factory(env.bootstrap)())
    try:
        result = consume(consumer, topic, {}, lambda p, records: seen.extend(r.offset for r in records))
    finally:
        consumer.close()
    assert result.events == len(seen) == 900 and result.stopped_by == "caught_up"
    assert consumer.polls >= 1 and consumer.empty_polls == 0
    assert result.next_offsets == {p: hw for p, hw in result.highwater.items()}

    again = CountingConsumer(kafka_consumer_factory(env.bootstrap)())
    try:
        nothing = consume(again, topic, result.next_offsets, lambda p, records: seen.extend(records))
    finally:
        again.close()
    assert nothing.events == 0 and nothing.next_offsets == result.next_offsets and len(seen) == 900
    assert again.empty_polls >= 1  # nothing new: the empty poll is what says so


def test_a_parallel_read_with_nothing_new_starts_no_fork_server(
    ingest_env: IngestEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ingest_env
    env.produce(300)
    topic = env.spec.topic.name
    started: list[bool] = []
    monkeypatch.setattr(parallel, "prestart_readers", lambda: started.append(True))
    factory = kafka_consumer_factory(env.bootstrap)
    probe = factory()
    try:
        ends = true_end_offsets(probe, topic)
    finally:
        probe.close()
    assert sum(ends.values()) >= 300
    options: dict[str, Any] = {"max_events": None, "max_seconds": 60, "poll_timeout_ms": 500, "rows_per_file": 10_000}
    result, _ = parallel.consume_parallel(factory, env.spec, ends, tmp_path / "a", "t", workers=2, **options)
    assert result.events == 0 and started == []  # caught up: no fork server, no reader
    result, _ = parallel.consume_parallel(factory, env.spec, {}, tmp_path / "b", "t", workers=2, **options)
    assert result.events == sum(ends.values()) and started == [True]
