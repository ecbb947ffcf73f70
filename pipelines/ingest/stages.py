"""Write-audit-publish ingestion: the first and last stage of a run, as plain functions a Dagster step, the CLI
and a test all call. The stages in between live in their own packages; all write on the run branch.

    raw = ingest_raw(lake, consumer_factory, spec, run_id)                  # Kafka -> raw/ + quarantine/ + offsets
    feats = features.stage.build_features(lake, spark, spec, raw)          # Spark model table -> features/<spec>/
    summary = quality.stage.validate(lake, spec, raw, feats)               # GX + dataset checks (the gate)
    version = publish_dataset(lake, spec, raw, feats, summary)             # one merge into main, then a tag

Stages hand each other the small JSON-able records of pipelines.lineage.records; the data itself lives on the
run branch (pipelines.runbranch), written through the one write-audit-publish (lake.WriteAuditPublish).

Exactly once: the run branch starts at the commit of `main` whose offsets file the run read, and the
offsets the run reached are committed on that branch with the data they produced. `main` moves only by
the final merge, which succeeds only if `main` is still at that commit, so a crash anywhere before it
leaves `main` (data and offsets) as it was and the next run re-reads the same events; a crash after it
leaves the new offsets on `main` and the next run starts after them. The offsets carry the topic id: a
topic recreated since (a new log, e.g. a restarted memory-only broker) is read from its start, and the
reset is recorded (`flywheel.topic_reset`); see pipelines.ingest.offsets.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import layout
from pipelines.config import setting, state_dir
from pipelines.errors import FlywheelError
from pipelines.features.batches import check_feature_definition, read_catalog
from pipelines.ingest.consume import consume, fewer_gc_passes, topic_partitions
from pipelines.ingest.offsets import (
    current_topic_id,
    offsets_document,
    read_stored_offsets,
    reconcile,
)
from pipelines.ingest.parallel import KafkaConsumerFactory, consume_parallel
from pipelines.ingest.parse import StagedWriter
from pipelines.lake import MAIN, Lake, LakeConflictError, run_branch_name
from pipelines.lakecache import prune_cache, remember
from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion, FeatureBatch, RawBatch
from pipelines.quality.stage import failure_message
from pipelines.runbranch import BRANCH_PREFIX, base_metadata, run_wap
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)


class ValidationFailedError(FlywheelError):
    """The gate failed: the branch is kept for inspection and `main` is untouched."""


class StaleBaseError(FlywheelError):
    """`main` moved since this run read its offsets (another run published): nothing is merged."""


@dataclass
class IngestSettings:
    """Bounds and tuning of one run. `max_events=None` reads until caught up (or `max_seconds`)."""

    max_events: int | None = 5_000_000
    max_seconds: float = 600.0
    poll_timeout_ms: int = 500
    rows_per_file: int = 1_000_000
    # Reader processes, a share of partitions each; 1 = in this process. 0 = one per partition, at most two
    # per CPU: with shares of unequal size (3 partitions, 2 CPUs) one process per CPU leaves a core idle while
    # the bigger share finishes; more processes than cores even out on the cores instead.
    workers: int = 0


# ---- helpers ----------------------------------------------------------------------------------------


def read_offsets(lake: Lake, ref: str, spec: DatasetSpec) -> dict[int, int]:
    """{partition: next offset} recorded at ref (see pipelines.ingest.offsets for the topic id)."""
    return read_stored_offsets(lake, ref, spec).offsets


def topic_metadata(raw: RawBatch) -> dict[str, str]:
    """The topic id read, and the reset (previous and new topic id, old offsets) when there was one."""
    meta = {keys.TOPIC_ID: raw.topic_id or ""}
    if raw.topic_reset is not None:
        meta[keys.TOPIC_RESET] = keys.dumps(raw.topic_reset)
    return meta


# ---- stage 1: Kafka -> raw + quarantine on the run branch --------------------------------------------


def ingest_raw(
    lake: Lake,
    consumer_factory: Callable[[], Any],
    spec: DatasetSpec,
    run_id: str,
    settings: IngestSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> RawBatch:
    """Read new events from `main`'s offsets; write raw, quarantine and new offsets on a run branch.

    Nothing new: no branch, no commit (RawBatch.nothing_new).
    """
    settings = settings or IngestSettings()
    lake.ensure_repository()
    recover_tag(lake, spec)
    base = lake.resolve(MAIN)
    # Before reading anything: a table built with another feature definition needs a rebuild, not a batch.
    check_feature_definition(read_catalog(lake, base, spec), spec)
    recorded = read_stored_offsets(lake, base, spec)

    staging = state_dir() / "ingest" / run_branch_name(run_id, BRANCH_PREFIX)
    shutil.rmtree(staging, ignore_errors=True)
    tag = run_branch_name(run_id, "run")
    t0 = time.monotonic()
    consumer = consumer_factory()
    try:
        partitions = topic_partitions(consumer, spec.topic.name)  # loads the topic's metadata, its id included
        workers = settings.workers or min(len(partitions), 2 * (os.cpu_count() or 1))
        topic_id = current_topic_id(consumer, spec.topic.name)
        stored, reset = reconcile(spec.topic.name, recorded, topic_id)
        if reset is not None:
            log.warning(reset.describe())
        if isinstance(consumer_factory, KafkaConsumerFactory):  # ingestion's own: librdkafka readers
            consumer.close()
            result, staged = consume_parallel(
                consumer_factory,
                spec,
                stored,
                staging,
                tag,
                workers=workers,
                max_events=settings.max_events,
                max_seconds=settings.max_seconds,
                poll_timeout_ms=settings.poll_timeout_ms,
                rows_per_file=settings.rows_per_file,
                on_start=(lambda: progress(1)) if progress is not None else None,
                progress=progress,
                topic_id=topic_id,
            )
        else:
            writer = StagedWriter(spec, staging, tag, rows_per_file=settings.rows_per_file)
            with writer, fewer_gc_passes():
                result = consume(
                    consumer,
                    spec.topic.name,
                    stored,
                    writer,
                    max_events=settings.max_events,
                    max_seconds=settings.max_seconds,
                    poll_timeout_ms=settings.poll_timeout_ms,
                    progress=progress,
                    topic_id=topic_id,
                )
            staged = writer.close()
    finally:
        consumer.close()
    t_consume = time.monotonic() - t0

    batch = RawBatch(
        run_id=run_id,
        spec=spec.name,
        topic=spec.topic.name,
        base_commit=base,
        branch=None,
        commit=None,
        start_offsets={str(p): o for p, o in sorted(result.start_offsets.items())},
        next_offsets={str(p): o for p, o in sorted(result.next_offsets.items())},
        offset_ranges=result.offset_ranges,
        events=result.events,
        valid=staged.valid,
        quarantined=staged.quarantined,
        reasons=dict(staged.reasons.most_common()),
        raw_paths=[],
        quarantine_paths=[],
        stopped_by=result.stopped_by,
        seconds={"consume_parse": round(t_consume, 3)},
        topic_id=topic_id,
        topic_reset=reset.to_dict() if reset is not None else None,
        spec_config=spec.model_dump(mode="json"),
    )
    if staged.valid + staged.quarantined != result.events:  # a bug guard: every event is accounted for
        raise FlywheelError(f"read {result.events} events but staged {staged.valid + staged.quarantined}")
    if batch.nothing_new:
        shutil.rmtree(staging, ignore_errors=True)
        log.info("nothing new on %s after offsets %s: no branch, no commit", spec.topic.name, batch.start_offsets)
        return batch

    t0 = time.monotonic()
    wap = run_wap(lake, run_id).open(source=base)  # a retried run starts its branch over, from the same base
    uploads: list[tuple[Path, str]] = []
    for local in staged.raw_files:
        uploads.append((local, layout.raw_prefix(spec) + local.name))
    for local in staged.quarantine_files:
        uploads.append((local, layout.quarantine_prefix(spec) + local.name))
    for local, path in uploads:
        wap.upload_file(path, local, "application/vnd.apache.parquet")
    wap.write_json(layout.offsets_path(spec), offsets_document(spec.topic.name, batch.next_offsets, topic_id))
    batch.raw_paths = [p for _, p in uploads if p.startswith(layout.raw_prefix(spec))]
    batch.quarantine_paths = [p for _, p in uploads if p.startswith(layout.quarantine_prefix(spec))]
    meta = {
        **base_metadata(spec, run_id),
        keys.STAGE: "raw",
        keys.OFFSETS: keys.dumps(batch.next_offsets),
        keys.OFFSET_RANGES: keys.dumps(batch.offset_ranges),
        keys.VALID: str(batch.valid),
        keys.QUARANTINED: str(batch.quarantined),
        **topic_metadata(batch),
    }
    batch.commit = wap.commit(f"raw events of {spec.topic.name} for run {run_id}", meta)
    batch.branch = wap.branch
    remember(lake, batch.commit, uploads)
    shutil.rmtree(staging, ignore_errors=True)
    batch.seconds["raw_write"] = round(time.monotonic() - t0, 3)
    return batch


# ---- stage 3: validation (the gate) and publication -------------------------------------------------------


def dataset_version(lake: Lake, ref: str, spec: DatasetSpec) -> int:
    """The version number of the dataset of `spec` published at ref (0 before the first)."""
    path = layout.VALIDATION_PREFIX + f"{spec.name}.json"
    if not lake.exists(ref, path):
        return 0
    return int(lake.read_json(ref, path).get("dataset_version", 0))


def tag_name(spec: DatasetSpec, version: int) -> str:
    return f"dataset-{spec.name}-{version}"


def publish_dataset(lake: Lake, spec: DatasetSpec, raw: RawBatch, feats: FeatureBatch, summary: Any) -> DatasetVersion:
    """Commit the metadata and merge the run branch into main in one step (the WAP's publish), then tag the
    version; returns the DatasetVersion record that training pins.

    Refuses when the validation on the branch did not pass, or when main moved since the run read its
    offsets (the merge would count events twice or skip them); in both cases main stays untouched.
    """
    if not summary.success:
        raise ValidationFailedError(failure_message(lake, raw, summary))
    head_meta = lake.commit_info(MAIN).metadata or {}
    if head_meta.get(keys.RUN_ID) == raw.run_id and head_meta.get(keys.STAGE) == "published":
        # A retry of this step after its merge went through: report the publication, merge nothing twice.
        tag = head_meta[keys.DATASET_TAG]
        commit = lake.resolve(MAIN)
        lake.tag(tag, commit, exist_ok=True)
        lake.delete_branch(feats.branch, missing_ok=True)
        return _dataset_version(lake, spec, commit, tag, int(head_meta[keys.DATASET_VERSION]), dict(head_meta))
    head = lake.resolve(MAIN)
    if head != raw.base_commit and read_stored_offsets(lake, head, spec) != read_stored_offsets(
        lake, raw.base_commit, spec
    ):
        raise StaleBaseError(
            f"main moved from {raw.base_commit} to {head} with new offsets while run {raw.run_id} was ingesting "
            f"(another ingestion published first); nothing merged, branch {raw.branch!r} kept; run again to "
            "ingest from main's new offsets"
        )
    version = dataset_version(lake, head, spec) + 1
    tag = tag_name(spec, version)
    validation_path = layout.VALIDATION_PREFIX + f"{spec.name}.json"
    features_meta = lake.commit_info(feats.commit).metadata or {}  # the table's totals with this batch
    wap = run_wap(lake, raw.run_id)
    record = lake.read_json(wap.branch, validation_path)
    record["dataset_version"] = version
    wap.write_json(validation_path, record)
    meta = {
        **base_metadata(spec, raw.run_id),
        keys.STAGE: "published",
        keys.DATASET_VERSION: str(version),
        keys.DATASET_TAG: tag,
        keys.BASE_COMMIT: raw.base_commit,
        keys.OFFSETS: keys.dumps(raw.next_offsets),
        keys.START_OFFSETS: keys.dumps(raw.start_offsets),
        keys.OFFSET_RANGES: keys.dumps(raw.offset_ranges),
        keys.EVENTS: str(raw.events),
        keys.VALID: str(raw.valid),
        keys.QUARANTINED: str(raw.quarantined),
        keys.ROWS: features_meta.get(keys.ROWS, str(feats.table_rows or feats.rows)),
        keys.SPLITS: features_meta.get(keys.SPLITS, keys.dumps(feats.splits)),
        keys.NEW_ROWS: str(feats.rows),
        keys.BATCH: str(feats.batch),
        keys.DUPLICATES: features_meta.get(keys.DUPLICATES, ""),
        keys.FEATURE_HASH: features_meta.get(keys.FEATURE_HASH, ""),
        keys.FEATURES_PATH: layout.features_prefix(spec),
        keys.VALIDATION: "passed",
        keys.VALIDATION_SUMMARY: keys.dumps(_compact(summary)),
        keys.DATA_DOCS: summary.data_docs or "",
        **topic_metadata(raw),
    }
    message = (
        f"dataset {spec.name} v{version}: {raw.valid} new events, batch {feats.batch} adds {feats.rows} rows "
        f"(run {raw.run_id})"
    )
    # The final branch commit carries the metadata too, so a fast-forward merge shows it on main as well.
    wap.commit(message, meta)
    _crash_point("before_merge")
    try:
        commit = wap.publish(message, meta)  # merges into main and deletes the branch
    except LakeConflictError as exc:
        raise StaleBaseError(
            f"merging {feats.branch!r} into main conflicted ({exc}): another ingestion published first; "
            "nothing merged, the branch is kept; run again"
        ) from exc
    _crash_point("after_merge")
    lake.tag(tag, commit, exist_ok=True)
    prefixes = [
        layout.raw_prefix(spec),
        layout.quarantine_prefix(spec),
        layout.features_prefix(spec),
        layout.id_index_prefix(spec),
    ]
    prune_cache(lake, commit, prefixes)
    return _dataset_version(lake, spec, commit, tag, version, meta)


def _dataset_version(
    lake: Lake, spec: DatasetSpec, commit: str, tag: str, version: int, meta: dict[str, str]
) -> DatasetVersion:
    return DatasetVersion(
        repository=lake.repository_id,
        commit=commit,
        tag=tag,
        version=version,
        spec=spec.name,
        features_path=layout.features_prefix(spec),
        metadata=dict(meta),
    )


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: FLYWHEEL_INGEST_CRASH_AT=<name> SIGKILLs this process here."""
    if setting("FLYWHEEL_INGEST_CRASH_AT") == name:
        import signal

        log.warning("FLYWHEEL_INGEST_CRASH_AT=%s: killing this process now", name)
        os.kill(os.getpid(), signal.SIGKILL)


def _compact(summary: Any) -> dict[str, Any]:
    return {
        "success": summary.success,
        "suite": summary.suite,
        "expectations": summary.expectations,
        "expectations_failed": summary.expectations_failed,
        "checks": {c.name: c.success for c in summary.checks},
        "rows": summary.rows,
        "label_rate": summary.label_rate,
        "quarantine_fraction": summary.quarantine_fraction,
    }


def recover_tag(lake: Lake, spec: DatasetSpec) -> str | None:
    """If a run died between its merge and its tag, tag main's head now (tags are names, not data)."""
    try:
        meta = lake.commit_info(MAIN).metadata or {}
    except FlywheelError:
        return None
    tag = meta.get(keys.DATASET_TAG)
    if not tag or meta.get(keys.SPEC) != spec.name:
        return None
    lake.tag(tag, lake.resolve(MAIN), exist_ok=True)
    return tag
