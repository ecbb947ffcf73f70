"""One ingestion outside Dagster: the same stages the assets run, in one process.

    python -m pipelines.ingest [--spec SPEC] [--max-events N] [--max-seconds S] [--run-id ID] [--json]

Used by the kill test, the benchmark and operators without a Dagster instance.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
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
_GATE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-gate")
GATE_ABANDON_WAIT_S = 600.0  # a failed run waits this long for a gate already running on its rows


def default_spark() -> Any:
    """Spark per the environment: the Connect server at SPARK_REMOTE (`flywheel up` writes it to stack.env),
    else SPARK_MASTER, else an in-process local[*] session (logged)."""
    from pipelines.spark import connect_or_local

    return connect_or_local(setting("SPARK_REMOTE"), setting("SPARK_MASTER") or "local[*]", app_name="flywheel-ingest")


def _preload_validation() -> None:
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401


class _GateAlongside:
    """The gate on the batch's rows in a second thread while the main thread writes and uploads them.

    The same verdict as `quality.stage.validate` (one GX validation, its Data Docs, the dataset checks from
    the earlier batches' summaries) on the same rows, taken from memory instead of read back from the
    features commit; it is recorded on the branch after that commit, as `validate` records it. The upload
    (Parquet compression, HTTP) and GX (pandas) each leave a CPU to the other on this 2-CPU machine."""

    def __init__(self, spec: DatasetSpec, raw: RawBatch) -> None:
        self.spec, self.raw = spec, raw
        self.future: Future[Any] | None = None
        self.rows_before = 0
        self.seconds = 0.0

    def start(self, table: Any, catalog: Any) -> None:
        self.rows_before = catalog.rows
        self.future = _GATE.submit(self._check, table, catalog)

    def _check(self, table: Any, catalog: Any) -> Any:
        t0 = time.monotonic()
        try:
            return quality_stage.check_batch(table, self.spec, self.raw, catalog)
        finally:
            self.seconds = round(time.monotonic() - t0, 3)

    def abandon(self) -> None:
        """After a failed features stage: cancel the gate if it has not started, else wait for it (bounded), so
        that no check of a failed run outlives it and the single-worker executor is free for the next run;
        a failure of the gate itself is logged, since the stage's error is the one the run raises."""
        if self.future is None or self.future.cancel():
            return
        try:
            self.future.result(timeout=GATE_ABANDON_WAIT_S)
        except FutureTimeout:
            log.error(
                "the gate of the failed run still runs after %.0fs; the next run's gate waits for it",
                GATE_ABANDON_WAIT_S,
            )
        except Exception:
            log.exception("the gate of the failed run failed too (the run reports the features stage's error)")

    def finish(self, lake: Lake, feats: FeatureBatch) -> Any:
        """The summary, recorded on the run branch; the plain `validate` when the table never came."""
        if self.future is None:
            t0 = time.monotonic()
            summary = quality_stage.validate(lake, self.spec, self.raw, feats)
            self.seconds = round(time.monotonic() - t0, 3)
            return summary
        summary = self.future.result()
        quality_stage.record_validation(lake, self.spec, self.raw, feats, summary, self.rows_before)
        return summary


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
    gate = _GateAlongside(spec, raw)
    try:
        outcome.features = feature_stage.build_features(lake, spark, spec, raw, on_table=gate.start)
    except BaseException:
        gate.abandon()
        raise
    seconds["features"] = outcome.features.seconds
    seconds.update({f"features.{k}": v for k, v in outcome.features.seconds_detail.items()})
    log.info("stage features done: %d rows at %s", outcome.features.rows, outcome.features.commit)
    t0 = time.monotonic()
    outcome.validation = gate.finish(lake, outcome.features)
    seconds["validation_wait"] = round(time.monotonic() - t0, 3)
    seconds["validation"] = gate.seconds
    log.info("stage validation done: %s", outcome.validation.headline())
    if not outcome.validation.success:
        raise stages.ValidationFailedError(quality_stage.failure_message(lake, raw, outcome.validation))
    t0 = time.monotonic()
    outcome.published = stages.publish_dataset(lake, spec, raw, outcome.features, outcome.validation)
    seconds["commit_merge"] = round(time.monotonic() - t0, 3)
    log.info("stage publish done: %s at main %s", outcome.published.tag, outcome.published.commit)
    return outcome
