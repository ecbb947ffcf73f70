"""The slice of history a batch's aggregates need, read from the model-table files of earlier batches.

An event of entity k at time t reads the events of k in [t - W, t - 1] (pipelines.features.aggregates). For a
batch whose events of k span [first_k, last_k], only earlier rows of k with event time in
[first_k - W, last_k - 1] can matter, W the spec's longest window. The earlier batches' model-table rows are
exactly the events those batches published (deduplicated, typed), so they are the history. Reading it costs
what overlaps, not what the lake holds:
- the catalog skips every batch whose event-time range misses [min first_k - W, max last_k - 1];
- in the batches left, Parquet row-group statistics skip row groups outside that range (the files are
  sorted by event time);
- the rows read are then cut to the batch's entities, each to its own range.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.features.aggregates import longest_window_ms
from pipelines.features.batches import Catalog
from pipelines.features.build import history_columns, history_schema
from pipelines.lake import Lake
from pipelines.lakecache import local_copies_of
from pipelines.spec.model import DatasetSpec


def history_slice(lake: Lake, ref: str, spec: DatasetSpec, catalog: Catalog, new: pa.Table) -> pa.Table | None:
    """The rows of earlier batches that the aggregates of `new` (the batch's events) may read; None when the
    spec has no aggregates or nothing overlaps."""
    key, ts = spec.entity_key, spec.timestamp
    if not spec.aggregates or key is None or new.num_rows == 0 or not catalog.batches:
        return None
    window = longest_window_ms(spec)
    ranges = pa.TableGroupBy(new.select([key, ts]), key).aggregate([(ts, "min"), (ts, "max")])
    low = pc.min(ranges.column(f"{ts}_min")).as_py() - window
    high = pc.max(ranges.column(f"{ts}_max")).as_py() - 1
    batches = catalog.overlapping(low, high)
    if not batches:
        return None
    files = local_copies_of(lake, ref, [p for b in batches for p in b.feature_paths])
    wanted = history_columns(spec)
    bounds = [(ts, ">=", low), (ts, "<=", high)]
    parts = [pq.read_table(f, columns=wanted, filters=bounds) for f in files]
    rows = pa.concat_tables(parts).cast(history_schema(spec))
    return entity_ranges(rows, ranges, spec, window)


def entity_ranges(rows: pa.Table, ranges: pa.Table, spec: DatasetSpec, window: int) -> pa.Table:
    """`rows` cut to the entities of `ranges` ((key, ts_min, ts_max) per entity), each to
    [ts_min - window, ts_max - 1]."""
    key, ts = spec.entity_key, spec.timestamp
    assert key is not None
    joined = rows.join(ranges, keys=key, join_type="inner")
    lo = pc.subtract(joined.column(f"{ts}_min"), window)
    hi = pc.subtract(joined.column(f"{ts}_max"), 1)
    inside = pc.and_(pc.greater_equal(joined.column(ts), lo), pc.less_equal(joined.column(ts), hi))
    return joined.filter(inside).select(history_columns(spec))
