"""Kafka lag of the dataset: how many events the broker holds beyond the offsets committed on `main`.

The end of each partition is the high watermark of a fetch (see consume.true_end_offsets), so the lag
is right on Tansu too, whose ListOffsets answer can stop short of the last records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.ingest.consume import true_end_offsets
from pipelines.ingest.stages import read_offsets
from pipelines.lake import MAIN, Lake
from pipelines.spec.model import DatasetSpec


@dataclass(frozen=True)
class Lag:
    topic: str
    main_commit: str | None  # None before the first ingestion (no repository or no main yet)
    main_offsets: dict[int, int]
    end_offsets: dict[int, int]

    @property
    def per_partition(self) -> dict[int, int]:
        return {p: max(0, end - self.main_offsets.get(p, 0)) for p, end in self.end_offsets.items()}

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())

    def run_key(self, spec: DatasetSpec) -> str:
        """Same main commit and offsets -> same key, so a sensor never launches two runs for one state."""
        offsets = json.dumps(self.main_offsets, sort_keys=True)
        digest = hashlib.sha256(f"{self.main_commit}|{offsets}".encode()).hexdigest()[:16]
        return f"ingest-{spec.name}-{(self.main_commit or 'empty')[:16]}-{digest}"


def kafka_lag(lake: Lake, consumer_factory: Callable[[], Any], spec: DatasetSpec, timeout_s: float = 10.0) -> Lag:
    lake.ensure_repository()
    commit = lake.resolve(MAIN)
    offsets = read_offsets(lake, commit, spec)
    consumer = consumer_factory()
    try:
        ends = true_end_offsets(consumer, spec.topic.name, timeout_s)
    finally:
        consumer.close()
    return Lag(topic=spec.topic.name, main_commit=commit, main_offsets=offsets, end_offsets=ends)
