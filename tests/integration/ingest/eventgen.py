"""Synthetic events for any spec (test helper): valid events from the spec's types and ranges, and
malformed ones of several kinds. Deterministic for a seed."""

from __future__ import annotations

import json
import random
from typing import Any

from pipelines.spec.model import DatasetSpec
from pipelines.spec.samples import sample_events


def valid_event(
    spec: DatasetSpec, i: int, rng: random.Random, *, entities: int = 200, label_rate: float = 0.05, prefix: str = "e"
) -> dict[str, Any]:
    """Event number i from the project's one generator of rows (pipelines.spec.samples)."""
    return sample_events(
        spec, 1, seed=rng.randrange(2**31), start=i, entities=entities, label_rate=label_rate, prefix=prefix
    )[0]


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
