"""Kafka lag of the dataset: how many events the broker holds beyond the offsets committed on `main`.

The end of each partition is the high watermark of a fetch (see consume.true_end_offsets), so the lag
is right on Tansu too, whose ListOffsets answer can stop short of the last records. When the topic was
recreated since main's offsets were recorded (a different topic id), ingestion reads the new log from its
beginning, so the lag counts from there: everything in the new log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.ingest.consume import true_end_offsets
from pipelines.ingest.offsets import current_topic_id, read_stored_offsets, reconcile
from pipelines.lake import MAIN, Lake
from pipelines.spec.model import DatasetSpec


@dataclass(frozen=True)
class Lag:
    topic: str
    main_commit: str | None  # None before the first ingestion (no repository or no main yet)
    main_offsets: dict[int, int]  # where the next ingestion starts (the new log's beginning after a reset)
    end_offsets: dict[int, int]
    topic_id: str | None = None
    topic_reset: dict[str, Any] | None = None  # see pipelines.ingest.offsets.TopicReset

    @property
    def per_partition(self) -> dict[int, int]:
        return {p: max(0, end - self.main_offsets.get(p, 0)) for p, end in self.end_offsets.items()}

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())

    def run_key(self, spec: DatasetSpec) -> str:
        """Same main commit and offsets -> same key, so a sensor never launches two runs for one state."""
        offsets = json.dumps(self.main_offsets, sort_keys=True)
        # the topic id too: after a reset, main is unchanged but the log to read is another one
        digest = hashlib.sha256(f"{self.main_commit}|{offsets}|{self.topic_id}".encode()).hexdigest()[:16]
        return f"ingest-{spec.name}-{(self.main_commit or 'empty')[:16]}-{digest}"


def kafka_lag(lake: Lake, consumer_factory: Callable[[], Any], spec: DatasetSpec, timeout_s: float = 10.0) -> Lag:
    lake.ensure_repository()
    commit = lake.resolve(MAIN)
    recorded = read_stored_offsets(lake, commit, spec)
    topic = spec.topic.name
    consumer = consumer_factory()
    try:
        ends = true_end_offsets(consumer, topic, timeout_s)
        topic_id = current_topic_id(consumer, topic)
        offsets, reset = reconcile(topic, recorded, topic_id)
        if reset is not None:
            from kafka import TopicPartition

            begins = consumer.beginning_offsets([TopicPartition(topic, p) for p in ends])
            offsets = {tp.partition: o for tp, o in begins.items()}
    finally:
        consumer.close()
    return Lag(
        topic=topic,
        main_commit=commit,
        main_offsets=offsets,
        end_offsets=ends,
        topic_id=topic_id,
        topic_reset=reset.to_dict() if reset is not None else None,
    )
