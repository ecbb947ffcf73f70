"""Lineage keys: one name per fact, used as lakeFS commit metadata keys, MLflow run / model-version tags and
Dagster materialization metadata keys alike, so an auditor can follow one name across the three systems.

    lake.commit(branch, message, {keys.RUN_ID: run_id, keys.SPEC: spec.name, ...})
    mlflow.set_tags({keys.LAKEFS_COMMIT: commit, keys.RUN_ID: run_id, ...})
    Output(record, metadata={keys.LAKEFS_COMMIT: MetadataValue.text(commit), ...})

Values are strings in lakeFS and MLflow (JSON text for structured ones, see `dumps`).
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "flywheel."

# -- who and what produced it
RUN_ID = "flywheel.run_id"  # the Dagster run id; a CLI operation's name for `flywheel dataset` commands
STAGE = "flywheel.stage"  # raw | features | validation | published (lakeFS); the asset name elsewhere
KIND = "flywheel.kind"  # dataset | model
SPEC = "flywheel.spec"  # the dataset spec's name
SPEC_HASH = "flywheel.spec_hash"  # hash of the exact spec (pipelines.spec.loader.spec_hash)
CODE_VERSION = "flywheel.code_version"  # git SHA (+"-dirty") or FLYWHEEL_CODE_VERSION

# -- the data version
LAKEFS_REPOSITORY = "flywheel.lakefs.repository"
LAKEFS_COMMIT = "flywheel.lakefs.commit"  # an immutable commit id, never a branch name
LAKEFS_BRANCH = "flywheel.lakefs.branch"  # the run branch (kept for inspection when a gate fails)
DATASET_URI = "flywheel.dataset.uri"  # lakefs://<repository>/<commit>/<path>
DATASET_VERSION = "flywheel.dataset_version"
DATASET_TAG = "flywheel.dataset_tag"
BASE_COMMIT = "flywheel.base_commit"  # the main commit a run started from
FEATURES_PATH = "flywheel.features_path"

# -- what ingestion read
TOPIC = "flywheel.topic"
TOPIC_ID = "flywheel.topic_id"
TOPIC_RESET = "flywheel.topic_reset"
OFFSETS = "flywheel.offsets"  # {partition: next offset} after the run
START_OFFSETS = "flywheel.start_offsets"
OFFSETS_RESET = "flywheel.offsets_reset"  # set by `flywheel dataset reset-offsets` (earliest | latest)
OFFSET_RANGES = "flywheel.offset_ranges"
EVENTS = "flywheel.events"
VALID = "flywheel.valid"
QUARANTINED = "flywheel.quarantined"
ROWS = "flywheel.rows"  # rows of the whole model table at the commit
NEW_ROWS = "flywheel.new_rows"  # rows the run's batch added
BATCH = "flywheel.batch"  # the batch's number in the catalog
DUPLICATES = "flywheel.duplicates_dropped"  # {"in_batch": n, "across_batches": m}
FEATURE_HASH = "flywheel.feature_hash"  # the feature definition the rows were built with
SPLITS = "flywheel.splits"
VALIDATION = "flywheel.validation"  # passed | failed
VALIDATION_SUMMARY = "flywheel.validation_summary"
DATA_DOCS = "flywheel.data_docs"

# -- the model
MLFLOW_RUN_ID = "flywheel.mlflow.run_id"  # the MLflow run that produced the thing tagged
TRAINING_RUN_ID = "flywheel.training_run_id"  # on optimization runs and versions: the training run behind them
MODEL_NAME = "flywheel.model.name"
MODEL_VERSION = "flywheel.model.version"
MODEL_URI = "flywheel.model.uri"
WORLD_SIZE = "flywheel.world_size"
NODES = "flywheel.nodes"
BACKEND = "flywheel.backend"
HARDWARE = "flywheel.hardware"

# -- drift (pipelines.monitoring, sensors/drift.py)
DRIFT_DECISION = "flywheel.drift.decision"  # drift | no drift | insufficient data
DRIFT_COLUMNS = "flywheel.drift.columns"  # JSON list of the drifted columns
DRIFT_REPORT = "flywheel.drift.report"  # path of the HTML report
DRIFT_EVIDENCE = "flywheel.drift.evidence_commit"  # the lakeFS commit holding the drift window

# What a trained model's run and version always carry (pipelines.training.entry sets them).
TRAINING_TAGS = (
    LAKEFS_REPOSITORY,
    LAKEFS_COMMIT,
    DATASET_URI,
    SPEC,
    SPEC_HASH,
    CODE_VERSION,
    RUN_ID,
    WORLD_SIZE,
    NODES,
    BACKEND,
    HARDWARE,
)

DATASET_KIND = "dataset"
MODEL_KIND = "model"


def dumps(value: Any) -> str:
    """A structured value as the text lakeFS metadata and MLflow tags hold (sorted keys: stable diffs)."""
    return json.dumps(value, sort_keys=True)


def dataset_base(spec_name: str, spec_digest: str, run_id: str, topic: str) -> dict[str, str]:
    """The keys every dataset commit of a run carries."""
    return {KIND: DATASET_KIND, SPEC: spec_name, SPEC_HASH: spec_digest, RUN_ID: run_id, TOPIC: topic}


def all_keys() -> list[str]:
    """Every lineage key defined here (for tests and `flywheel lineage`)."""
    return sorted(v for k, v in globals().items() if k.isupper() and isinstance(v, str) and v.startswith(PREFIX))
