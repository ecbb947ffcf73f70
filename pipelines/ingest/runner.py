"""One ingestion outside Dagster: the same stages the assets run, in one process.

    python -m pipelines.ingest [--spec SPEC] [--max-events N] [--max-seconds S] [--run-id ID] [--json]

Used by the kill test, the benchmark and operators without a Dagster instance.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import setting
from pipelines.features import stage as feature_stage
from pipelines.ingest import stages
from pipelines.ingest.parallel import kafka_consumer_factory
from pipelines.lake import Lake
from pipelines.lineage.records import DatasetVersion, FeatureBatch, RawBatch
from pipelines.quality import stage as quality_stage
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-gx-import")


def default_spark() -> Any:
    """Spark per the environment: the Connect server at SPARK_REMOTE (`flywheel up` writes it to stack.env),
    else SPARK_MASTER, else an in-process local[*] session (logged)."""
    from pipelines.spark import connect_or_local

    return connect_or_local(setting("SPARK_REMOTE"), setting("SPARK_MASTER") or "local[*]", app_name="flywheel-ingest")


def _preload_validation() -> None:
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401


@dataclass
class IngestOutcome:
    raw: RawBatch
    features: FeatureBatch | None = None
    validation: Any = None
    published: DatasetVersion | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.raw.nothing_new:
            return "nothing_new"
        return "published" if self.published else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "raw": self.raw.summary(),
            "features": self.features.to_dict() if self.features else None,
            "validation": self.validation.to_dict() if self.validation else None,
            "published": self.published.to_dict() if self.published else None,
            "seconds": self.seconds,
        }


def run_ingest(
    spec: DatasetSpec,
    *,
    lake: Lake | None = None,
    consumer_factory: Callable[[], Any] | None = None,
    spark: Any = None,
    run_id: str | None = None,
    settings: stages.IngestSettings | None = None,
) -> IngestOutcome:
    """Kafka -> raw -> features -> validation -> merge into main. Raises ValidationFailedError on a failed
    gate (main untouched, branch kept); returns status "nothing_new" without committing anything."""
    lake = lake or Lake.from_env()
    consumer_factory = consumer_factory or kafka_consumer_factory()
    run_id = run_id or f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    seconds: dict[str, float] = {}

    log.info("run %s: reading %s from main's offsets", run_id, spec.topic.name)
    raw = stages.ingest_raw(lake, consumer_factory, spec, run_id, settings)
    seconds.update(raw.seconds)
    outcome = IngestOutcome(raw=raw, seconds=seconds)
    if raw.nothing_new:
        return outcome
    log.info("stage raw done: %d events (%d quarantined) on %s", raw.events, raw.quarantined, raw.branch)
    t0 = time.monotonic()
    if spark is None:
        spark = default_spark()
        seconds["spark_session"] = round(time.monotonic() - t0, 3)
    # Importing GX takes seconds of Python; Spark's work runs in the JVM while this thread waits on it.
    _POOL.submit(_preload_validation)
    outcome.features = feature_stage.build_features(lake, spark, spec, raw)
    seconds["features"] = outcome.features.seconds
    seconds.update({f"features.{k}": v for k, v in outcome.features.seconds_detail.items()})
    log.info("stage features done: %d rows at %s", outcome.features.rows, outcome.features.commit)
    t0 = time.monotonic()
    outcome.validation = quality_stage.validate(lake, spec, raw, outcome.features)
    seconds["validation"] = round(time.monotonic() - t0, 3)
    log.info("stage validation done: %s", outcome.validation.headline())
    if not outcome.validation.success:
        raise stages.ValidationFailedError(quality_stage.failure_message(lake, raw, outcome.validation))
    t0 = time.monotonic()
    outcome.published = stages.publish_dataset(lake, spec, raw, outcome.features, outcome.validation)
    seconds["commit_merge"] = round(time.monotonic() - t0, 3)
    log.info("stage publish done: %s at main %s", outcome.published.tag, outcome.published.commit)
    return outcome
