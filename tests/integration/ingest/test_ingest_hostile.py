"""Hostile events mixed into a real stream (Tansu Kafka -> StagedWriter -> Spark -> GX -> embedded lakeFS):
each one is quarantined with its reason or, where it is valid, lands on main typed as the spec says; the
stream never wedges on one of them, in-process or with the parallel readers."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eventgen import valid_event
from harness import IngestEnv, make_env

from pipelines import layout
from pipelines.ingest.stages import IngestSettings
from pipelines.lake import MAIN
from pipelines.lakecache import local_copies
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec

pytestmark = pytest.mark.integration

FLOAT = "distance_from_home_km"  # a float feature; its maximum is removed below, so any finite float is in range


def unbounded_spec() -> DatasetSpec:
    data = load_spec("transactions").model_dump(mode="json")
    for feature in data["features"]:
        if feature["name"] == FLOAT:
            feature["max"] = None
    return DatasetSpec.model_validate(data)


def with_text(event: dict, field: str, json_text: str) -> bytes:
    """`event` as JSON with `field` holding `json_text` verbatim (what json.dumps cannot write)."""
    return json.dumps({**event, field: "__X__"}).replace('"__X__"', json_text).encode()


def hostile(spec: DatasetSpec, rng: random.Random) -> list[tuple[str, bytes, str | None]]:
    """(name, payload, the reason it must be quarantined with; None: it must land on main)."""

    def base(i: int) -> dict:
        return valid_event(spec, 90_000 + i, rng, prefix="hostile")

    dup = json.dumps(base(2)).encode()[:-1] + b', "amount": 1.0}'
    return [
        ("deep label", with_text(base(0), spec.label, "[" * 1000 + "]" * 1000), "is_fraud must be true/false"),
        ("deep object label", with_text(base(1), spec.label, '{"a":' * 900 + "1" + "}" * 900), "is_fraud must be"),
        ("duplicate key", dup, "duplicate key 'amount'"),
        ("NaN", with_text(base(3), "amount", "NaN"), "not valid JSON"),
        ("Infinity", with_text(base(4), "amount", "Infinity"), "not valid JSON"),
        ("1e400", with_text(base(5), "amount", "1e400"), "not valid JSON"),
        ("'NaN' string", with_text(base(6), "amount", '"NaN"'), "amount must be a number, got str"),
        ("u64 in an int feature", with_text(base(7), "customer_tenure_days", str(2**64 - 1)), "is above the maximum"),
        # valid, however odd: they must reach main
        ("2**53+1 in a float feature", with_text(base(8), FLOAT, "9007199254740993"), None),
        ("deep extra field", with_text(base(9), "extra", "[" * 1000 + '"x"' + "]" * 1000), None),
    ]


def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> list[tuple[int, int]]:
    """Send in order, round-robin over partitions 0..2; (partition, offset) of each."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=30_000)
    try:
        futures = [producer.send(topic, value=p, partition=n % 3) for n, p in enumerate(payloads)]
        producer.flush(60)
        return [(m.partition, m.offset) for m in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close(10)


def read_table(env: IngestEnv, prefix: str) -> pa.Table:
    files = local_copies(env.lake, MAIN, prefix)
    return pa.concat_tables(pq.read_table(f) for f in files)


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "parallel"])
def test_hostile_events_are_quarantined_and_the_stream_goes_on(
    workers: int, tmp_path, kafka_bootstrap: str, lakefs_env: dict[str, str], spark, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path, unbounded_spec(), kafka_bootstrap, lakefs_env, spark)
    monkeypatch.setenv("LAKEFS_REPOSITORY", env.repository)
    spec = env.spec
    rng = random.Random(7)
    bad = hostile(spec, rng)
    valid = [json.dumps(valid_event(spec, i, rng)).encode() for i in range(1200)]
    # the hostile events spread through the stream, one every 100 valid ones
    payloads: list[bytes] = []
    for n, event in enumerate(valid):
        payloads.append(event)
        if n % 100 == 50 and n // 100 < len(bad):
            payloads.append(bad[n // 100][1])
    assert len(payloads) == 1200 + len(bad)
    positions = produce(kafka_bootstrap, spec.topic.name, payloads)
    where = {payload: pos for payload, pos in zip(payloads, positions, strict=True)}

    outcome = env.run(settings=IngestSettings(workers=workers))
    assert outcome.status == "published"
    must_quarantine = {where[p]: reason for _, p, reason in bad if reason is not None}
    must_land = [where[p] for _, p, reason in bad if reason is None]
    assert (outcome.raw.events, outcome.raw.quarantined) == (len(payloads), len(must_quarantine))

    q = read_table(env, layout.quarantine_prefix(spec))
    got = {
        (part, off): reason
        for part, off, reason in zip(
            q.column("partition").to_pylist(),
            q.column("offset").to_pylist(),
            q.column("reason").to_pylist(),
            strict=True,
        )
    }
    assert set(got) == set(must_quarantine)  # exactly the hostile ones, at their offsets
    for pos, fragment in must_quarantine.items():
        assert got[pos].startswith(fragment) or fragment in got[pos], (pos, got[pos], fragment)
        assert len(got[pos]) < 200
    assert sorted(q.column("raw").to_pylist()) == sorted(p for _, p, reason in bad if reason is not None)

    raw_t = read_table(env, layout.raw_prefix(spec))
    assert raw_t.num_rows == 1200 + len(must_land)
    landed = {
        (part, off): row
        for part, off, row in zip(
            raw_t.column(PARTITION_COLUMN).to_pylist(),
            raw_t.column(OFFSET_COLUMN).to_pylist(),
            raw_t.to_pylist(),
            strict=True,
        )
    }
    assert {where[p] for p in valid} | set(must_land) == set(landed)
    assert landed[must_land[0]][FLOAT] == 9007199254740992.0  # the nearest float64, stored as float
    feats = read_table(env, layout.features_prefix(spec))
    assert feats.num_rows == 1200 + len(must_land)
