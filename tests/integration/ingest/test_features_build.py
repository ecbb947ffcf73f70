"""The Spark model table on a hand-made history: windows strictly before the event, dedup, split, types.

Both ways Spark gets the rows: shipped as Arrow (Spark Connect, clusters) and read from the raw files
(a local session), where the row numbers come from Parquet metadata across several files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.features.build import model_table, model_table_schema, read_raw, vocabularies
from pipelines.features.split import split_of
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, feature_table_columns, raw_schema
from pipelines.spec import load_spec

pytestmark = pytest.mark.integration
SPEC = load_spec("transactions")
H = 3_600_000


def raw_rows() -> pa.Table:
    # (event_id, customer, hours, amount); e2 and e2b share a timestamp; e2 arrives twice (re-sent)
    events = [
        ("e1", "a", 0, 10.0),
        ("e2", "a", 1, 20.0),
        ("e2b", "a", 1, 5.0),
        ("e3", "a", 30, 40.0),
        ("e4", "b", 2, 7.0),
        ("e2", "a", 1, 999.0),
    ]
    n = len(events)
    cols = {
        "event_id": [e[0] for e in events],
        "customer_id": [e[1] for e in events],
        "event_time": [1_767_225_600_000 + e[2] * H for e in events],
        "is_fraud": [0, 1, 0, 0, 0, 1],
        "amount": [e[3] for e in events],
        "merchant_category": ["grocery", "fuel", "fuel", "travel", "grocery", "fuel"],
        "country": ["US"] * n,
        "channel": ["chip"] * n,
        "device_age_days": [None, 3, 4, None, 1, 3],
        "customer_tenure_days": [1] * n,
        "hour_of_day": [0, 1, 1, 6, 2, 1],
        "distance_from_home_km": [0.5] * n,
        "card_present": [True] * n,
        "is_international": [False] * n,
        PARTITION_COLUMN: [0, 0, 1, 0, 2, 1],
        OFFSET_COLUMN: [0, 1, 0, 2, 0, 9],
    }
    return pa.table(cols).cast(raw_schema(SPEC))


def written(tmp_path: Path) -> list[Path]:
    """raw_rows() as three files (the re-sent e2 in the last), listed out of name order."""
    table = raw_rows()
    paths = [tmp_path / "b.parquet", tmp_path / "a.parquet", tmp_path / "c.parquet"]
    for path, (start, length) in zip(paths, [(0, 2), (2, 3), (5, 1)], strict=True):
        pq.write_table(table.slice(start, length), path)
    return paths


@pytest.mark.parametrize("source", ["arrow", "files"])
def test_model_table_semantics(spark, tmp_path: Path, source: str, monkeypatch) -> None:
    if source == "files":
        files = written(tmp_path)
        monkeypatch.setattr(spark, "createDataFrame", lambda *a, **k: pytest.fail("rows shipped, files not read"))
        table = model_table(spark, SPEC, read_raw(files, SPEC), files)
    else:
        table = model_table(spark, SPEC, raw_rows())
    assert table.schema == model_table_schema(SPEC)
    assert table.column_names == feature_table_columns(SPEC)
    rows = {r["event_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["e1", "e2", "e2b", "e3", "e4"]  # the re-sent e2 dropped
    assert rows["e2"]["amount"] == 20.0  # first occurrence (lowest partition/offset) kept

    # e1: no history
    assert (rows["e1"]["cust_txn_count_24h"], rows["e1"]["cust_seconds_since_last"]) == (0.0, -1.0)
    # e2 and e2b at the same instant: neither sees the other (strictly before), both see e1
    for eid in ("e2", "e2b"):
        assert rows[eid]["cust_txn_count_24h"] == 1.0
        assert rows[eid]["cust_amount_sum_24h"] == 10.0
        assert rows[eid]["cust_seconds_since_last"] == 3600.0
    # e3 at 30h: the 24h window holds nothing (e2/e2b are 29h back), the 7d max sees 20
    assert rows["e3"]["cust_txn_count_24h"] == 0.0 and rows["e3"]["cust_amount_sum_24h"] == 0.0
    assert rows["e3"]["cust_amount_max_7d"] == 20.0
    assert rows["e3"]["cust_seconds_since_last"] == 29 * 3600.0
    # other entities never mix in
    assert rows["e4"]["cust_txn_count_24h"] == 0.0
    # split by entity hash
    assert {r["split"] for r in rows.values() if r["customer_id"] == "a"} == {split_of("a", SPEC)}

    vocab = vocabularies(table, SPEC)
    assert vocab["merchant_category"][:2] == ["fuel", "grocery"]  # most frequent first
    assert set(vocab["merchant_category"]) == set(SPEC.feature("merchant_category").values)


def edge_rows(events: list[tuple[str, str, int]]) -> pa.Table:
    """(event_id, customer, ms after the first instant) events with plain values elsewhere."""
    base = raw_rows().slice(0, 1).to_pylist()[0]
    rows = [
        {**base, "event_id": e, "customer_id": c, "event_time": 1_767_225_600_000 + ms, "amount": float(i + 1)}
        | {PARTITION_COLUMN: 0, OFFSET_COLUMN: i}
        for i, (e, c, ms) in enumerate(events)
    ]
    return pa.Table.from_pylist(rows, schema=raw_schema(SPEC))


def test_window_edges_are_inclusive_at_w_and_exclusive_beyond(spark) -> None:
    day, week = 24 * H, 7 * 24 * H
    table = model_table(
        spark,
        SPEC,
        edge_rows(
            [
                ("c1", "c", 0),
                ("c2", "c", day),  # c1 exactly 24h back: inside [t - 24h, t - 1]
                ("c3", "c", 2 * day + 1),  # c2 24h + 1 ms back: outside
                ("d1", "d", 0),
                ("d2", "d", week),  # d1 exactly 7d back: inside
                ("d3", "d", 2 * week + 1),  # d2 7d + 1 ms back: outside, no history at all
            ]
        ),
    )
    rows = {r["event_id"]: r for r in table.to_pylist()}
    assert (rows["c2"]["cust_txn_count_24h"], rows["c2"]["cust_amount_sum_24h"]) == (1.0, 1.0)
    assert (rows["c3"]["cust_txn_count_24h"], rows["c3"]["cust_amount_sum_24h"]) == (0.0, 0.0)
    assert rows["c3"]["cust_seconds_since_last"] == (day + 1) / 1000
    assert rows["d2"]["cust_seconds_since_last"] == week / 1000 and rows["d2"]["cust_amount_max_7d"] == 4.0
    assert (rows["d3"]["cust_seconds_since_last"], rows["d3"]["cust_amount_max_7d"]) == (-1.0, 0.0)


def test_rows_come_back_sorted_and_complete(spark, tmp_path: Path) -> None:
    """Every event column of a kept row is the raw row's own (the join back by row number is exact)."""
    files = written(tmp_path)
    raw = read_raw(files, SPEC)
    table = model_table(spark, SPEC, raw, files)
    times = table.column("event_time").to_pylist()
    assert times == sorted(times)
    originals = {(r["event_id"], r["amount"]): r for r in raw.to_pylist()}
    for row in table.to_pylist():
        original = originals[(row["event_id"], row["amount"])]
        assert all(row[c] == original[c] for c in SPEC.event_fields)


def test_a_file_listed_twice_is_shipped_as_arrow_and_deduplicated(spark, tmp_path: Path) -> None:
    """Two paths with one name (the content cache names files by checksum) cannot be told apart by Spark's
    file-name metadata, so the rows are shipped instead; the repeated rows are re-sends, dropped by the dedup."""
    files = written(tmp_path)
    twice = [*files, files[0]]
    assert model_table(spark, SPEC, read_raw(twice, SPEC), twice) == model_table(spark, SPEC, raw_rows())


def test_empty_history_gives_an_empty_table(spark) -> None:
    table = model_table(spark, SPEC, read_raw([], SPEC), [])
    assert table.num_rows == 0 and table.schema == model_table_schema(SPEC)


def test_files_and_arrow_paths_agree_on_a_messy_history(spark, tmp_path: Path) -> None:
    """Many files (some empty, listed out of name order), small row groups, Spark splitting files into many
    partitions, re-sends across files: reading the files (row numbers from Parquet metadata) gives exactly
    the table of shipping the rows as one Arrow chunk, row for row, aggregates and split included."""
    import numpy as np

    rng = np.random.default_rng(5)
    base = generated_raw(SPEC, 30_000)
    resent = base.take(rng.integers(0, base.num_rows, 900))
    offsets = resent.schema.get_field_index(OFFSET_COLUMN)
    later = pa.array(np.arange(900, dtype=np.int64) + 10**6)  # the same events, re-sent at later offsets
    resent = resent.set_column(offsets, resent.schema.field(offsets), later)
    history = pa.concat_tables([base, resent]).take(rng.permutation(30_900))
    files, start = [], 0
    for n, size in enumerate([0, 12_000, 1, 0, 10_000, 8_899]):
        path = tmp_path / f"f{(n * 7) % 6}-{n}.parquet"
        pq.write_table(history.slice(start, size), path, row_group_size=1_000)
        files.append(path)
        start += size
    files.reverse()
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "65536")
    try:
        assert build_input_partitions(spark, files) > len(files)
        from_files = model_table(spark, SPEC, read_raw(files, SPEC), files)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    from_arrow = model_table(spark, SPEC, read_raw(files, SPEC).combine_chunks())
    assert from_files.num_rows == 30_000  # the 900 re-sends dropped, nothing else
    assert from_files.equals(from_arrow)


def build_input_partitions(spark, files: list[Path]) -> int:
    return spark.read.parquet(*(str(f) for f in files)).rdd.getNumPartitions()


def test_arrow_path_keeps_rows_after_an_empty_file_and_files_without_provenance(spark, tmp_path: Path) -> None:
    """Shipped as Arrow (what a cluster or Spark Connect gets): an empty file between others loses nothing,
    and a file written without the Kafka provenance columns is read, not refused."""
    table = raw_rows()
    pq.write_table(table.slice(0, 3), tmp_path / "a.parquet")
    pq.write_table(table.slice(0, 0), tmp_path / "b.parquet")
    pq.write_table(table.slice(3, 3).drop_columns([PARTITION_COLUMN, OFFSET_COLUMN]), tmp_path / "c.parquet")
    files = [tmp_path / n for n in ("a.parquet", "b.parquet", "c.parquet")]
    shipped = model_table(spark, SPEC, read_raw(files, SPEC))  # no files given: the Arrow path
    read = model_table(spark, SPEC, read_raw(files, SPEC), files)  # c lacks columns: the Arrow path too
    assert sorted(shipped.column("event_id").to_pylist()) == ["e1", "e2", "e2b", "e3", "e4"]
    assert read.equals(shipped)


def generated_raw(spec, n: int) -> pa.Table:
    """n raw rows of the spec's types (pipelines.spec.samples), one Kafka partition in offset order."""
    import numpy as np

    from pipelines.spec.samples import null_mask, sample_columns

    cols = sample_columns(spec, n, seed=0, prefix="gen", entities=max(1, n // 20), step_ms=60_000)
    columns = {
        f.name: pa.array(cols[f.name], mask=null_mask(cols, f.name))
        for f in raw_schema(spec)
        if f.name not in (PARTITION_COLUMN, OFFSET_COLUMN)
    }
    columns[PARTITION_COLUMN] = pa.array(np.zeros(n, dtype=np.int32))
    columns[OFFSET_COLUMN] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(columns).cast(raw_schema(spec))
