"""The run branch every ingestion stage writes on (`ingest-<run id>`) and the lineage keys every dataset commit
of a run carries: shared by the stage packages (ingest, features, quality) so none imports another's."""

from __future__ import annotations

from pipelines.lake import MAIN, Lake, WriteAuditPublish
from pipelines.lineage import keys
from pipelines.spec.loader import spec_hash
from pipelines.spec.model import DatasetSpec

BRANCH_PREFIX = "ingest"


def base_metadata(spec: DatasetSpec, run_id: str) -> dict[str, str]:
    return keys.dataset_base(spec.name, spec_hash(spec), run_id, spec.topic.name)


def run_wap(lake: Lake, run_id: str) -> WriteAuditPublish:
    """The run's write-audit-publish branch (ingest-<run id>), into main."""
    return lake.wap(run_id, BRANCH_PREFIX, MAIN)
