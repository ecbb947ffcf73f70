"""The `features` asset's entry function: the run's batch of the model table, built with Spark on the run branch.

Incremental: the run reads only its own raw files, drops the ids earlier batches published
(pipelines.features.dedup), reads from earlier batches only the history its aggregates can reach
(pipelines.features.history), and adds its rows as new files under features/<spec>/batch-<seq>/. Earlier
files are never rewritten; the batch catalog (pipelines.features.batches) records the batch.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import layout
from pipelines.config import state_dir
from pipelines.errors import FlywheelError
from pipelines.features import batches as catalog_io
from pipelines.features.batches import BatchEntry, Catalog
from pipelines.lake import Lake
from pipelines.lakecache import local_copies_of, remember
from pipelines.lineage import keys
from pipelines.lineage.records import FeatureBatch, RawBatch
from pipelines.runbranch import base_metadata, run_wap
from pipelines.spec.loader import spec_hash
from pipelines.spec.model import DatasetSpec

FEATURE_ROWS_PER_FILE = 1_000_000
ROW_GROUP_ROWS = 64 * 1024  # row groups the history reader can skip by their event-time statistics
PARQUET = "application/vnd.apache.parquet"
OCTET_STREAM = "application/octet-stream"


def content_type(path: str) -> str:
    """A batch file's content type: Parquet parts and id indexes, or the id filter's raw bits (`.bloom`)."""
    return PARQUET if path.endswith(".parquet") else OCTET_STREAM


def build_features(
    lake: Lake,
    spark: Any,
    spec: DatasetSpec,
    raw: RawBatch,
    on_table: Callable[[pa.Table, Catalog], None] | None = None,
) -> FeatureBatch:
    """Add the run's batch to features/<spec>/ on the run branch: rows for the run's new events only.

    `on_table(table, catalog)` is called with the batch's rows (Arrow) and the catalog of the earlier batches
    once they are built, before they are written and uploaded: a caller in the same process can start the
    gate on them meanwhile (pipelines.ingest.runner)."""
    from pipelines.features.build import model_table, read_raw
    from pipelines.features.dedup import seen_before
    from pipelines.features.history import history_slice

    if raw.branch is None or raw.commit is None:
        raise FlywheelError("build_features needs a raw batch with a branch (nothing new was ingested)")
    t0 = time.monotonic()
    catalog = catalog_io.read_catalog(lake, raw.commit, spec)  # raw commits do not touch the catalog
    catalog_io.check_feature_definition(catalog, spec)
    files = local_copies_of(lake, raw.commit, sorted(raw.raw_paths))
    events = read_raw(files, spec)
    t_raw = time.monotonic() - t0
    seen = seen_before(lake, raw.commit, catalog, events.column(spec.event_id))
    across = pc.sum(seen).as_py() or 0
    fresh = events.filter(pc.invert(seen)) if across else events
    t_read = time.monotonic() - t0
    history = history_slice(lake, raw.commit, spec, catalog, fresh)
    t_history = time.monotonic() - t0 - t_read
    detail: dict[str, float] = {}
    # A local session reads the files itself only when they are exactly the rows to build.
    table = model_table(spark, spec, fresh, files if not across else None, timings=detail, history=history)
    t_spark = time.monotonic() - t0
    if on_table is not None:
        on_table(table, catalog)
    entry = batch_entry(spec, raw, catalog.next_seq, table, events.num_rows, across)
    feats = publish_batch(lake, spec, raw.run_id, raw.commit, catalog, entry, table)
    t_write = time.monotonic() - t0 - t_spark
    feats.seconds = round(time.monotonic() - t0, 3)
    feats.history_rows = history.num_rows if history is not None else 0
    feats.seconds_detail = {
        "raw_read_dedup": round(t_read, 3),
        "dedup": round(t_read - t_raw, 3),  # part of raw_read_dedup: the lookup against earlier batches
        "history_read": round(t_history, 3),
        **detail,
        "model_table": round(t_spark, 3),
        "write_upload_commit": round(t_write, 3),
    }
    return feats


def batch_entry(spec: DatasetSpec, raw: RawBatch, seq: int, table: pa.Table, raw_rows: int, across: int) -> BatchEntry:
    """The catalog entry of a batch built from `raw` (its model-table rows in `table`)."""
    min_ts, max_ts = catalog_io.time_range(table, spec)
    return BatchEntry(
        seq=seq,
        run_id=raw.run_id,
        spec_hash=spec_hash(spec),
        feature_hash=catalog_io.feature_hash(spec),
        raw_paths=sorted(raw.raw_paths),
        feature_paths=[],
        id_index=layout.id_index_path(spec, seq),
        rows=table.num_rows,
        labels=int(pc.sum(table.column(spec.label)).as_py() or 0),
        min_ts=min_ts,
        max_ts=max_ts,
        splits=catalog_io.split_counts(table),
        raw_rows=raw_rows,
        duplicates_in_batch=raw_rows - across - table.num_rows,
        duplicates_across_batches=across,
        valid=raw.valid,
        quarantined=raw.quarantined,
    )


def write_batch_files(spec: DatasetSpec, entry: BatchEntry, table: pa.Table, out_dir: Path) -> list[tuple[Path, str]]:
    """The batch's model-table parts and id index as local files, with the lakeFS paths they go to."""
    from pipelines.features.dedup import write_index

    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = layout.feature_batch_prefix(spec, entry.seq)
    uploads: list[tuple[Path, str]] = []
    for n, start in enumerate(range(0, max(table.num_rows, 1), FEATURE_ROWS_PER_FILE)):
        local = out_dir / f"part-{n:05d}.parquet"
        part = table.slice(start, FEATURE_ROWS_PER_FILE)
        pq.write_table(part, local, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        uploads.append((local, prefix + local.name))
    uploads += write_index(table, spec, entry, out_dir)
    entry.feature_paths = [p for _, p in uploads if p.startswith(prefix)]
    return uploads


def publish_batch(
    lake: Lake, spec: DatasetSpec, run_id: str, ref: str, catalog: Catalog, entry: BatchEntry, table: pa.Table
) -> FeatureBatch:
    """Upload the batch's files, the catalog with the batch added and the vocabularies; commit on the run
    branch. A retried run writes the same paths again (the batch number comes from the catalog at `ref`)."""
    out_dir = state_dir() / "ingest" / f"{run_id}-features-{entry.seq}"
    shutil.rmtree(out_dir, ignore_errors=True)
    uploads = write_batch_files(spec, entry, table, out_dir)
    counts = catalog_io.add_counts(catalog.value_counts, catalog_io.value_counts(table, spec))
    updated = Catalog(catalog.spec, [*catalog.batches, entry], counts)
    vocab = catalog_io.vocabularies_from_counts(counts, spec)

    wap = run_wap(lake, run_id)
    batch_prefix = layout.feature_batch_prefix(spec, entry.seq)
    stale = [p for p in lake.list_paths(wap.branch, batch_prefix) if p not in set(entry.feature_paths)]
    if stale:  # an earlier attempt of this run wrote more parts
        wap.delete_objects(stale)
    for local, path in uploads:
        wap.upload_file(path, local, content_type(path))
    wap.write_json(layout.batches_path(spec), updated.to_json())
    wap.write_bytes(layout.vocabularies_path(spec), vocabularies_bytes(vocab), "application/json")
    meta = {
        **base_metadata(spec, run_id),
        keys.STAGE: "features",
        keys.BATCH: str(entry.seq),
        keys.NEW_ROWS: str(entry.rows),
        keys.ROWS: str(updated.rows),
        keys.SPLITS: keys.dumps(updated.splits),
        keys.FEATURE_HASH: entry.feature_hash,
        keys.DUPLICATES: keys.dumps(
            {"in_batch": entry.duplicates_in_batch, "across_batches": entry.duplicates_across_batches}
        ),
    }
    commit = wap.commit(f"model table {spec.name}: batch {entry.seq} ({entry.rows} rows) for run {run_id}", meta)
    remember(lake, commit, uploads)
    shutil.rmtree(out_dir, ignore_errors=True)
    return FeatureBatch(
        branch=wap.branch,
        commit=commit,
        rows=entry.rows,
        raw_rows=entry.raw_rows,
        duplicates_dropped=entry.duplicates_in_batch + entry.duplicates_across_batches,
        splits=entry.splits,
        entities=_entities(table, spec),
        paths=entry.feature_paths,
        vocabularies=vocab,
        seconds=0.0,
        batch=entry.seq,
        table_rows=updated.rows,
        duplicates_across_batches=entry.duplicates_across_batches,
    )


def vocabularies_bytes(vocab: dict[str, list[str]]) -> bytes:
    import json

    return json.dumps(vocab, indent=2, sort_keys=True).encode()


def _entities(table: pa.Table, spec: DatasetSpec) -> int:
    return pc.count_distinct(table.column(spec.split_key)).as_py() if table.num_rows else 0
