"""Ingestion assets (group "ingestion", job ingest_job): Kafka -> raw_events -> features -> validated_dataset.

Thin wiring over `pipelines.ingest.stages`; the write-audit-publish logic and exactly-once argument live
there. `validated_dataset` carries the blocking check `passes_expectations`: the GX suite and dataset
checks run before the merge, and a failure ends the run naming the kept branch with `main` untouched.
"""

import json
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    Backoff,
    Config,
    DataVersion,
    Failure,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
)
from pydantic import Field

from pipelines.features import stage as feature_stage
from pipelines.features.batches import FeatureDefinitionChangedError
from pipelines.ingest import stages
from pipelines.lake import lake_uri
from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion, FeatureBatch, RawBatch
from pipelines.quality import stage as quality_stage
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.spark import SparkResource

GROUP = "ingestion"
# Safe to retry every stage: raw recreates its branch from main's offsets, features rewrite the run's batch,
# and publish recognizes a merge this run already made (so a retry never merges twice).
RETRY = RetryPolicy(max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL)


_DEFAULTS = stages.IngestSettings()


class IngestConfig(Config):
    """The run's bounds, shown in the launchpad; defaults are IngestSettings' (one place)."""

    spec: str = Field(default="", description="spec path or built-in name; empty = FLYWHEEL_SPEC or transactions")
    max_events: int | None = Field(default=_DEFAULTS.max_events, description="stop reading after this many events")
    max_seconds: float = Field(default=_DEFAULTS.max_seconds, description="stop reading after this many seconds")
    workers: int = Field(
        default=_DEFAULTS.workers,
        description="reader processes, each a share of partitions; 0 = automatic (see IngestSettings)",
    )


def _uri(lakefs: LakeFSResource, ref: str, path: str = "") -> MetadataValue:
    # Text, not a URL: browsers cannot open lakefs:// and the UI would render a dead link.
    return MetadataValue.text(lake_uri(lakefs.lake.repository_id, ref, path))


@asset(
    group_name=GROUP,
    retry_policy=RETRY,
    output_required=False,
    kinds={"kafka", "lakefs", "parquet"},
    description="New events from the spec's Kafka topic since main's offsets: raw/ and quarantine/ on the run "
    "branch ingest-<run id>, with the offsets they reach.",
)
def raw_events(
    context: AssetExecutionContext,
    config: IngestConfig,
    kafka: KafkaResource,
    lakefs: LakeFSResource,
):
    spec = load_spec(config.spec or None)  # the later stages use the exact spec recorded in RawBatch
    settings = stages.IngestSettings(
        max_events=config.max_events, max_seconds=config.max_seconds, workers=config.workers
    )

    def on_progress(n: int) -> None:
        if n % 100_000 < 20_000:
            context.log.debug(f"read {n} events")

    try:
        raw = stages.ingest_raw(
            lakefs.lake, kafka.reader_factory(), spec, context.run_id, settings, progress=on_progress
        )
    except FeatureDefinitionChangedError as exc:  # a retry meets the same table: rebuild it first
        raise Failure(description=str(exc), allow_retries=False) from exc
    counts = {
        "events": MetadataValue.int(raw.events),
        "valid": MetadataValue.int(raw.valid),
        "quarantined": MetadataValue.int(raw.quarantined),
        "start_offsets": MetadataValue.json(raw.start_offsets),
        keys.BASE_COMMIT: MetadataValue.text(raw.base_commit),
        keys.TOPIC_ID: MetadataValue.text(raw.topic_id or "unknown"),
    }
    if raw.topic_reset is not None:
        # The log was replaced (memory-only broker restarted, topic recreated): say so loudly, keep going.
        context.log.warning(
            f"Kafka topic {raw.topic} was recreated: topic id {raw.topic_reset['previous_topic_id']} -> "
            f"{raw.topic_reset['topic_id']}; main's offsets {raw.topic_reset['previous_offsets']} belong to the "
            "old log, so the new log is read from its earliest offsets (re-sent event ids are deduplicated)"
        )
        counts[keys.TOPIC_RESET] = MetadataValue.json(raw.topic_reset)
    if raw.nothing_new:
        message = f"nothing new on topic {raw.topic} after main's offsets {raw.start_offsets}: no branch, no commit"
        context.log.info(message)
        context.log_event(
            AssetObservation(
                asset_key=context.asset_key, description=message, metadata={**counts, "status": "nothing new"}
            )
        )
        return
    assert raw.branch and raw.commit
    context.log.info(
        f"{raw.events} events ({raw.quarantined} quarantined) from offsets {raw.start_offsets} to "
        f"{raw.next_offsets} on branch {raw.branch}"
    )
    yield Output(
        raw,
        metadata={
            **counts,
            keys.RUN_ID: MetadataValue.text(context.run_id),
            keys.LAKEFS_COMMIT: MetadataValue.text(raw.commit),
            keys.DATASET_URI: _uri(lakefs, raw.commit, f"raw/{raw.topic}/"),
            "quarantine_uri": _uri(lakefs, raw.commit, f"quarantine/{raw.topic}/"),
            keys.LAKEFS_BRANCH: MetadataValue.text(raw.branch),
            keys.OFFSETS: MetadataValue.json(raw.next_offsets),
            keys.OFFSET_RANGES: MetadataValue.json(raw.offset_ranges),
            "quarantine_reasons": MetadataValue.json(raw.reasons),
            "stopped_by": MetadataValue.text(raw.stopped_by),
            "seconds": MetadataValue.json(raw.seconds),
        },
    )


@asset(
    group_name=GROUP,
    retry_policy=RETRY,
    kinds={"spark", "lakefs", "parquet"},
    description="The run's batch of the model table (features/<spec>/batch-<n>/) built with Spark from the run's "
    "new events only: typed, deduplicated by event id (against earlier batches too), per-entity history "
    "aggregates over the slice of earlier batches they reach, deterministic split; earlier files never rewritten.",
)
def features(context: AssetExecutionContext, raw_events: RawBatch, spark: SparkResource, lakefs: LakeFSResource):
    feats = feature_stage.build_features(lakefs.lake, spark.session(), raw_events.dataset_spec(), raw_events)
    context.log.info(
        f"model table: {feats.rows} rows ({feats.duplicates_dropped} duplicates dropped) in {feats.seconds:.1f}s: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in feats.seconds_detail.items())
    )
    return Output(
        feats,
        metadata={
            keys.RUN_ID: MetadataValue.text(context.run_id),
            keys.LAKEFS_COMMIT: MetadataValue.text(feats.commit),
            keys.DATASET_URI: _uri(lakefs, feats.commit, feats.paths[0].rsplit("/", 1)[0] + "/"),
            keys.LAKEFS_BRANCH: MetadataValue.text(feats.branch),
            "rows": MetadataValue.int(feats.rows),
            "raw_rows": MetadataValue.int(feats.raw_rows),
            "duplicates_dropped": MetadataValue.int(feats.duplicates_dropped),
            "duplicates_across_batches": MetadataValue.int(feats.duplicates_across_batches),
            "batch": MetadataValue.int(feats.batch),
            "table_rows": MetadataValue.int(feats.table_rows),
            "history_rows": MetadataValue.int(feats.history_rows),
            "entities": MetadataValue.int(feats.entities),
            "splits": MetadataValue.json(feats.splits),
            "vocabularies": MetadataValue.json(feats.vocabularies),
            "seconds": MetadataValue.float(feats.seconds),
            "seconds_detail": MetadataValue.json(feats.seconds_detail),
            keys.OFFSET_RANGES: MetadataValue.json(raw_events.offset_ranges),
            "quarantined": MetadataValue.int(raw_events.quarantined),
        },
    )


def _summary_metadata(summary: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        keys.VALIDATION: MetadataValue.text("passed" if summary.success else "failed"),
        keys.VALIDATION_SUMMARY: MetadataValue.json(summary.to_dict()),
        "expectations": MetadataValue.int(summary.expectations),
        "expectations_failed": MetadataValue.int(summary.expectations_failed),
        "rows": MetadataValue.int(summary.rows),
        "quarantined": MetadataValue.int(summary.quarantined),
    }
    if summary.data_docs:
        meta[keys.DATA_DOCS] = MetadataValue.url(summary.data_docs)
    return meta


@asset(
    group_name=GROUP,
    retry_policy=RETRY,
    kinds={"great_expectations", "lakefs"},
    check_specs=[
        AssetCheckSpec(
            "passes_expectations",
            asset="validated_dataset",
            blocking=True,
            description="GX suite from the spec + quarantine fraction + deterministic, leak-free split",
        )
    ],
    description="The gate and the publication: validate the model table on the branch; if it passes, commit "
    "the metadata (offsets, counts, validation) and merge into main in one step, then tag the version.",
)
def validated_dataset(
    context: AssetExecutionContext,
    raw_events: RawBatch,
    features: FeatureBatch,
    lakefs: LakeFSResource,
):
    lake = lakefs.lake
    spec = raw_events.dataset_spec()
    summary = quality_stage.validate(lake, spec, raw_events, features)
    meta = _summary_metadata(summary)
    if not summary.success:
        message = quality_stage.failure_message(lake, raw_events, summary)
        yield AssetCheckResult(
            check_name="passes_expectations",
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=message[:2000],
            metadata={**meta, keys.LAKEFS_BRANCH: MetadataValue.text(raw_events.branch or "")},
        )
        context.log.error(message)
        # Not retried: the same data fails the same gate; fix the producer or the spec, then run again.
        raise Failure(
            description=message,
            metadata={keys.LAKEFS_BRANCH: MetadataValue.text(raw_events.branch or "")},
            allow_retries=False,
        )
    yield AssetCheckResult(check_name="passes_expectations", passed=True, description=summary.headline(), metadata=meta)
    published: DatasetVersion = stages.publish_dataset(lake, spec, raw_events, features, summary)
    context.log.info(f"published {published.tag} at main commit {published.commit}")
    yield Output(
        published,
        data_version=DataVersion(published.commit),
        metadata={
            **meta,
            keys.RUN_ID: MetadataValue.text(context.run_id),
            keys.LAKEFS_COMMIT: MetadataValue.text(published.commit),
            keys.DATASET_URI: MetadataValue.text(published.features_uri),
            keys.DATASET_TAG: MetadataValue.text(published.tag),
            keys.DATASET_VERSION: MetadataValue.int(published.version),
            keys.OFFSETS: MetadataValue.json(raw_events.next_offsets),
            keys.OFFSET_RANGES: MetadataValue.json(raw_events.offset_ranges),
            "new_events": MetadataValue.int(raw_events.events),
            "valid": MetadataValue.int(raw_events.valid),
            "commit_metadata": MetadataValue.json(json.loads(json.dumps(published.metadata))),
        },
    )
