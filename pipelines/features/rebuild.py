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
import shutil
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import state_dir
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
from pipelines.features.idfilter import as_large_string
from pipelines.features.split import split_code_column
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN
from pipelines.lineage.records import FeatureBatch
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


def rebuild_table(lake: Any, spark: Any, spec: DatasetSpec, run_id: str, base: str) -> FeatureBatch:
    """Rebuild features/<spec>/ on the run branch (opened from `base`) from every batch's raw events: the
    same batches, files per batch and catalog entries, recomputed with the spec's feature definition."""
    from pipelines import layout
    from pipelines.features import batches as catalog_io
    from pipelines.features.build import read_raw
    from pipelines.features.stage import content_type, vocabularies_bytes, write_batch_files
    from pipelines.lakecache import local_copies_of, remember
    from pipelines.lineage import keys
    from pipelines.runbranch import base_metadata, run_wap
    from pipelines.spec.loader import spec_hash

    t0 = time.monotonic()
    old = recorded_batches(lake, base, spec)
    raws = [read_raw(local_copies_of(lake, base, b.raw_paths), spec) for b in old.batches]
    t_read = time.monotonic() - t0
    tables = full_model_table(spark, spec, raws)
    t_spark = time.monotonic() - t0 - t_read

    wap = run_wap(lake, run_id).open(source=base)
    stale = lake.list_paths(wap.branch, layout.features_prefix(spec)) + lake.list_paths(
        wap.branch, layout.id_index_prefix(spec)
    )
    if stale:
        wap.delete_objects(stale)
    out_dir = state_dir() / "ingest" / f"{run_id}-rebuild"
    entries, uploads, counts = [], [], {}
    for before, raw, table in zip(old.batches, raws, tables, strict=True):
        min_ts, max_ts = catalog_io.time_range(table, spec)
        entry = catalog_io.BatchEntry(
            seq=before.seq,
            run_id=before.run_id,
            spec_hash=spec_hash(spec),
            feature_hash=catalog_io.feature_hash(spec),
            raw_paths=before.raw_paths,
            feature_paths=[],
            id_index=layout.id_index_path(spec, before.seq),
            rows=table.num_rows,
            labels=int(pc.sum(table.column(spec.label)).as_py() or 0),
            min_ts=min_ts,
            max_ts=max_ts,
            splits=catalog_io.split_counts(table),
            raw_rows=raw.num_rows,
            valid=before.valid,
            quarantined=before.quarantined,
        )
        uploads += write_batch_files(spec, entry, table, out_dir / f"batch-{before.seq}")
        counts = catalog_io.add_counts(counts, catalog_io.value_counts(table, spec))
        entries.append(entry)
    # how many of a batch's raw rows were re-sends is known once every batch is built
    kept: list[pa.Array] = []
    for entry, raw, table in zip(entries, raws, tables, strict=True):
        if kept:
            earlier = pa.chunked_array(kept, pa.large_string()).combine_chunks()  # 64-bit offsets
            entry.duplicates_across_batches = (
                pc.sum(pc.is_in(raw.column(spec.event_id), value_set=earlier)).as_py() or 0
            )
        entry.duplicates_in_batch = entry.raw_rows - entry.duplicates_across_batches - entry.rows
        kept.append(as_large_string(table.column(spec.event_id)))
    catalog = catalog_io.Catalog(spec.name, entries, counts)
    for local, path in uploads:
        wap.upload_file(path, local, content_type(path))
    wap.write_json(layout.batches_path(spec), catalog.to_json())
    vocab = catalog_io.vocabularies_from_counts(counts, spec)
    wap.write_bytes(layout.vocabularies_path(spec), vocabularies_bytes(vocab), "application/json")
    meta = {
        **base_metadata(spec, run_id),
        keys.STAGE: "features",
        keys.BATCH: "rebuild",
        keys.NEW_ROWS: str(catalog.rows),
        keys.ROWS: str(catalog.rows),
        keys.SPLITS: keys.dumps(catalog.splits),
        keys.FEATURE_HASH: catalog_io.feature_hash(spec),
        keys.DUPLICATES: keys.dumps(
            {
                "in_batch": sum(e.duplicates_in_batch for e in entries),
                "across_batches": sum(e.duplicates_across_batches for e in entries),
            }
        ),
    }
    commit = wap.commit(f"model table {spec.name} rebuilt from {len(entries)} batches for run {run_id}", meta)
    remember(lake, commit, uploads)
    shutil.rmtree(out_dir, ignore_errors=True)
    return FeatureBatch(
        branch=wap.branch,
        commit=commit,
        rows=catalog.rows,
        raw_rows=sum(r.num_rows for r in raws),
        duplicates_dropped=sum(e.duplicates_in_batch + e.duplicates_across_batches for e in entries),
        splits=catalog.splits,
        entities=0,
        paths=[p for e in entries for p in e.feature_paths],
        vocabularies=vocab,
        seconds=round(time.monotonic() - t0, 3),
        seconds_detail={"raw_read": round(t_read, 3), "spark_query": round(t_spark, 3)},
        batch=0,  # every batch: the gate checks the whole table
        table_rows=catalog.rows,
        duplicates_across_batches=sum(e.duplicates_across_batches for e in entries),
    )


def recorded_batches(lake: Any, ref: str, spec: DatasetSpec) -> Any:
    """The batches to replay: the catalog at ref, or for a table built before the catalog existed, every raw
    file as one batch (in path order)."""
    from pipelines import layout
    from pipelines.errors import FlywheelError
    from pipelines.features import batches as catalog_io

    path = layout.batches_path(spec)
    if lake.exists(ref, path):
        catalog = catalog_io.Catalog.from_json(lake.read_json(ref, path))
    else:
        raw = sorted(p for p in lake.list_paths(ref, layout.raw_prefix(spec)) if p.endswith(".parquet"))
        entry = catalog_io.BatchEntry(1, "before-the-catalog", "", "", raw, [], "", 0, 0, None, None)
        catalog = catalog_io.Catalog(spec.name, [entry] if raw else [])
    if not catalog.batches:
        raise FlywheelError(
            f"nothing to rebuild: no raw events of topic {spec.topic.name!r} at {ref!r}; run ingest_job first"
        )
    return catalog
