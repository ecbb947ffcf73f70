"""Label AUC per arm for the canary analysis: the window's predictions (the predictions topic) joined by event id
with the labels that arrived (the spec's events topic: an event there carries its confirmed label).

The window is a range of offsets, not of times (Tansu's ListOffsets cannot be trusted with timestamps): the step's
first tick records both topics' end offsets (`positions`), later ticks read from there to the current end, at most
`max_records` per topic within `timeout_s`.

    start = positions(consumer_factory, [predictions_topic, events_topic])
    ... later ...
    auc = window_auc(consumer_factory, spec, predictions_topic, start, challenger, champion, arm)
    # (challenger AUC, champion AUC, labelled predictions of the smaller arm) or None
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pipelines.spec.model import DatasetSpec

ConsumerFactory = Callable[[], Any]


def positions(factory: ConsumerFactory, topics: list[str], timeout_s: float = 10.0) -> dict[str, dict[str, int]]:
    """{topic: {partition: end offset}} now (a missing topic: {})."""
    from pipelines.ingest.consume import true_end_offsets

    out: dict[str, dict[str, int]] = {}
    for topic in topics:
        consumer = factory()
        try:
            out[topic] = {str(p): o for p, o in true_end_offsets(consumer, topic, timeout_s).items()}
        except Exception:  # no such topic yet (nothing predicted, nothing produced): an empty window
            out[topic] = {}
        finally:
            consumer.close()
    return out


def read_since(
    factory: ConsumerFactory, topic: str, start: dict[str, int], timeout_s: float = 10.0, max_records: int = 200_000
) -> Iterator[bytes]:
    """The values of `topic` from `start` (partition -> offset; new partitions from 0) to its end now."""
    from kafka import TopicPartition

    from pipelines.ingest.consume import true_end_offsets

    consumer = factory()
    try:
        try:
            ends = true_end_offsets(consumer, topic, timeout_s)
        except Exception:
            return
        tps = {p: TopicPartition(topic, p) for p, end in ends.items() if end > int(start.get(str(p), 0))}
        if not tps:
            return
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, int(start.get(str(p), 0)))
        done: set[int] = set()
        seen = 0
        deadline = time.monotonic() + timeout_s
        while len(done) < len(tps) and seen < max_records and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=200, max_records=5000).items():
                for message in messages:
                    if message.offset < ends[tp.partition]:
                        seen += 1
                        yield message.value
                if consumer.position(tp) >= ends[tp.partition]:
                    done.add(tp.partition)
    finally:
        consumer.close()


def auc(scores: list[float], labels: list[int]) -> float | None:
    """ROC AUC; None without both classes."""
    y = np.asarray(labels)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def join_auc(
    predictions: list[dict[str, Any]], labels: dict[str, int], challenger: tuple[str, str], champion: tuple[str, str]
) -> tuple[float, float, int] | None:
    """(challenger AUC, champion AUC, labelled predictions of the smaller arm) for the arms given as (version,
    arm), from prediction log records and labels by event id; None when an arm has no AUC."""
    arms: dict[tuple[str, str], tuple[list[float], list[int]]] = {challenger: ([], []), champion: ([], [])}
    for record in predictions:
        key = (str(record.get("model_version")), str(record.get("arm")))
        label = labels.get(str(record.get("event_id")))
        if key in arms and label is not None:
            arms[key][0].append(float(record["score"]))
            arms[key][1].append(int(label))
    mine, theirs = auc(*arms[challenger]), auc(*arms[champion])
    if mine is None or theirs is None:
        return None
    return mine, theirs, min(len(arms[challenger][1]), len(arms[champion][1]))


def window_auc(
    factory: ConsumerFactory,
    spec: DatasetSpec,
    predictions_topic: str,
    start: dict[str, dict[str, int]],
    challenger: tuple[str, str],
    champion: tuple[str, str],
    timeout_s: float = 10.0,
) -> tuple[float, float, int] | None:
    predictions = []
    for value in read_since(factory, predictions_topic, start.get(predictions_topic, {}), timeout_s):
        try:
            predictions.append(orjson.loads(value))
        except orjson.JSONDecodeError:
            continue
    if not predictions:
        return None
    wanted = {str(p.get("event_id")) for p in predictions}
    labels: dict[str, int] = {}
    for value in read_since(factory, spec.topic.name, start.get(spec.topic.name, {}), timeout_s):
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # malformed events are ingestion's business
        if isinstance(event, dict) and str(event.get(spec.event_id)) in wanted:
            label = event.get(spec.label)
            if label in (0, 1, True, False):
                labels[str(event[spec.event_id])] = int(label)
    return join_auc(predictions, labels, challenger, champion)


@dataclass
class KafkaLabels:
    """The label source the canary analysis sensor uses: both topics on one Kafka."""

    factory: ConsumerFactory
    spec: DatasetSpec
    predictions_topic: str
    timeout_s: float = 10.0

    def positions(self) -> dict[str, dict[str, int]]:
        return positions(self.factory, [self.predictions_topic, self.spec.topic.name], self.timeout_s)

    def window_auc(
        self, start: dict[str, dict[str, int]], challenger: tuple[str, str], champion: tuple[str, str]
    ) -> tuple[float, float, int] | None:
        return window_auc(self.factory, self.spec, self.predictions_topic, start, challenger, champion, self.timeout_s)
