"""A read stops as soon as it has reached the high watermark, without a last poll that can only come back
empty after waiting its whole timeout (the broker holds an empty fetch); a read with nothing new still ends
on that empty poll. Real Tansu Kafka."""

from __future__ import annotations

from typing import Any

from harness import IngestEnv

from pipelines.ingest.consume import consume
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
