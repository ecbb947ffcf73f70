"""Ingestion's librdkafka reader on the real embedded broker (Tansu): every offset once, exact bounds, a
prompt end with nothing new, and the kafka-python fallback for settings it cannot map."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import IngestEnv

from pipelines.ingest import parallel
from pipelines.ingest.consume import true_end_offsets
from pipelines.ingest.librdkafka_read import librdkafka_config, read_partitions
from pipelines.ingest.parallel import KafkaConsumerFactory, kafka_consumer_factory


def ends_of(env: IngestEnv) -> dict[int, int]:
    probe = kafka_consumer_factory(env.bootstrap)()
    try:
        return true_end_offsets(probe, env.spec.topic.name)
    finally:
        probe.close()


def test_reads_every_offset_once_across_bounded_reads(ingest_env: IngestEnv) -> None:
    env = ingest_env
    env.produce(900)
    ends = ends_of(env)
    config = librdkafka_config(kafka_consumer_factory(env.bootstrap).config)
    assert config is not None
    seen: list[tuple[int, int]] = []

    def sink(messages: list[Any]) -> None:
        seen.extend((m.partition(), m.offset()) for m in messages)

    topic = env.spec.topic.name
    first = read_partitions(config, topic, dict.fromkeys(ends, 0), sink, max_events=250, max_records_per_poll=100)
    assert first.stopped_by == "max_events" and first.events == len(seen) == 250
    rest = read_partitions(config, topic, first.next_offsets, sink)
    assert rest.stopped_by == "caught_up" and first.events + rest.events == sum(ends.values())
    assert rest.next_offsets == ends == rest.highwater
    assert sorted(seen) == [(p, o) for p in sorted(ends) for o in range(ends[p])]  # each exactly once
    assert rest.per_partition == {p: ends[p] - first.next_offsets[p] for p in ends}

    # One partition with nothing new, the others read from their start.
    quiet = min(ends)
    mixed = read_partitions(config, topic, {p: ends[p] if p == quiet else 0 for p in ends}, lambda m: None)
    assert mixed.stopped_by == "caught_up" and mixed.next_offsets == ends
    assert mixed.events == sum(ends.values()) - ends[quiet] and mixed.per_partition[quiet] == 0

    t0 = time.monotonic()
    nothing = read_partitions(config, topic, ends, sink, max_seconds=30)
    assert nothing.events == 0 and nothing.stopped_by == "caught_up" and nothing.next_offsets == ends
    assert time.monotonic() - t0 < 10  # ends on the partitions' EOF, not on max_seconds


def read_in_process(env: IngestEnv, factory: KafkaConsumerFactory, tmp_path: Path) -> Any:
    result, staged = parallel.consume_parallel(
        factory,
        env.spec,
        {},
        tmp_path,
        "t",
        workers=1,
        max_events=None,
        max_seconds=60,
        poll_timeout_ms=500,
        rows_per_file=10_000,
    )
    assert staged.valid + staged.quarantined == result.events
    return result


def test_the_reader_is_librdkafka_unless_a_setting_has_no_equivalent(
    ingest_env: IngestEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ingest_env
    env.produce(300)
    total = sum(ends_of(env).values())
    calls: list[dict[int, int]] = []

    def spy(config: dict[str, Any], topic: str, start: dict[int, int], *args: Any, **kwargs: Any) -> Any:
        calls.append(start)
        return read_partitions(config, topic, start, *args, **kwargs)

    monkeypatch.setattr(parallel, "read_partitions", spy)
    factory = kafka_consumer_factory(env.bootstrap)
    assert read_in_process(env, factory, tmp_path / "a").events == total and len(calls) == 1
    unmapped = KafkaConsumerFactory({**factory.config, "metadata_max_age_ms": 60_000})
    assert read_in_process(env, unmapped, tmp_path / "b").events == total and len(calls) == 1  # kafka-python


def test_offsets_past_the_log_end_fail_before_any_read(
    ingest_env: IngestEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ingest_env
    env.produce(50)
    ahead = {p: end + 5 for p, end in ends_of(env).items()}
    monkeypatch.setattr(parallel, "prestart_readers", lambda: pytest.fail("a reader was started"))
    with pytest.raises(parallel.OffsetsError, match="broker lost events"):
        parallel.consume_parallel(
            kafka_consumer_factory(env.bootstrap),
            env.spec,
            ahead,
            tmp_path,
            "t",
            workers=2,
            max_events=None,
            max_seconds=60,
            poll_timeout_ms=500,
            rows_per_file=10_000,
        )
