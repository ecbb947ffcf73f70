"""The gate of the `validated_dataset` asset: the rows the run adds to the model table (its batch, at the
features commit) against the spec's GX suite, and dataset checks from the batch plus the stored summaries of
the earlier batches (never a rescan of the table); recorded on the run branch (never merged here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import layout
from pipelines.config import state_dir
from pipelines.lake import MAIN, Lake, lake_uri
from pipelines.lakecache import local_copies_of
from pipelines.lineage import keys
from pipelines.lineage.records import FeatureBatch, RawBatch
from pipelines.runbranch import base_metadata, run_wap
from pipelines.spec.model import DatasetSpec


def gx_dir() -> Path:
    return state_dir() / "gx"


def validate(lake: Lake, spec: DatasetSpec, raw: RawBatch, feats: FeatureBatch) -> Any:
    """Run the gate on the model table at the features commit; record the summary on the branch.

    Returns a ValidationSummary; never merges. The caller fails the run when `summary.success` is False.
    """
    import pyarrow as pa

    from pipelines.features.batches import read_catalog
    from pipelines.features.build import model_table_schema

    files = local_copies_of(lake, feats.commit, feats.paths)
    schema = model_table_schema(spec)
    table = pa.concat_tables([pq.read_table(f).cast(schema) for f in files]) if files else schema.empty_table()
    earlier = read_catalog(lake, feats.commit, spec).before(feats.batch)
    summary = check_batch(table, spec, raw, earlier)
    record_validation(lake, spec, raw, feats, summary, earlier.rows)
    return summary


def check_batch(table: Any, spec: DatasetSpec, raw: RawBatch, earlier: Any) -> Any:
    """The gate's verdict on a batch's model-table rows (`table`, Arrow), with the dataset checks over the
    earlier batches' summaries (`earlier`, the catalog before this batch): one GX validation result, its
    Data Docs, a ValidationSummary. Touches no lakeFS branch, so it can run while the batch is uploaded."""
    from pipelines.quality.validate import validate_model_table

    return validate_model_table(
        table,
        spec,
        valid_in_batch=raw.valid,
        quarantined_in_batch=raw.quarantined,
        gx_dir=gx_dir(),
        run_name=raw.run_id,
        rows_before=earlier.rows,
        labels_before=earlier.labels,
    )


def record_validation(
    lake: Lake, spec: DatasetSpec, raw: RawBatch, feats: FeatureBatch, summary: Any, rows_before: int
) -> str:
    """Write the summary of `check_batch` to the run branch and commit it (after the features commit it
    judged); returns the commit."""
    record = {
        **summary.to_dict(),
        "run_id": raw.run_id,
        "features_commit": feats.commit,
        "batch": feats.batch,
        "dataset_rows": rows_before + summary.rows,
    }
    wap = run_wap(lake, raw.run_id)
    wap.write_json(layout.VALIDATION_PREFIX + f"{spec.name}.json", record)
    meta = {
        **base_metadata(spec, raw.run_id),
        keys.STAGE: "validation",
        keys.VALIDATION: "passed" if summary.success else "failed",
        keys.VALIDATION_SUMMARY: summary.headline()[:1000],
    }
    return wap.commit(f"validation {'passed' if summary.success else 'FAILED'} for run {raw.run_id}", meta)


def failure_message(lake: Lake, raw: RawBatch, summary: Any) -> str:
    main_now = lake.resolve(MAIN)
    return (
        f"dataset validation failed ({summary.headline()}). Nothing was published: main is untouched at "
        f"{main_now}; the data is kept on branch {raw.branch!r} "
        f"({lake_uri(lake.repository_id, raw.branch or '', '')}) for inspection. Data Docs: {summary.data_docs}"
    )
