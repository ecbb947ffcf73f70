"""The vocabulary every stage shares: the typed records that pass between stages (`records`) and the one
set of lineage keys used alike for lakeFS commit metadata, MLflow tags and Dagster metadata (`keys`).

Later stages and `flywheel lineage` read both from here, so a commit, a run and a materialization that
describe the same thing use the same names.
"""

from pipelines.lineage import keys
from pipelines.lineage.records import (
    RECORD_TYPES,
    DatasetVersion,
    Deployment,
    Evaluation,
    FeatureBatch,
    OptimizedModel,
    RawBatch,
    Record,
    TrainedModel,
    record_from_json,
    record_to_json,
)

__all__ = [
    "RECORD_TYPES",
    "DatasetVersion",
    "Deployment",
    "Evaluation",
    "FeatureBatch",
    "OptimizedModel",
    "RawBatch",
    "Record",
    "TrainedModel",
    "keys",
    "record_from_json",
    "record_to_json",
]
