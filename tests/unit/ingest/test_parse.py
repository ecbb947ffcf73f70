"""Parsing and quarantine of Kafka records, without a broker: every record ends up somewhere, typed."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest.consume import ConsumeResult
from pipelines.ingest.parse import QUARANTINE_SCHEMA, StagedWriter, reason_kind
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.spec import load_spec

Record = namedtuple("Record", "value offset timestamp")
SPEC = load_spec("transactions")


def event(i: int, **overrides) -> dict:
    base = {
        "event_id": f"e{i}",
        "customer_id": 17 if i % 2 else "c1",
        "event_time": "2026-01-01T00:00:00+00:00" if i % 3 else 1767225600 + i,
        "is_fraud": i % 5 == 0,
        "amount": 10 if i % 2 else 12.5,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "chip",
        "device_age_days": None,
        "customer_tenure_days": 100,
        "hour_of_day": 3,
        "distance_from_home_km": 1.5,
        "card_present": True,
        "is_international": False,
    }
    base.update(overrides)
    return base


def records(payloads: list[bytes | None], first_offset: int = 0) -> list[Record]:
    return [Record(p, first_offset + n, 1_700_000_000_000) for n, p in enumerate(payloads)]


def test_valid_and_malformed_are_split_and_typed(tmp_path: Path) -> None:
    good = [json.dumps(event(i)).encode() for i in range(10)]
    bad = [b"{nope", json.dumps(event(99, amount=-1)).encode(), None, json.dumps([1, 2]).encode()]
    writer = StagedWriter(SPEC, tmp_path, "t", rows_per_group=4)
    writer(0, records(good[:6]))
    writer(2, records(bad + good[6:], first_offset=100))
    staged = writer.close()

    assert (staged.valid, staged.quarantined) == (10, 4)
    raw = pq.read_table(staged.raw_files)
    assert raw.schema == raw_schema(SPEC)
    assert raw.num_rows == 10
    assert raw.column("customer_id").to_pylist()[:2] == ["c1", "17"]  # integer keys normalized to strings
    assert raw.column("amount").type.id == raw_schema(SPEC).field("amount").type.id
    assert raw.column(PARTITION_COLUMN).to_pylist() == [0] * 6 + [2] * 4
    assert raw.column(OFFSET_COLUMN).to_pylist() == [0, 1, 2, 3, 4, 5, 104, 105, 106, 107]

    q = pq.read_table(staged.quarantine_files)
    assert q.schema == QUARANTINE_SCHEMA
    assert q.column("offset").to_pylist() == [100, 101, 102, 103]
    reasons = q.column("reason").to_pylist()
    assert reasons[0].startswith("not valid JSON")
    assert "amount=-1 is below the minimum" in reasons[1]
    assert "no value" in reasons[2]
    assert "not an object" in reasons[3]
    assert q.column("raw").to_pylist()[0] == b"{nope"
    assert sum(staged.reasons.values()) == 4


def test_files_roll_over(tmp_path: Path) -> None:
    writer = StagedWriter(SPEC, tmp_path, "t", rows_per_group=5, rows_per_file=10)
    payloads = [json.dumps(event(i)).encode() for i in range(25)]
    for start in range(0, 25, 5):  # row groups are flushed between polls (sink calls)
        writer(1, records(payloads[start : start + 5], first_offset=start))
    staged = writer.close()
    assert [f.name for f in staged.raw_files] == [f"part-t-0000{n}.parquet" for n in range(3)]
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in staged.raw_files) == 25
    assert staged.quarantine_files == []


def test_abort_closes_open_files_without_flushing(tmp_path: Path) -> None:
    writer = StagedWriter(SPEC, tmp_path, "t", rows_per_group=4)
    payloads = [json.dumps(event(i)).encode() for i in range(8)]
    writer(0, records(payloads[:6]))  # reaches the row-group size: flushed
    writer(0, records(payloads[6:], first_offset=6))  # held in memory
    writer.abort()
    (part,) = (tmp_path / "raw").iterdir()
    assert pq.ParquetFile(part).metadata.num_rows == 6  # a readable, closed file; the held rows were not added
    assert writer._raw._writer is None and writer._quarantine._writer is None


def test_reason_kind_has_low_cardinality() -> None:
    assert reason_kind("amount=-3.5 is below the minimum 0.01") == reason_kind("amount=-7 is below the minimum 0.01")
    assert reason_kind("not valid JSON: Expecting value: line 1 column 2 (char 1)") == "not valid JSON"
    assert "merchant_category" in reason_kind("merchant_category='x' is not an allowed value")


def test_offset_ranges_only_cover_read_partitions() -> None:
    result = ConsumeResult("t", {0: 5, 1: 0, 2: 7}, {0: 9, 1: 0, 2: 7}, {0: 9, 1: 0, 2: 7}, 4, "caught_up", 0.1)
    assert result.offset_ranges == {"0": [5, 9]}


def test_fewer_gc_passes_restores_the_thresholds() -> None:
    import gc

    import pytest

    from pipelines.ingest.consume import fewer_gc_passes

    before = gc.get_threshold()
    with fewer_gc_passes(50_000):
        assert gc.get_threshold()[0] == 50_000
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_gc_passes():
        raise RuntimeError("a failed read")
    assert gc.get_threshold() == before


def test_a_failed_read_inside_the_writer_aborts_it(tmp_path: Path) -> None:
    import pytest

    writer = StagedWriter(SPEC, tmp_path, "t", rows_per_group=4)
    with pytest.raises(RuntimeError), writer:
        writer(0, records([json.dumps(event(i)).encode() for i in range(6)]))
        raise RuntimeError("the broker went away")
    assert writer._raw._writer is None  # closed by abort(), nothing left open


class Message:
    """The shape of a confluent-kafka data message (methods, not attributes)."""

    def __init__(self, value: bytes | None, partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = value, partition, offset

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def test_librdkafka_messages_stage_the_same_files_as_kafka_python_records(tmp_path: Path) -> None:
    good = [json.dumps(event(i)).encode() for i in range(10)]
    bad = [b"{nope", json.dumps(event(99, amount=-1)).encode(), None]
    by_records = StagedWriter(SPEC, tmp_path / "a", "t", rows_per_group=4)
    by_records(0, records(good[:6]))
    by_records(2, records(bad + good[6:], first_offset=100))
    by_messages = StagedWriter(SPEC, tmp_path / "b", "t", rows_per_group=4)
    # One consume() can mix partitions; each partition's messages stay in offset order.
    mixed = [Message(v, 0, n) for n, v in enumerate(good[:6])]
    mixed[3:3] = [Message(v, 2, 100 + n) for n, v in enumerate(bad + good[6:])]
    by_messages.add_messages(mixed[:5])
    by_messages.add_messages(mixed[5:])
    a, b = by_records.close(), by_messages.close()

    assert (b.valid, b.quarantined, b.reasons) == (a.valid, a.quarantined, a.reasons)
    assert (a.valid, a.quarantined) == (10, 3)
    raw_a, raw_b = pq.read_table(a.raw_files), pq.read_table(b.raw_files)
    order = [PARTITION_COLUMN, OFFSET_COLUMN]
    assert raw_a.sort_by([(c, "ascending") for c in order]).equals(raw_b.sort_by([(c, "ascending") for c in order]))
    q_a, q_b = pq.read_table(a.quarantine_files), pq.read_table(b.quarantine_files)
    assert q_a.equals(q_b) and q_b.column("offset").to_pylist() == [100, 101, 102]
