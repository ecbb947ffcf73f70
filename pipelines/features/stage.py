"""The `features` asset's entry function: the model table built with Spark on the run branch."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import layout
from pipelines.config import state_dir
from pipelines.errors import FlywheelError
from pipelines.lake import Lake
from pipelines.lakecache import local_copies, remember
from pipelines.lineage import keys
from pipelines.lineage.records import FeatureBatch, RawBatch
from pipelines.runbranch import base_metadata, run_wap
from pipelines.spec.model import DatasetSpec

FEATURE_ROWS_PER_FILE = 1_000_000


def build_features(lake: Lake, spark: Any, spec: DatasetSpec, raw: RawBatch) -> FeatureBatch:
    """Rebuild features/<spec>/ on the run branch from all raw events there (history of every run)."""
    import pyarrow as pa

    from pipelines.features.build import model_table, read_raw, vocabularies, vocabularies_json

    if raw.branch is None or raw.commit is None:
        raise FlywheelError("build_features needs a raw batch with a branch (nothing new was ingested)")
    t0 = time.monotonic()
    files = local_copies(lake, raw.commit, layout.raw_prefix(spec))
    # every event so far quarantined gives an empty table, which the gate then rejects
    history = read_raw(files, spec)
    t_read = time.monotonic() - t0
    detail: dict[str, float] = {}
    table = model_table(spark, spec, history, files, timings=detail)
    raw_rows = history.num_rows
    del history
    vocab = vocabularies(table, spec)
    t_spark = time.monotonic() - t0

    out_dir = state_dir() / "ingest" / f"{raw.branch}-features"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    prefix = layout.features_prefix(spec)
    uploads: list[tuple[Path, str]] = []
    for n, start in enumerate(range(0, max(table.num_rows, 1), FEATURE_ROWS_PER_FILE)):
        local = out_dir / f"part-{n:05d}.parquet"
        pq.write_table(table.slice(start, FEATURE_ROWS_PER_FILE), local, compression="zstd")
        uploads.append((local, prefix + local.name))
    # Replace the previous table: drop parts this build does not rewrite.
    keep = {p for _, p in uploads}
    stale = [p for p in lake.list_paths(raw.commit, prefix) if p not in keep and not p.startswith(f"{prefix}_meta/")]
    wap = run_wap(lake, raw.run_id)
    if stale:
        wap.delete_objects(stale)
    t_write = time.monotonic() - t0 - t_spark
    for local, path in uploads:
        wap.upload_file(path, local, "application/vnd.apache.parquet")
    wap.write_bytes(layout.vocabularies_path(spec), vocabularies_json(vocab), "application/json")
    splits = {s["values"]: s["counts"] for s in table.column(layout.SPLIT_COLUMN).value_counts().to_pylist()}
    entities = pa.compute.count_distinct(table.column(spec.entity_key)).as_py()
    meta = {
        **base_metadata(spec, raw.run_id),
        keys.STAGE: "features",
        keys.ROWS: str(table.num_rows),
        keys.SPLITS: keys.dumps(splits),
    }
    commit = wap.commit(f"model table {spec.name} for run {raw.run_id}", meta)
    remember(lake, commit, uploads)
    shutil.rmtree(out_dir, ignore_errors=True)
    return FeatureBatch(
        branch=raw.branch,
        commit=commit,
        rows=table.num_rows,
        raw_rows=raw_rows,
        duplicates_dropped=raw_rows - table.num_rows,
        splits=splits,
        entities=entities,
        paths=[p for _, p in uploads],
        vocabularies=vocab,
        seconds=round(time.monotonic() - t0, 3),
        seconds_detail={
            "raw_read": round(t_read, 3),
            **detail,
            "model_table": round(t_spark, 3),
            "parquet_write": round(t_write, 3),
            "upload_commit": round(time.monotonic() - t0 - t_spark - t_write, 3),
        },
    )
