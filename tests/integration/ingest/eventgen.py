"""Synthetic events for any spec (test helper): valid events from the spec's types and ranges, and
malformed ones of several kinds. Deterministic for a seed."""

from __future__ import annotations

import json
import random
from typing import Any

from pipelines.spec.model import CategoricalFeature, DatasetSpec, NumericFeature

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def valid_event(
    spec: DatasetSpec, i: int, rng: random.Random, *, entities: int = 200, label_rate: float = 0.05, prefix: str = "e"
) -> dict[str, Any]:
    event: dict[str, Any] = {
        spec.event_id: f"{prefix}-{i:09d}",
        spec.entity_key: f"k{rng.randrange(entities):05d}",
        spec.timestamp: BASE_MS + i * 1000 + rng.randrange(1000),
        spec.label: rng.random() < label_rate,
    }
    for f in spec.features:
        if f.nullable and rng.random() < 0.1:
            event[f.name] = None
        elif isinstance(f, NumericFeature):
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else lo + 1000.0
            hi = min(hi, lo + 1000.0)
            event[f.name] = rng.randint(int(lo), int(hi)) if f.integer else round(rng.uniform(lo, hi), 2)
        elif isinstance(f, CategoricalFeature):
            event[f.name] = rng.choice(f.values)
        else:
            event[f.name] = rng.random() < 0.5
    return event


def malformed_payload(spec: DatasetSpec, i: int, rng: random.Random, prefix: str = "bad", kind: int = 0) -> bytes:
    """One of four malformations (kind 0-3); each one is a reason EventChecker must report."""
    kind = kind % 4
    if kind == 0:
        return b"{not json" + str(i).encode()
    event = valid_event(spec, i, rng, prefix=prefix)
    if kind == 1:
        del event[spec.timestamp]
    elif kind == 2:
        event[spec.label] = "maybe"
    else:
        numeric = spec.numeric_features[0]
        event[numeric.name] = "NaN-string"
    return json.dumps(event).encode()


def produce(
    bootstrap: str,
    spec: DatasetSpec,
    n: int,
    *,
    malformed_every: int = 0,
    seed: int = 1,
    start: int = 0,
    prefix: str = "e",
    label_rate: float = 0.05,
) -> dict[str, int]:
    """Send n events (every `malformed_every`-th malformed) keyed by entity; returns counts."""
    from kafka import KafkaProducer

    rng = random.Random(seed)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_block_ms=30_000,
        request_timeout_ms=30_000,
    )
    counts = {"valid": 0, "malformed": 0}
    for i in range(start, start + n):
        if malformed_every and i % malformed_every == malformed_every - 1:
            payload = malformed_payload(spec, i, rng, prefix=f"{prefix}bad", kind=counts["malformed"])
            counts["malformed"] += 1
            key = None
        else:
            event = valid_event(spec, i, rng, prefix=prefix, label_rate=label_rate)
            payload = json.dumps(event).encode()
            key = str(event[spec.entity_key]).encode()
            counts["valid"] += 1
        producer.send(spec.topic.name, value=payload, key=key)
    producer.flush(60)
    producer.close(10)
    return counts
