"""Helpers of the online-features integration tests: a stream with re-sends and malformed events, Kafka
producing, the updater, ingestion into lakeFS `main` and the offline model table of what `main` holds."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.spec.model import DatasetSpec


def stream(spec: DatasetSpec, events: list[dict[str, Any]], seed: int) -> list[tuple[bytes, bytes, str]]:
    """(key, value, kind) in event-time order; kind: event | resend (an earlier event of the same stretch sent
    again, as a retrying producer does, half of them with a later timestamp) | malformed (an event of a real
    entity the check rejects)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[bytes, bytes, str]] = []
    for i, event in enumerate(events):
        key = str(event[spec.entity_key]).encode()
        out.append((key, json.dumps(event).encode(), "event"))
        u = rng.random()
        if u < 0.01 and i >= 5:
            again = dict(events[i - int(rng.integers(1, 5))])
            if rng.random() < 0.5:  # re-stamped by the retrying producer: the earliest copy is the event
                again[spec.timestamp] += int(rng.integers(1, 5000))
            out.append((str(again[spec.entity_key]).encode(), json.dumps(again).encode(), "resend"))
        elif u < 0.016:
            bad = {**event, spec.event_id: f"bad-{i}", "amount": -1.0}  # below the spec's minimum
            out.append((key, json.dumps(bad).encode(), "malformed"))
    return out


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, str]]) -> None:
    from pipelines.devstack.produce.producer import KafkaSink, ProducerSettings

    sink = KafkaSink(bootstrap, topic, ProducerSettings(timeout_s=30.0, compression=None))
    try:
        for key, value, _ in messages:
            sink.send(key, value)
        delivered, _ = sink.finish()
        assert delivered == len(messages)
    finally:
        sink.close()


def make_updater(spec: DatasetSpec, store: Any, bootstrap: str) -> Any:
    from kafka import KafkaConsumer

    from pipelines.online.updater import Updater, consumer_settings

    updater = Updater(spec, store, lambda: KafkaConsumer(bootstrap_servers=[bootstrap], **consumer_settings(spec)))
    updater.start()
    return updater


def lookup_all(store: Any, entities: list[str], times: list[int], batch: int = 256) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for start in range(0, len(entities), batch):
        out += store.lookup(entities[start : start + batch], times[start : start + batch])
    return out


def ingest_to_main(lake: Any, spec: DatasetSpec, bootstrap: str) -> Any:
    """Ingestion's first stage (Kafka -> raw + quarantine + offsets, one commit) merged into main: what a
    published run leaves there for the raw history (the features and the gate are not needed here)."""
    from pipelines.ingest.parallel import kafka_consumer_factory
    from pipelines.ingest.stages import IngestSettings, ingest_raw

    raw = ingest_raw(
        lake, kafka_consumer_factory(bootstrap), spec, f"online-{uuid.uuid4().hex[:8]}", IngestSettings(workers=1)
    )
    lake.merge(raw.branch, "main", message=f"raw events for the online-store test ({raw.events})")
    lake.delete_branch(raw.branch)
    return raw


def offline_table(spark: Any, lake: Any, spec: DatasetSpec) -> pa.Table:
    """pipelines.features.build.model_table over every raw file on main, in a local Spark session."""
    from pipelines import layout
    from pipelines.features.build import model_table, read_raw

    paths = [p for p in lake.list_paths("main", layout.raw_prefix(spec)) if p.endswith(".parquet")]
    with tempfile.TemporaryDirectory() as tmp:
        files = [lake.download_file("main", p, Path(tmp) / f"{i:05d}.parquet") for i, p in enumerate(paths)]
        return model_table(spark, spec, read_raw(files, spec), files)


def assert_same(spec: DatasetSpec, online: dict[str, dict[str, float]], table: pa.Table) -> int:
    """Every online lookup equals the offline row of its event: exactly (both engines add a window's values
    in ascending order, so sums and means are the same bits; the issue asks 1e-9 relative for them). Returns how
    many events were compared."""
    ids = table.column(spec.event_id).to_pylist()
    compared = 0
    for agg in spec.aggregates:
        offline = dict(zip(ids, table.column(agg.name).to_pylist(), strict=True))
        wrong = [
            (eid, values[agg.name], offline[eid]) for eid, values in online.items() if values[agg.name] != offline[eid]
        ]
        assert not wrong, f"{agg.name}: {len(wrong)} of {len(online)} differ, e.g. {wrong[:5]}"
        compared = len(online)
    return compared
