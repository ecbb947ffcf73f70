"""Ingestion: Kafka -> raw/quarantine Parquet -> Spark model table -> GX gate -> one merge into lakeFS main.

    from pipelines.ingest import run_ingest            # the whole run, outside Dagster
    from pipelines.ingest import stages                # the four stages the Dagster assets call

Modules: consume (bounded reads from explicit offsets), parse (check + stage Parquet), parallel (reader
processes), stages (write-audit-publish), lag (for the sensor), runner (`python -m pipelines.ingest`).
Names are resolved lazily so reader processes import only what they use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_ingest": "pipelines.ingest.runner",
    "kafka_consumer_factory": "pipelines.ingest.parallel",
    "IngestOutcome": "pipelines.ingest.runner",
    "READER_SETTINGS": "pipelines.ingest.parallel",
    "IngestSettings": "pipelines.ingest.stages",
    "ValidationFailedError": "pipelines.ingest.stages",
    "StaleBaseError": "pipelines.ingest.stages",
    "ingest_raw": "pipelines.ingest.stages",
    "build_features": "pipelines.ingest.stages",
    "validate": "pipelines.ingest.stages",
    "publish_dataset": "pipelines.ingest.stages",
    "read_offsets": "pipelines.ingest.stages",
    "kafka_lag": "pipelines.ingest.lag",
    "Lag": "pipelines.ingest.lag",
    "consume": "pipelines.ingest.consume",
    "true_end_offsets": "pipelines.ingest.consume",
    "OffsetsError": "pipelines.ingest.consume",
    "KafkaConsumerFactory": "pipelines.ingest.parallel",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipelines.ingest' has no attribute {name!r}")
