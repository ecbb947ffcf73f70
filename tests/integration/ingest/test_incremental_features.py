"""Incremental model table = full rebuild, in Spark: a stream cut into batches, each built against only the
slice of history it can see, gives row for row (bit for bit) what one query over all batches gives, and both
match the reference definition of the aggregates (pipelines.features.aggregates.reference_values).

The stream has what makes incremental features hard: late events that arrive out of order within the window
(and beyond it), entities quiet for longer than the longest window, equal timestamps, re-sends within a
batch and across batches (with other values: the first published copy wins)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.features.aggregates import definitions, longest_window_ms, reference_values
from pipelines.features.build import history_columns, model_table
from pipelines.features.history import entity_ranges
from pipelines.features.rebuild import full_model_table
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.spec import load_spec
from pipelines.spec.samples import null_mask, sample_columns

pytestmark = pytest.mark.integration
SPEC = load_spec("transactions")
H = 3_600_000
T0 = 1_767_225_600_000
BATCH_SPAN = 40 * H


def event_rows(n: int, seed: int, prefix: str, ts: np.ndarray, keys: list[str]) -> dict[str, list]:
    cols = sample_columns(SPEC, n, seed=seed, prefix=prefix, entities=len(set(keys)) or 1)
    out: dict[str, list] = {}
    for field in raw_schema(SPEC):
        if field.name in (PARTITION_COLUMN, OFFSET_COLUMN):
            continue
        mask = null_mask(cols, field.name)
        values = cols[field.name].tolist()
        out[field.name] = [None if mask is not None and mask[i] else v for i, v in enumerate(values)]
    out[SPEC.timestamp] = [int(t) for t in ts]
    out[SPEC.entity_key] = keys
    return out


def stream(batches: int = 6, per_batch: int = 150, seed: int = 3) -> list[pa.Table]:
    """Raw tables of consecutive batches (raw schema, Kafka positions increasing)."""
    rng = np.random.default_rng(seed)
    entities = [f"c{i:02d}" for i in range(25)]
    out: list[pa.Table] = []
    offset = 0
    for b in range(batches):
        start = T0 + b * BATCH_SPAN
        ts = start + rng.integers(0, BATCH_SPAN, per_batch)
        late = rng.choice(per_batch, 20, replace=False)
        ts[late] = start - rng.integers(1, 200, 20) * H  # late: 1h to 200h before the batch began
        keys = [entities[i] for i in rng.integers(0, len(entities), per_batch)]
        ties = rng.choice(per_batch, 6, replace=False)
        ts[ties[3:]] = ts[ties[:3]]  # equal timestamps ...
        for a, c in zip(ties[:3], ties[3:], strict=True):
            keys[c] = keys[a]  # ... within one entity
        if b in (0, batches - 1):  # one entity quiet for 200h between the first and the last batch
            ts[:2] = [T0 + H, T0 + 200 * H + H] if b == 0 else [start + H, start + 2 * H]
            keys[:2] = ["quiet", "quiet"]
        rows = event_rows(per_batch, seed * 100 + b, f"b{b}", ts, keys)
        table = pa.table(rows)
        if b >= 2:  # re-sends: 10 events of the previous batch (changed amount) and 3 of this one
            prev = out[-1].slice(5, 10).drop_columns([PARTITION_COLUMN, OFFSET_COLUMN])
            prev = prev.set_column(prev.schema.get_field_index("amount"), "amount", pa.array([1.0] * 10))
            table = pa.concat_tables([table.cast(prev.schema), prev, table.slice(0, 3).cast(prev.schema)])
        n = table.num_rows
        table = table.append_column(PARTITION_COLUMN, pa.array(np.zeros(n, dtype=np.int32)))
        table = table.append_column(OFFSET_COLUMN, pa.array(np.arange(offset, offset + n, dtype=np.int64)))
        offset += n
        out.append(table.cast(raw_schema(SPEC)))
    return out


def incremental(spark, batches: list[pa.Table]) -> list[pa.Table]:
    """What the ingestion runs do, batch by batch: drop published ids, read the history slice, build."""
    published: list[pa.Table] = []
    window = longest_window_ms(SPEC)
    key, ts = SPEC.entity_key, SPEC.timestamp
    for raw in batches:
        if published:
            earlier = pa.concat_tables(published)
            fresh = raw.filter(pc.invert(pc.is_in(raw.column(SPEC.event_id), value_set=earlier.column(SPEC.event_id))))
            ranges = pa.TableGroupBy(fresh.select([key, ts]), key).aggregate([(ts, "min"), (ts, "max")])
            history = entity_ranges(earlier.select(history_columns(SPEC)), ranges, SPEC, window)
        else:
            fresh, history = raw, None
        published.append(model_table(spark, SPEC, fresh, history=history))
    return published


def test_incremental_batches_equal_one_full_build_and_the_reference(spark) -> None:
    batches = stream()
    built = incremental(spark, batches)
    full = full_model_table(spark, SPEC, batches)
    assert [t.num_rows for t in built] == [t.num_rows for t in full]
    for b, (one, other) in enumerate(zip(built, full, strict=True)):
        assert one.equals(other), f"batch {b} differs"
    # the re-sends were dropped: every id once, the first published copy kept
    ids = pa.concat_tables(built).column(SPEC.event_id)
    assert pc.count_distinct(ids).as_py() == len(ids) == 6 * 150
    assert 1.0 not in pa.concat_tables(built[2:]).column("amount").to_pylist()[-13:]

    # every aggregate by the reference definition: history = the entity's events of the same or earlier batches
    defs = definitions(SPEC)
    rows_by_batch = [t.to_pylist() for t in built]
    late_seen = quiet_seen = 0
    for b, rows in enumerate(rows_by_batch):
        visible = [r for batch in rows_by_batch[: b + 1] for r in batch]
        newest_before = max((r["event_time"] for batch in rows_by_batch[:b] for r in batch), default=None)
        for row in rows:
            mine = [r for r in visible if r["customer_id"] == row["customer_id"]]
            history_ts = np.array([r["event_time"] for r in mine], dtype=np.int64)
            amounts = np.array([r["amount"] for r in mine], dtype=np.float64)
            want = reference_values(defs, history_ts, {"amount": amounts}, row["event_time"])
            for name, value in want.items():
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-9), (b, row["event_id"], name)
            late = newest_before is not None and row["event_time"] < newest_before
            late_seen += late and want["cust_txn_count_24h"] > 0
            quiet_seen += row["customer_id"] == "quiet" and want["cust_seconds_since_last"] == -1.0
    assert late_seen > 10  # late events with history in their window were exercised
    assert quiet_seen >= 2  # the quiet entity came back with no history (its last event is 200h back)


def test_a_late_event_never_changes_rows_already_published(spark) -> None:
    """The batch rule: a late event is history only for the events of its own and later batches."""
    batches = stream(batches=3)
    before = incremental(spark, batches[:2])
    after = incremental(spark, batches)
    assert before[0].equals(after[0]) and before[1].equals(after[1])
