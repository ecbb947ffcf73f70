"""One micro-batch: the spec's aggregates from the online store (one lookup for the whole batch), the model
inputs of each record, one call per model version, the prediction log. Runs in the batcher's worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.features.online.api import OnlineFeatures
from pipelines.serving.models import LoadedModel, Snapshot
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.router import CHALLENGER_ARM, SHADOW_ARM, Route
from pipelines.serving.schemas import ServingRecord


@dataclass(slots=True)
class Item:
    record: ServingRecord
    request_id: str
    route: Route
    snapshot: Snapshot


@dataclass(slots=True)
class Scored:
    score: float
    version: str
    arm: str


class Scorer:
    def __init__(
        self,
        store: OnlineFeatures,
        metrics: dict[str, Any],
        predlog: PredictionLog | None,
        needs_lookup: bool,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.predlog = predlog
        self.needs_lookup = needs_lookup

    def __call__(self, items: list[Item]) -> list[Scored]:
        n = len(items)
        if self.needs_lookup:
            started = time.perf_counter()
            aggregates = self.store.lookup(
                [i.record.entity for i in items], [i.record.event_time_ms for i in items]
            )  # raises OnlineStoreUnavailable: the whole batch answers 503
            self.metrics["flywheel_serving_online_lookup_latency_seconds"].observe(time.perf_counter() - started)
            rows = [{**i.record.features, **agg} for i, agg in zip(items, aggregates, strict=True)]
        else:
            rows = [i.record.features for i in items]

        # Group by the model object: a batch may span a swap (two snapshots), so versions are told apart by object.
        answers: dict[int, tuple[LoadedModel, list[int]]] = {}
        shadows: dict[int, tuple[LoadedModel, list[int]]] = {}
        for index, item in enumerate(items):
            snap = item.snapshot
            model = snap.challenger if item.route.arm == CHALLENGER_ARM and snap.challenger else snap.champion
            assert model is not None  # the app answers 503 before routing when no champion is loaded
            answers.setdefault(id(model), (model, []))[1].append(index)
            if item.route.shadow and snap.challenger is not None:
                shadows.setdefault(id(snap.challenger), (snap.challenger, []))[1].append(index)

        results: list[Scored | None] = [None] * n
        logged: list[dict[str, Any]] = []
        now_ms = int(time.time() * 1000)
        for model, indices in answers.values():
            scores = self._score(model, rows, indices)
            for index, score in zip(indices, scores, strict=True):
                arm = items[index].route.arm
                results[index] = Scored(float(score), model.version, arm)
            self._observe(model.version, items[indices[0]].route.arm, scores)
            if self.predlog is not None:
                logged += self._log(items, rows, indices, scores, model.version, None, now_ms)
        for model, indices in shadows.values():
            scores = self._score(model, rows, indices)
            self._observe(model.version, SHADOW_ARM, scores)
            if self.predlog is not None:
                logged += self._log(items, rows, indices, scores, model.version, SHADOW_ARM, now_ms)
        if logged and self.predlog is not None:
            self.predlog.offer(logged)
        return results  # type: ignore[return-value]  # every index is set by exactly one group

    @staticmethod
    def _score(model: LoadedModel, rows: Sequence[dict[str, Any]], indices: list[int]) -> np.ndarray:
        return model.predict_rows([rows[i] for i in indices])

    def _observe(self, version: str, arm: str, scores: np.ndarray) -> None:
        self.metrics["flywheel_serving_predictions"].labels(version, arm).inc(len(scores))
        observe_many(self.metrics["flywheel_serving_prediction_score"].labels(version), scores)

    @staticmethod
    def _log(
        items: list[Item],
        rows: Sequence[dict[str, Any]],
        indices: list[int],
        scores: np.ndarray,
        version: str,
        arm: str | None,
        now_ms: int,
    ) -> list[dict[str, Any]]:
        out = []
        for index, score in zip(indices, scores.tolist(), strict=True):
            item = items[index]
            out.append(
                {
                    "request_id": item.request_id,
                    "event_id": item.record.event_id,
                    "entity": item.record.entity,
                    "model_version": version,
                    "arm": arm or item.route.arm,
                    "features": rows[index],
                    "score": score,
                    "time_ms": now_ms,
                    "event_time_ms": item.record.event_time_ms,
                }
            )
        return out


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every value but NaN, as one update per bucket (a score histogram saw one
    observe per prediction: a tenth of a micro-batch's CPU). Reads prometheus_client's per-bucket counters;
    a client without them gets the observe loop."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    values = values[~np.isnan(values)]  # both paths skip NaN (observe() would make the sum NaN)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() counts a value in the first bucket whose bound is >= it (the last bound is +Inf)
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for index, count in enumerate(counts.tolist()[: len(bounds)]):
        if count:
            buckets[index].inc(count)
    total.inc(float(values.sum()))
