"""The current window: the latest events of the spec's topic (and the latest predictions), read from Kafka.

By count: the newest `drift.window_events` events (the last N of each partition, merged by Kafka timestamp);
by time: of those, the ones produced in the last `drift.window_minutes`. Each event is checked against the spec
exactly as ingestion checks it: valid ones become an Arrow table with ingestion's column types, rejected ones
count as quarantined, and numeric values outside the spec's min/max are counted per feature.

Predictions (the serving log, FLYWHEEL_PREDICTIONS_TOPIC, default `predictions`): one JSON object per
prediction with at least `event_id` and `score` (and `model_version`); an absent topic is an empty window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines import layout
from pipelines.config import setting
from pipelines.monitoring.check import Quality
from pipelines.spec.events import checker_for
from pipelines.spec.model import DatasetSpec, NumericFeature

try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads

PREDICTIONS_TOPIC_ENV = "FLYWHEEL_PREDICTIONS_TOPIC"
DEFAULT_PREDICTIONS_TOPIC = "predictions"


def predictions_topic() -> str:
    return setting(PREDICTIONS_TOPIC_ENV) or DEFAULT_PREDICTIONS_TOPIC


@dataclass
class Message:
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


@dataclass
class Window:
    """Valid events of the window as a table (spec field order), what reading them counted, and where in
    Kafka they are (per partition: [first offset, last offset + 1]) for the evidence snapshot."""

    topic: str
    table: pa.Table
    quality: Quality
    offsets: dict[int, list[int]] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def rows(self) -> int:
        return self.table.num_rows


@dataclass
class Predictions:
    event_ids: np.ndarray  # object (str)
    scores: np.ndarray  # float64
    model_versions: np.ndarray  # object (str, "" when not sent)
    malformed: int = 0

    def __len__(self) -> int:
        return len(self.scores)

    def of_version(self, version: str | None) -> Predictions:
        """Only the predictions of one model version (all when version is None or none carries a version)."""
        if version is None or not (self.model_versions != "").any():
            return self
        # serving may send "3", "v3" or "<model>/3"
        keep = np.array([v == version or v == f"v{version}" or v.endswith(f"/{version}") for v in self.model_versions])
        return Predictions(self.event_ids[keep], self.scores[keep], self.model_versions[keep], self.malformed)


def read_latest(
    consumer_factory: Callable[[], Any], topic: str, count: int, minutes: float | None = None, timeout_s: float = 30.0
) -> list[Message]:
    """The newest `count` messages of a topic (and of the last `minutes`, when given), oldest first; [] when
    the topic does not exist."""
    from pipelines.ingest.consume import consume, true_end_offsets

    consumer = consumer_factory()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            consumer.topics()  # one metadata refresh: a fresh consumer may not know the topic yet
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        ends = true_end_offsets(consumer, topic, timeout_s)
        from kafka import TopicPartition

        begins = consumer.beginning_offsets([TopicPartition(topic, p) for p in ends])
        start = {p: max(begins[TopicPartition(topic, p)], end - count) for p, end in ends.items()}
        collected: list[Message] = []

        def sink(partition: int, records: list[Any]) -> None:
            collected.extend(Message(partition, r.offset, int(r.timestamp), r.value) for r in records)

        consume(consumer, topic, start, sink, max_seconds=timeout_s, partitions=sorted(ends))
    finally:
        consumer.close()
    collected.sort(key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    if minutes is not None:
        cutoff = int(time.time() * 1000 - minutes * 60_000)
        collected = [m for m in collected if m.timestamp_ms >= cutoff]
    return collected[-count:]


def events_window(messages: list[Message], spec: DatasetSpec, topic: str | None = None) -> Window:
    """Check every message against the spec: valid events as a table, quarantined and out-of-range counted.

    An event whose only fault is a category outside the spec's list counts as quarantined (ingestion will
    quarantine it) and stays in the table with that value, so chi-squared counts it as unseen."""
    checker = checker_for(spec)
    fields = spec.event_fields
    columns: list[list[Any]] = [[] for _ in fields]
    quarantined = 0
    numeric = [f for f in spec.numeric_features if f.min is not None or f.max is not None]
    sent: dict[str, list[float]] = {f.name: [] for f in numeric}
    offsets: dict[int, list[int]] = {}
    categories = [(fields.index(f.name), f.name, frozenset(f.values)) for f in spec.categorical_features]
    stand_in = {fields.index(f.name): f.values[0] for f in spec.categorical_features}
    for m in messages:
        span = offsets.setdefault(m.partition, [m.offset, m.offset + 1])
        span[0], span[1] = min(span[0], m.offset), max(span[1], m.offset + 1)
        try:
            obj = _loads(m.value)
        except Exception:  # not JSON at all: quarantined, nothing to measure
            quarantined += 1
            continue
        unseen: list[tuple[int, str]] = []
        if isinstance(obj, dict):
            for f in numeric:
                v = obj.get(f.name)
                if type(v) in (int, float):
                    sent[f.name].append(float(v))
            # A category outside the spec's list is quarantined by ingestion, yet it is the strongest drift
            # signal of all: the event is checked with an allowed stand-in and keeps its value in the window.
            for index, name, allowed in categories:
                v = obj.get(name)
                if isinstance(v, str) and v not in allowed:
                    unseen.append((index, v))
            if unseen:
                obj = {**obj, **{fields[i]: stand_in[i] for i, _ in unseen}}
        values = checker.values_obj(obj)
        if isinstance(values, str) or unseen:
            quarantined += 1
        if isinstance(values, str):
            continue
        for index, value in unseen:
            values[index] = value
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    quality = Quality(events=len(messages), quarantined=quarantined, out_of_range=_out_of_range(numeric, sent))
    schema = layout.raw_schema(spec)
    arrays = [pa.array(col, type=schema.field(name).type) for name, col in zip(fields, columns, strict=True)]
    table = pa.Table.from_arrays(arrays, names=fields)
    return Window(
        topic=topic or spec.topic.name,
        table=table,
        quality=quality,
        offsets=offsets,
        first_ms=messages[0].timestamp_ms if messages else None,
        last_ms=messages[-1].timestamp_ms if messages else None,
    )


def _out_of_range(features: list[NumericFeature], sent: dict[str, list[float]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in features:
        values = np.asarray(sent[f.name], dtype=np.float64)
        bad = np.zeros(len(values), dtype=bool)
        if f.min is not None:
            bad |= values < f.min
        if f.max is not None:
            bad |= values > f.max
        out[f.name] = int(bad.sum())
    return out


def parse_predictions(messages: list[Message]) -> Predictions:
    """The serving log's records: {"event_id", "score", "model_version", ...}; malformed ones are counted."""
    ids: list[str] = []
    scores: list[float] = []
    versions: list[str] = []
    malformed = 0
    for m in messages:
        try:
            obj = _loads(m.value)
            event_id, score = obj["event_id"], float(obj["score"])
            if not isinstance(event_id, str) or not np.isfinite(score):
                raise ValueError
        except Exception:
            malformed += 1
            continue
        ids.append(event_id)
        scores.append(score)
        versions.append(str(obj.get("model_version") or ""))
    return Predictions(
        np.asarray(ids, dtype=object), np.asarray(scores, np.float64), np.asarray(versions, dtype=object), malformed
    )


def labelled(predictions: Predictions, window: Window, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the predictions whose event is in the window (joined by event id)."""
    if not len(predictions) or not window.rows:
        return np.array([], dtype=np.int64), np.array([], dtype=np.float64)
    ids = window.table.column(spec.event_id).to_numpy(zero_copy_only=False)
    labels = window.table.column(spec.label).to_numpy(zero_copy_only=False)
    label_of = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    keep = [i for i, e in enumerate(predictions.event_ids.tolist()) if e in label_of]
    y = np.asarray([label_of[predictions.event_ids[i]] for i in keep], dtype=np.int64)
    return y, predictions.scores[keep]
