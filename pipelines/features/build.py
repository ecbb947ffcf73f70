"""The model table: raw events -> typed, deduplicated rows with per-entity history features and a split.

Steps, all in Spark:
1. type cleaning: every column cast to its spec type; rows missing an id, key, timestamp or label dropped
   (ingestion never writes such rows; this guards raw data written by other tools);
2. dedup by event id: a re-sent event keeps its first occurrence (timestamp, then Kafka partition/offset);
   the same id under two entity keys is not a re-send: both rows stay and the gate's unique-id check fails;
3. per-entity aggregates as the spec declares, over the entity's history strictly before the event:
   count/sum/mean/max over the last `window_hours`, seconds_since_last since the previous earlier event.
   An empty history gives 0 (count, sum, mean, max) and -1 (seconds_since_last), so the table has no nulls
   in aggregate columns;
4. the deterministic split (pipelines.features.split).
Columns come out exactly as `pipelines.layout.feature_table_columns(spec)`; `to_arrow` sorts by timestamp and id.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.features.split import split_column
from pipelines.ingest.parse import OFFSET_COLUMN, PARTITION_COLUMN, feature_arrow_type
from pipelines.layout import SPLIT_COLUMN, feature_table_columns
from pipelines.spec.model import DatasetSpec

NO_HISTORY = {"count": 0.0, "sum": 0.0, "mean": 0.0, "max": 0.0, "seconds_since_last": -1.0}


def model_table_schema(spec: DatasetSpec) -> pa.Schema:
    """Arrow schema of the model table, in layout order."""
    fields = [
        pa.field(spec.event_id, pa.string(), nullable=False),
        pa.field(spec.entity_key, pa.string(), nullable=False),
        pa.field(spec.timestamp, pa.int64(), nullable=False),
        pa.field(spec.label, pa.int32(), nullable=False),
        *(pa.field(f.name, feature_arrow_type(f), nullable=f.nullable) for f in spec.features),
        *(pa.field(a.name, pa.float64(), nullable=False) for a in spec.aggregates),
        pa.field(SPLIT_COLUMN, pa.string(), nullable=False),
    ]
    schema = pa.schema(fields)
    assert schema.names == feature_table_columns(spec)
    return schema


def _spark_type(arrow_type: pa.DataType) -> str:
    return {
        pa.string(): "string",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.bool_(): "boolean",
    }[arrow_type]


def build_model_table(raw: Any, spec: DatasetSpec) -> Any:
    """The model table as a Spark DataFrame, from a DataFrame of raw events (all history on the branch)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts, key, eid = spec.timestamp, spec.entity_key, spec.event_id
    # 1. type cleaning
    typed = [
        F.col(eid).cast("string").alias(eid),
        F.col(key).cast("string").alias(key),
        F.col(ts).cast("bigint").alias(ts),
        F.col(spec.label).cast("int").alias(spec.label),
        *(F.col(f.name).cast(_spark_type(feature_arrow_type(f))).alias(f.name) for f in spec.features),
    ]
    order_cols = [c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in raw.columns]
    df = raw.select(*typed, *(F.col(c) for c in order_cols))
    df = df.where(F.col(eid).isNotNull() & F.col(key).isNotNull() & F.col(ts).isNotNull())
    df = df.where(F.col(spec.label).isin(0, 1))

    # 2. dedup by event id: first occurrence wins, deterministically. One shuffle by entity serves both
    # this and the history windows: a re-sent event carries the same entity key, so duplicates meet in
    # the (entity, event id) window; ids reused across entities stay and fail the unique-id expectation.
    df = df.repartition(key)
    first = Window.partitionBy(key, eid).orderBy(F.col(ts), *(F.col(c) for c in order_cols))
    df = df.withColumn("_rn", F.row_number().over(first)).where(F.col("_rn") == 1).drop("_rn", *order_cols)

    # 3. history aggregates strictly before the event (range frames end 1 ms before it)
    by_entity = Window.partitionBy(key).orderBy(F.col(ts))
    aggs = []
    for agg in spec.aggregates:
        if agg.function == "seconds_since_last":
            prev = F.max(F.col(ts)).over(by_entity.rangeBetween(Window.unboundedPreceding, -1))
            value = (F.col(ts) - prev).cast("double") / F.lit(1000.0)
        else:
            frame = by_entity.rangeBetween(-int(agg.window_hours * 3_600_000), -1)
            target = F.col(agg.column) if agg.column else F.lit(1)
            fn = {"count": F.count, "sum": F.sum, "mean": F.avg, "max": F.max}[agg.function]
            value = fn(target).over(frame).cast("double")
        aggs.append(F.coalesce(value, F.lit(NO_HISTORY[agg.function])).alias(agg.name))

    base = [F.col(c) for c in spec.event_fields]
    df = df.select(*base, *aggs, split_column(spec, F.col(key)).alias(SPLIT_COLUMN))
    return df.select(*feature_table_columns(spec))


def to_arrow(df: Any, spec: DatasetSpec) -> pa.Table:
    """Collect the model table as Arrow with the exact layout schema (Spark loses non-null flags), in a
    deterministic row order (timestamp, event id). Sorting the collected table in Arrow is cheaper than
    a global sort (one more shuffle) in Spark."""
    table = df.toArrow().cast(model_table_schema(spec))
    return table.sort_by([(spec.timestamp, "ascending"), (spec.event_id, "ascending")])


def vocabularies(table: pa.Table, spec: DatasetSpec) -> dict[str, list[str]]:
    """{categorical feature: values, most frequent first (ties by name), then unseen allowed values}."""
    vocab: dict[str, list[str]] = {}
    for f in spec.categorical_features:
        counts = pc.value_counts(table.column(f.name).drop_null()).to_pylist()
        seen = sorted(((c["values"], c["counts"]) for c in counts), key=lambda vc: (-vc[1], vc[0]))
        values = [v for v, _ in seen]
        values += [v for v in f.values if v not in set(values)]
        vocab[f.name] = values
    return vocab


def vocabularies_json(vocab: dict[str, list[str]]) -> bytes:
    return json.dumps(vocab, indent=2, sort_keys=True).encode()
