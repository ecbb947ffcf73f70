"""`flywheel dataset rebuild`: the whole model table rebuilt from raw history in one run, published through the
same gate as an ingestion (write-audit-publish: `main` is untouched when the gate fails).

Needed after a change of the spec's feature definition (fields, feature types, aggregates, split: a normal
run refuses to append rows built with another definition, see pipelines.features.batches), and useful to
verify that the incremental table equals a full build. It reads no Kafka: the offsets stay where they are.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.features.rebuild import rebuild_table
from pipelines.ingest.offsets import read_stored_offsets
from pipelines.ingest.runner import IngestOutcome
from pipelines.ingest.stages import ValidationFailedError, publish_dataset, recover_tag
from pipelines.lake import MAIN, Lake
from pipelines.lineage.records import RawBatch
from pipelines.quality import stage as quality_stage
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)


def rebuild_dataset(lake: Lake, spark: Any, spec: DatasetSpec, run_id: str) -> IngestOutcome:
    """Rebuild features/<spec>/ from every recorded batch on branch ingest-<run_id>, validate the whole
    table, merge into main and tag a new dataset version. Raises ValidationFailedError on a failed gate."""
    lake.ensure_repository()
    recover_tag(lake, spec)
    base = lake.resolve(MAIN)
    stored = read_stored_offsets(lake, base, spec)
    offsets = {str(p): o for p, o in sorted(stored.offsets.items())}
    feats = rebuild_table(lake, spark, spec, run_id, base)
    raw = RawBatch(
        run_id=run_id,
        spec=spec.name,
        topic=spec.topic.name,
        base_commit=base,
        branch=feats.branch,
        commit=feats.commit,
        start_offsets=offsets,
        next_offsets=offsets,
        offset_ranges={},
        events=0,  # no event read from Kafka
        valid=0,
        quarantined=0,
        reasons={},
        raw_paths=[],
        quarantine_paths=[],
        stopped_by="rebuild",
        seconds={},
        topic_id=stored.topic_id,
        spec_config=spec.model_dump(mode="json"),
    )
    outcome = IngestOutcome(raw=raw, features=feats, seconds={"features": feats.seconds})
    log.info("rebuilt %d rows from %d raw rows on %s", feats.rows, feats.raw_rows, feats.branch)
    outcome.validation = quality_stage.validate(lake, spec, raw, feats)
    if not outcome.validation.success:
        raise ValidationFailedError(quality_stage.failure_message(lake, raw, outcome.validation))
    outcome.published = publish_dataset(lake, spec, raw, feats, outcome.validation)
    return outcome
