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
from streams import stream as make_stream

from pipelines.features.aggregates import definitions, longest_window_ms, reference_values
from pipelines.features.build import history_columns, model_table
from pipelines.features.history import entity_ranges
from pipelines.features.rebuild import full_model_table
from pipelines.spec import load_spec

pytestmark = pytest.mark.integration
SPEC = load_spec("transactions")


def stream(batches: int = 6) -> list[pa.Table]:
    return make_stream(SPEC, batches=batches)


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
