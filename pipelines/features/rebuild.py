"""The whole model table from raw history in one Spark query: `flywheel dataset rebuild`.

The incremental runs (pipelines.features.stage) build each batch against the slice of history it can see.
The rebuild states the same semantics over every batch at once, replaying them in their recorded order:
- dedup: an event id belongs to the first batch that holds it; within that batch the first occurrence per
  (entity, id) by (timestamp, Kafka partition, offset) is kept, as the incremental build keeps it;
- history: an event of batch b at time t reads the kept events of its entity in batches <= b with event
  time in [t - W, t - 1]: a join of each event with its entity's events of the same or previous time bucket
  (buckets of the longest window W, so the join never pairs events further apart than 2W), the aggregates
  computed by the same expressions as the incremental window (pipelines.features.build.aggregate_values).
So a rebuild gives the rows the incremental runs gave, bit for bit (the integration test compares them),
and after a change of the spec's aggregates or split it gives the rows the new definition means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.features.aggregates import NO_HISTORY, aggregated_columns, definitions, longest_window_ms
from pipelines.features.build import (
    ROW_COLUMN,
    SPLIT_CODE_COLUMN,
    aggregate_values,
    assemble,
    first_occurrences,
    model_table_schema,
    spark_columns,
    typed_events,
)
from pipelines.features.split import split_code_column
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
BATCH_COLUMN = "_flywheel_batch"


def full_model_table(spark: Any, spec: DatasetSpec, batches: Sequence[pa.Table]) -> list[pa.Table]:
    """The model-table rows of every batch (raw tables in their recorded order), one table per batch."""
    schema = model_table_schema(spec)
    if not any(b.num_rows for b in batches):
        return [schema.empty_table() for _ in batches]
    raw = pa.concat_tables(batches, promote_options="default")
    numbers = np.concatenate([np.full(b.num_rows, i, dtype=np.int32) for i, b in enumerate(batches)])
    wanted = [*spark_columns(spec), *(c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in raw.column_names)]
    narrow = raw.select(wanted)
    narrow = narrow.append_column(ROW_COLUMN, pa.array(np.arange(raw.num_rows, dtype=np.int64)))
    narrow = narrow.append_column(BATCH_COLUMN, pa.array(numbers))
    nullable = pa.schema([f.with_nullable(True) for f in narrow.schema])
    result = rebuilt_features(spark.createDataFrame(narrow.combine_chunks().cast(nullable)), spec).toArrow()
    table = assemble(raw, result, spec)
    of_row = pc.take(pa.array(numbers), _rows_in_order(raw, result, spec))
    return [table.filter(pc.equal(of_row, i)) for i in range(len(batches))]


def _rows_in_order(raw: pa.Table, result: pa.Table, spec: DatasetSpec) -> pa.Array:
    """The raw row numbers of `assemble`'s output rows, in its order."""
    rows = result.column(ROW_COLUMN)
    sort_keys = [spec.timestamp, spec.event_id, *([spec.entity_key] if spec.entity_key else [])]
    keys = pa.table({c: pc.take(raw.column(c), rows) for c in sort_keys})
    return pc.take(rows, pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in sort_keys]))


def rebuilt_features(raw: Any, spec: DatasetSpec) -> Any:
    """Spark DataFrame of (ROW_COLUMN, aggregates..., SPLIT_CODE_COLUMN) over every batch (BATCH_COLUMN)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts, key, eid = spec.timestamp, spec.entity_key, spec.event_id
    df = typed_events(raw, spec, keep=[BATCH_COLUMN])
    first_batch = F.min(F.col(BATCH_COLUMN)).over(Window.partitionBy(eid))
    df = df.withColumn("_first_batch", first_batch).where(F.col(BATCH_COLUMN) == F.col("_first_batch"))
    df = first_occurrences(df.drop("_first_batch"), spec)
    split = split_code_column(spec, F.col(spec.split_key)).alias(SPLIT_CODE_COLUMN)
    if not spec.aggregates:
        return df.select(F.col(ROW_COLUMN), split)

    window = longest_window_ms(spec)
    columns = aggregated_columns(spec)
    bucket = F.floor(F.col(ts) / F.lit(window)).cast("bigint")
    events = df.select(
        F.col(ROW_COLUMN).alias("_e_row"),
        F.col(key).alias("_k"),
        F.col(ts).alias("_e_ts"),
        F.col(BATCH_COLUMN).alias("_e_batch"),
        bucket.alias("_bucket"),
    )
    # each history row joins the events of its own bucket and of the next one
    history = df.select(
        F.col(key).alias("_k"),
        F.col(ts).alias("_h_ts"),
        F.col(BATCH_COLUMN).alias("_h_batch"),
        *(F.col(c).alias(f"_h_{c}") for c in columns),
        F.explode(F.array(bucket, bucket + F.lit(1))).alias("_bucket"),
    )
    pairs = events.join(history, on=["_k", "_bucket"]).where(
        (F.col("_h_ts") < F.col("_e_ts"))
        & (F.col("_h_ts") >= F.col("_e_ts") - F.lit(window))
        & (F.col("_h_batch") <= F.col("_e_batch"))
    )
    aggs = aggregate_values(
        spec,
        F.col("_e_ts"),
        lambda d: F.col("_h_ts") >= F.col("_e_ts") - F.lit(d.window_ms),
        lambda d, fn, value: fn(value),
    )
    grouped = pairs.groupBy("_e_row", "_e_ts").agg(*aggs).drop("_e_ts").withColumnRenamed("_e_row", ROW_COLUMN)
    out = df.select(F.col(ROW_COLUMN), split).join(grouped, on=ROW_COLUMN, how="left")
    # events with no history row at all: the defaults, as the window gives them
    filled = [F.coalesce(F.col(d.name), F.lit(NO_HISTORY[d.function])).alias(d.name) for d in definitions(spec)]
    return out.select(F.col(ROW_COLUMN), *filled, F.col(SPLIT_CODE_COLUMN))
