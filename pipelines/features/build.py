"""The model table: raw events of one ingestion batch -> typed, deduplicated rows with per-entity history
features and a split.

Spark does the work that needs history: over the narrow columns it needs (id, key, timestamp, label, the
aggregated columns, Kafka partition/offset and a row number), it
1. type-cleans: casts to the spec types and drops rows missing an id, key, timestamp or label (ingestion
   never writes such rows; this guards raw data written by other tools);
2. dedups by event id within the batch: a re-sent event keeps its first occurrence (timestamp, then Kafka
   partition/offset); the same id under two entity keys is not a re-send: both rows stay and the gate's
   unique-id check fails. Ids of earlier batches were dropped before (pipelines.features.dedup). An
   incremental batch finds these rows in Arrow before the query (`later_occurrences`: one distinct count
   when no id repeats) and Spark leaves them out of its input; the rebuild dedups in Spark
   (`first_occurrences`), by the same order;
3. computes the spec's per-entity aggregates exactly as pipelines.features.aggregates defines them, over
   the batch's own events and `history`: the rows earlier batches published for the same entities (the
   slice pipelines.features.history reads). A window over the entity ordered by event time with the frame
   [t - W, t - 1] ms; sums are taken over the values sorted, so they do not depend on the order Spark
   meets the rows in (a full rebuild, pipelines.features.rebuild, gets the same bits);
4. assigns the deterministic split (pipelines.features.split) of the split key (entity, else event id).
It returns (row number, aggregates, split) for the batch's rows kept; `model_table` then takes those rows'
event columns from the raw Arrow table. The wide event columns never go through Spark's shuffle, sorts and
collect, which is most of what they cost there (measured: benchmarks/results/ingest.md).
Columns come out exactly as `pipelines.layout.feature_table_columns(spec)`, sorted by timestamp, id, key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.features.aggregates import NO_HISTORY, AggregateDef, aggregated_columns, definitions
from pipelines.features.split import split_code_column
from pipelines.layout import (
    OFFSET_COLUMN,
    PARTITION_COLUMN,
    SPLIT_COLUMN,
    SPLITS,
    event_schema,
    feature_arrow_type,
    feature_table_columns,
    raw_schema,
)
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)

ROW_COLUMN = "_flywheel_row"  # the row's position in the raw table (all raw files, in the order given)
SPLIT_CODE_COLUMN = "_flywheel_split"  # 0/1/2 = SPLITS; a byte through the collect instead of a string
NEW_COLUMN = "_flywheel_new"  # 1 for the batch's rows, 0 for history rows of earlier batches


def model_table_schema(spec: DatasetSpec) -> pa.Schema:
    """Arrow schema of the model table, in layout order."""
    fields = [
        *event_schema(spec),
        *(pa.field(a.name, pa.float64(), nullable=False) for a in spec.aggregates),
        pa.field(SPLIT_COLUMN, pa.string(), nullable=False),
    ]
    schema = pa.schema(fields)
    assert schema.names == feature_table_columns(spec)
    return schema


def history_schema(spec: DatasetSpec) -> pa.Schema:
    """The columns of history rows: the entity key, the timestamp and the columns the aggregates read."""
    table = model_table_schema(spec)
    return pa.schema([table.field(n) for n in history_columns(spec)])


def history_columns(spec: DatasetSpec) -> list[str]:
    return [*([spec.entity_key] if spec.entity_key else []), spec.timestamp, *aggregated_columns(spec)]


def _spark_type(arrow_type: pa.DataType) -> str:
    return {
        pa.string(): "string",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.bool_(): "boolean",
    }[arrow_type]


def spark_columns(spec: DatasetSpec) -> list[str]:
    """The raw columns Spark needs: id, key, timestamp, label and the columns the aggregates read."""
    return [*spec.reserved_fields, *aggregated_columns(spec)]


def sorted_sum(values: Any) -> Any:
    """The sum of a Spark array of doubles, added in ascending order: the same bits whatever order the rows
    came in (a window and a grouped join meet them in different orders).

    `sort_array` (a native comparator) rather than `array_sort`, which Spark rewrites into an interpreted
    lambda comparator called per comparison: the same order for doubles (SQL ordering, NaN last; the arrays
    hold no nulls), measured ~1 s less of the 1M-row query on 2 CPUs."""
    from pyspark.sql import functions as F

    return F.aggregate(F.sort_array(values), F.lit(0.0), lambda acc, x: acc + x)


def aggregate_values(
    spec: DatasetSpec, ts: Any, in_window: Callable[[AggregateDef], Any], agg: Callable[[AggregateDef, Any, Any], Any]
) -> list[Any]:
    """The spec's aggregates as Spark columns, by the definition of pipelines.features.aggregates.

    `ts` is the event's timestamp, history rows carry `_h_ts` and `_h_<column>`; `in_window(d)` is the
    condition for a history row to be in d's window, `agg(d, fn, value)` applies the Spark aggregate `fn`
    over the history rows: one code for the window (incremental runs) and the grouped join (the rebuild)."""
    from pyspark.sql import functions as F

    out = []
    for d in definitions(spec):
        inside = in_window(d)
        if d.function == "seconds_since_last":
            value = (ts - agg(d, F.max, F.when(inside, F.col("_h_ts")))).cast("double") / F.lit(1000.0)
        elif d.function == "count":
            value = agg(d, F.count, F.when(inside, F.lit(1))).cast("double")
        elif d.function == "max":
            value = agg(d, F.max, F.when(inside, F.col(f"_h_{d.column}").cast("double")))
        else:
            values = agg(d, F.collect_list, F.when(inside, F.col(f"_h_{d.column}").cast("double")))
            total = sorted_sum(values)
            value = total if d.function == "sum" else F.when(F.size(values) > 0, total / F.size(values))
        out.append(F.coalesce(value, F.lit(NO_HISTORY[d.function])).alias(d.name))
    return out


def typed_events(raw: Any, spec: DatasetSpec, keep: Sequence[str] = ()) -> Any:
    """Step 1: the narrow columns cast to the spec's types, rows without id/key/timestamp/label dropped
    (`keep`: more columns carried as they are)."""
    from pyspark.sql import functions as F

    ts, eid = spec.timestamp, spec.event_id
    typed = [
        F.col(ROW_COLUMN).cast("bigint").alias(ROW_COLUMN),
        F.col(eid).cast("string").alias(eid),
        *([F.col(spec.entity_key).cast("string").alias(spec.entity_key)] if spec.entity_key else []),
        F.col(ts).cast("bigint").alias(ts),
        F.col(spec.label).cast("int").alias(spec.label),
        *(
            F.col(name).cast(_spark_type(feature_arrow_type(spec.feature(name)))).alias(name)
            for name in aggregated_columns(spec)
        ),
    ]
    order_cols = [c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in raw.columns]
    df = raw.select(*typed, *(F.col(c) for c in [*order_cols, *keep]))
    present = F.col(eid).isNotNull() & F.col(ts).isNotNull()
    if spec.entity_key:
        present = present & F.col(spec.entity_key).isNotNull()
    return df.where(present & F.col(spec.label).isin(0, 1))


def first_occurrences(df: Any, spec: DatasetSpec, before: Sequence[str] = ()) -> Any:
    """Step 2: one row per (entity, event id), the first by (`before`..., timestamp, partition, offset, row)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order_cols = [c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in df.columns]
    by = [spec.entity_key, spec.event_id] if spec.entity_key else [spec.event_id]
    order = [*(F.col(c) for c in before), F.col(spec.timestamp), *(F.col(c) for c in order_cols), F.col(ROW_COLUMN)]
    first = Window.partitionBy(*by).orderBy(*order)
    return df.withColumn("_rn", F.row_number().over(first)).where(F.col("_rn") == 1).drop("_rn")


def history_features(raw: Any, spec: DatasetSpec, history: Any = None, *, deduplicated: bool = False) -> Any:
    """Spark DataFrame of (ROW_COLUMN, aggregates..., SPLIT_CODE_COLUMN) for the rows of the batch kept.

    `raw` holds `spark_columns(spec)`, ROW_COLUMN and, when known, the Kafka partition/offset columns;
    `history` (a DataFrame of `history_columns(spec)`, or None) the rows earlier batches published that the
    batch's aggregates may read. `deduplicated`: `raw` holds first occurrences only (`later_occurrences`
    dropped the rest), so Spark skips its dedup window.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts, key = spec.timestamp, spec.entity_key
    df = typed_events(raw, spec)
    if not deduplicated:
        # One shuffle by entity serves both the dedup and the history windows: a re-sent event carries the
        # same entity key, so duplicates meet in the (entity, event id) window.
        df = first_occurrences(df.repartition(key) if key else df, spec)
    split = split_code_column(spec, F.col(spec.split_key)).alias(SPLIT_CODE_COLUMN)
    if not spec.aggregates:
        return df.select(F.col(ROW_COLUMN), split)

    columns = aggregated_columns(spec)
    df = df.withColumn(NEW_COLUMN, F.lit(1))
    df = df.select("*", F.col(ts).alias("_h_ts"), *(F.col(c).alias(f"_h_{c}") for c in columns))
    if history is not None:
        past = history.select(
            F.col(key).cast("string").alias(key),
            F.col(ts).cast("bigint").alias(ts),
            *(F.col(c).cast(_spark_type(feature_arrow_type(spec.feature(c)))).alias(c) for c in columns),
        )
        past = past.select("*", F.lit(0).alias(NEW_COLUMN), F.col(ts).alias("_h_ts"))
        past = past.select("*", *(F.col(c).alias(f"_h_{c}") for c in columns))
        df = df.unionByName(past, allowMissingColumns=True)
    by_entity = Window.partitionBy(key).orderBy(F.col(ts))

    def over_frame(d: AggregateDef, fn: Any, value: Any) -> Any:  # [t - W, t - 1] ms of the entity's rows
        # A sliding frame recomputes its aggregate over the whole frame for every row; a frame that starts
        # at the entity's first row is computed incrementally. Count and the latest time are the same over
        # those: the rows up to t - 1 minus those up to t - W - 1, and the latest time up to t - 1 when it is
        # inside the window (~0.5 s of the 1M-row query on 2 CPUs).
        if d.function == "count":  # `value` is never null here: every row counts
            upto = by_entity.rangeBetween(Window.unboundedPreceding, -1)
            before = by_entity.rangeBetween(Window.unboundedPreceding, -d.window_ms - 1)
            return fn(value).over(upto) - fn(value).over(before)
        if d.function == "seconds_since_last":
            latest = fn(value).over(by_entity.rangeBetween(Window.unboundedPreceding, -1))
            return F.when(latest >= F.col(ts) - F.lit(d.window_ms), latest)
        return fn(value).over(by_entity.rangeBetween(-d.window_ms, -1))

    aggs = aggregate_values(spec, F.col(ts), lambda d: F.lit(True), over_frame)
    return df.select(F.col(ROW_COLUMN), F.col(NEW_COLUMN), *aggs, split).where(F.col(NEW_COLUMN) == 1).drop(NEW_COLUMN)


def read_raw(files: Sequence[Path], spec: DatasetSpec) -> pa.Table:
    """All raw files as one Arrow table in the raw schema, in the order given (ROW_COLUMN's numbering)."""
    schema = raw_schema(spec)
    if not files:
        return schema.empty_table()
    tables = []
    for f in files:
        table = pq.read_table(f)
        names = [n for n in schema.names if n in table.column_names]
        tables.append(table.select(names).cast(pa.schema([schema.field(n) for n in names])))
    return pa.concat_tables(tables, promote_options="default")


def later_occurrences(raw: pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Row numbers of `raw` that step 2 (`first_occurrences`) drops: for each (entity, event id), every row
    after the first by (timestamp, Kafka partition, offset, row), among the rows step 1 keeps.

    In Arrow in this process, where it costs one distinct count of the ids when no id repeats (the common
    case); then Spark needs no dedup window, which is a sort of the batch by (entity, id, ...) in the JVM
    (measured ~2 CPU-s of ~9 for 1M rows). Only rows of repeated ids are ordered here."""
    ids, ts = raw.column(spec.event_id), raw.column(spec.timestamp)
    present = pc.and_(pc.is_valid(ids), pc.is_valid(ts))
    if spec.entity_key:
        present = pc.and_(present, pc.is_valid(raw.column(spec.entity_key)))
    present = pc.and_(present, pc.fill_null(pc.is_in(raw.column(spec.label), pa.array([0, 1], pa.int32())), False))
    rows = np.flatnonzero(present.to_numpy(zero_copy_only=False))
    kept = ids.take(rows)
    if pc.count_distinct(kept).as_py() == len(rows):
        return np.empty(0, dtype=np.int64)
    counts = pa.table({"id": kept}).group_by("id").aggregate([("id", "count")])
    repeated = counts.filter(pc.greater(counts.column("id_count"), 1)).column("id")
    candidates = rows[pc.is_in(kept, repeated).to_numpy(zero_copy_only=False)]
    by = [spec.event_id, *([spec.entity_key] if spec.entity_key else [])]
    order_cols = [spec.timestamp, *(c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in raw.column_names)]
    sub = raw.select([*by, *order_cols]).take(candidates).append_column(ROW_COLUMN, pa.array(candidates))
    keys = [(c, "ascending", "at_start") for c in [*by, *order_cols, ROW_COLUMN]]  # Spark: nulls first
    order = pc.sort_indices(sub, sort_keys=keys).to_numpy()
    ordered = sub.take(order)
    first = np.ones(len(order), dtype=bool)
    same = np.ones(len(order) - 1, dtype=bool)
    for c in by:
        column = ordered.column(c)
        same &= pc.equal(column.slice(1), column.slice(0, len(order) - 1)).to_numpy(zero_copy_only=False)
    first[1:] = ~same
    return np.sort(candidates[order][~first]).astype(np.int64)


# Dropped rows up to this many are filtered where Spark reads the files; more are left out of a shipped table.
MAX_DROPPED_IN_QUERY = 10_000


def _spark_input(
    spark: Any, spec: DatasetSpec, raw: pa.Table, files: Sequence[Path] | None, drop: np.ndarray | None = None
) -> Any:
    """The narrow DataFrame Spark reads: from the files themselves when its executors share this disk
    (an in-process local session, the stack's Connect server on this machine), else shipped from `raw` as
    Arrow (a remote Connect server, a cluster). `drop`: row numbers left out (ROW_COLUMN keeps numbering
    the rows of `raw`)."""
    from pipelines.spark import shares_disk

    drop = drop if drop is not None else np.empty(0, dtype=np.int64)

    wanted = [*spark_columns(spec), *(c for c in (PARTITION_COLUMN, OFFSET_COLUMN) if c in raw.column_names)]
    local = shares_disk(spark)
    names = [Path(f).name for f in files or []]
    metas = [pq.ParquetFile(f).metadata for f in files or []] if local and len(set(names)) == len(names) else []
    if metas and all(set(wanted) <= set(m.schema.names) for m in metas) and len(drop) <= MAX_DROPPED_IN_QUERY:
        from pyspark.sql import functions as F

        # ROW_COLUMN = the file's first row in `raw` + the row's index in its file (a Parquet metadata column)
        firsts, start = [], 0
        for name, meta in zip(names, metas, strict=True):
            firsts += [F.lit(name), F.lit(start)]
            start += meta.num_rows
        row = F.element_at(F.create_map(*firsts), F.col("_metadata.file_name")) + F.col("_metadata.row_index")
        df = spark.read.parquet(*(str(f) for f in files or [])).select(*wanted, row.alias(ROW_COLUMN))
        return df.where(~F.col(ROW_COLUMN).isin([int(r) for r in drop])) if len(drop) else df
    narrow = raw.select(wanted).append_column(ROW_COLUMN, pa.array(np.arange(raw.num_rows, dtype=np.int64)))
    if len(drop):
        keep = np.ones(raw.num_rows, dtype=bool)
        keep[drop] = False
        narrow = narrow.filter(pa.array(keep))
    # One chunk: createDataFrame drops the rows after an empty record batch (an empty raw file makes one).
    # Nullable fields: files without the Kafka provenance columns leave nulls there, which Spark refuses
    # in a non-nullable field (the dedup orders nulls first, as the file path does).
    return spark.createDataFrame(narrow.combine_chunks().cast(_nullable(narrow.schema)))


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema])


def model_table(
    spark: Any,
    spec: DatasetSpec,
    raw: pa.Table,
    files: Sequence[Path] | None = None,
    timings: dict[str, float] | None = None,
    history: pa.Table | None = None,
) -> pa.Table:
    """The model table rows (Arrow, layout schema) of one batch's raw events: `raw` is `read_raw(files)` when
    files are given (a local Spark session then reads the narrow columns straight from them); `history` holds
    the rows of earlier batches the aggregates may read (`history_columns(spec)`; pipelines.features.history
    reads that slice). `timings` receives the seconds of the Spark query (with the collect) and of the
    assembly in Arrow."""
    schema = model_table_schema(spec)
    if raw.num_rows == 0:
        return schema.empty_table()
    t0 = time.monotonic()
    past = None
    if history is not None and history.num_rows and spec.aggregates:
        narrow = history.select(history_columns(spec))
        past = spark.createDataFrame(narrow.combine_chunks().cast(_nullable(narrow.schema)))
    drop = later_occurrences(raw, spec)
    source = _spark_input(spark, spec, raw, files, drop)
    result = history_features(source, spec, past, deduplicated=True).toArrow()
    t1 = time.monotonic()
    table = assemble(raw, result, spec)
    if timings is not None:
        timings.update(spark_query=round(t1 - t0, 3), assemble=round(time.monotonic() - t1, 3))
    return table


def assemble(raw: pa.Table, result: pa.Table, spec: DatasetSpec) -> pa.Table:
    """The model table from Spark's (ROW_COLUMN, aggregates..., SPLIT_CODE_COLUMN) and the raw rows they
    number: event columns taken from `raw`, sorted by timestamp, event id, entity key."""
    rows = result.column(ROW_COLUMN)
    sort_keys = [spec.timestamp, spec.event_id, *([spec.entity_key] if spec.entity_key else [])]
    keys = pa.table({c: pc.take(raw.column(c), rows) for c in sort_keys})
    order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in keys.column_names])
    events = raw.select(spec.event_fields).take(pc.take(rows, order))
    aggs = result.select([a.name for a in spec.aggregates]).take(order)
    split = pc.take(pa.array(SPLITS), pc.take(result.column(SPLIT_CODE_COLUMN), order))
    columns = [*events.columns, *aggs.columns, split]
    return pa.Table.from_arrays(columns, names=feature_table_columns(spec)).cast(model_table_schema(spec))


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
