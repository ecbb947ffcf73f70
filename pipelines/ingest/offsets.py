"""The offsets file on lakeFS and the topic it belongs to (KIP-516 topic ids).

`_flywheel/offsets/<topic>.json` is committed with the data it produced:

    {"topic": "<name>", "topic_id": "<uuid or null>", "offsets": {"<partition>": next offset to read}}

Files written before topic ids were recorded are a flat {"<partition>": offset} map; they read as an
unknown topic id. A topic deleted and recreated under the same name (on Kafka, or a restarted memory-only
Tansu broker) gets a new topic id and a log that starts over, so offsets recorded for the old id say
nothing about the new log. `reconcile` turns that into "read the new log from its beginning"; with the
same id (or an unknown one) the stored offsets stand and a log that ends before them stays an error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pipelines import layout
from pipelines.spec.model import DatasetSpec

_NO_ID = {"", str(uuid.UUID(int=0))}  # Kafka's "no topic id" (pre-2.8 brokers, metadata < v10)


@dataclass(frozen=True)
class StoredOffsets:
    offsets: dict[int, int]
    topic_id: str | None = None  # None: unknown (an old file, or a broker without topic ids)


@dataclass(frozen=True)
class TopicReset:
    """The topic's log was replaced since main's offsets were recorded: read the new one from its start."""

    topic: str
    previous_topic_id: str
    topic_id: str
    previous_offsets: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "previous_topic_id": self.previous_topic_id,
            "topic_id": self.topic_id,
            "previous_offsets": {str(p): o for p, o in sorted(self.previous_offsets.items())},
        }

    def describe(self) -> str:
        return (
            f"Kafka topic {self.topic!r} was recreated (topic id {self.previous_topic_id} -> {self.topic_id}; "
            "e.g. the memory-only embedded broker restarted): main's offsets "
            f"{self.to_dict()['previous_offsets']} belong to the old log, so every partition of the new log is "
            "read from its earliest offset; events re-sent with known event ids are deduplicated by the model table"
        )


def normalize_topic_id(value: Any) -> str | None:
    text = str(value) if value is not None else ""
    return None if text in _NO_ID else text


def parse_offsets_file(data: dict[str, Any]) -> StoredOffsets:
    if isinstance(data.get("offsets"), dict):
        offsets = {int(p): int(o) for p, o in data["offsets"].items()}
        return StoredOffsets(offsets, normalize_topic_id(data.get("topic_id")))
    return StoredOffsets({int(p): int(o) for p, o in data.items()})  # the flat format: id unknown


def offsets_document(topic: str, offsets: dict[str, int] | dict[int, int], topic_id: str | None) -> dict[str, Any]:
    return {
        "topic": topic,
        "topic_id": topic_id,
        "offsets": {str(p): int(o) for p, o in sorted(offsets.items(), key=lambda po: int(po[0]))},
    }


def read_stored_offsets(lake: Any, ref: str, spec: DatasetSpec) -> StoredOffsets:
    path = layout.offsets_path(spec)
    if not lake.exists(ref, path):
        return StoredOffsets({})
    return parse_offsets_file(lake.read_json(ref, path))


def current_topic_id(consumer: Any, topic: str) -> str | None:
    """The topic id from the consumer's cluster metadata (no extra request: partitions_for_topic already
    fetched it, MetadataResponse v10+); None when the client or broker does not provide one."""
    cluster = getattr(consumer, "_cluster", None) or getattr(getattr(consumer, "_client", None), "cluster", None)
    lookup = getattr(cluster, "topic_id", None)
    return normalize_topic_id(lookup(topic)) if callable(lookup) else None


def reconcile(topic: str, stored: StoredOffsets, topic_id: str | None) -> tuple[dict[int, int], TopicReset | None]:
    """The offsets to start from, and the reset when the recorded topic id is not the current one.

    Both ids must be known to call it a reset: an unknown id keeps the stored offsets (and so the strict
    "log ends before main's offsets" error), because a mismatch cannot be told from real data loss.
    """
    if stored.topic_id is None or topic_id is None or stored.topic_id == topic_id:
        return dict(stored.offsets), None
    return {}, TopicReset(topic, stored.topic_id, topic_id, dict(stored.offsets))
