"""Where things live in the lakeFS repository, and the columns of the model table.

One place, so ingestion writes exactly what training and evaluation read:

  raw/<topic>/part-<run>-<n>.parquet          valid events, normalized (see pipelines.spec.events)
  quarantine/<topic>/part-<run>-<n>.parquet   rejected events: reason, raw bytes, topic, partition, offset
  features/<spec>/batch-<seq>/part-<n>.parquet  the model table (FEATURE_TABLE_COLUMNS below): the rows of
                                              ingestion batch <seq>, sorted by timestamp, never rewritten
  features/<spec>/_meta/vocabularies.json     {categorical feature: [values, most frequent first]}
  _flywheel/offsets/<topic>.json              {"topic", "topic_id", "offsets": {"<partition>": next offset}}
  _flywheel/validation/<spec>.json            the last validation summary
  _flywheel/batches/<spec>.json               the batch catalog: per batch its raw and model-table files,
                                              event-time range, counts and feature definition (features.batches)
  _flywheel/ids/<spec>/batch-<seq>.parquet    the event ids batch <seq> kept, sorted by hash bucket (features.dedup)
  _flywheel/ids/<spec>/batch-<seq>.bloom      a Bloom filter of those ids (features.dedup)

Model table columns: the spec's event_id, entity_key (when the spec has one), timestamp (epoch ms, int64),
label (int 0/1), every feature (numeric float64/int64, categorical string, boolean bool; nullable where the spec says),
every aggregate (float64), and SPLIT_COLUMN with values train | validation | test.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

MAIN_BRANCH = "main"
SPLIT_COLUMN = "split"
SPLITS = ("train", "validation", "test")
OFFSETS_PREFIX = "_flywheel/offsets/"
VALIDATION_PREFIX = "_flywheel/validation/"
BATCHES_PREFIX = "_flywheel/batches/"
ID_INDEX_PREFIX = "_flywheel/ids/"
# Provenance columns added to every raw row: where in Kafka the event came from.
PARTITION_COLUMN = "_kafka_partition"
OFFSET_COLUMN = "_kafka_offset"


def raw_prefix(spec: DatasetSpec) -> str:
    return f"raw/{spec.topic.name}/"


def quarantine_prefix(spec: DatasetSpec) -> str:
    return f"quarantine/{spec.topic.name}/"


def features_prefix(spec: DatasetSpec) -> str:
    return f"features/{spec.name}/"


def feature_batch_prefix(spec: DatasetSpec, seq: int) -> str:
    """The model-table files of one ingestion batch: written once by its run, never rewritten."""
    return f"{features_prefix(spec)}batch-{seq:08d}/"


def batches_path(spec: DatasetSpec) -> str:
    return f"{BATCHES_PREFIX}{spec.name}.json"


def id_index_prefix(spec: DatasetSpec) -> str:
    return f"{ID_INDEX_PREFIX}{spec.name}/"


def id_index_path(spec: DatasetSpec, seq: int) -> str:
    return f"{id_index_prefix(spec)}batch-{seq:08d}.parquet"


def id_filter_path(spec: DatasetSpec, seq: int) -> str:
    return f"{id_index_prefix(spec)}batch-{seq:08d}.bloom"


def vocabularies_path(spec: DatasetSpec) -> str:
    return f"{features_prefix(spec)}_meta/vocabularies.json"


def offsets_path(spec: DatasetSpec) -> str:
    return f"{OFFSETS_PREFIX}{spec.topic.name}.json"


def feature_table_columns(spec: DatasetSpec) -> list[str]:
    return [*spec.event_fields, *(a.name for a in spec.aggregates), SPLIT_COLUMN]


def feature_arrow_type(feature: NumericFeature | CategoricalFeature | BooleanFeature) -> pa.DataType:
    if isinstance(feature, NumericFeature):
        return pa.int64() if feature.integer else pa.float64()
    if isinstance(feature, CategoricalFeature):
        return pa.string()
    return pa.bool_()


def raw_schema(spec: DatasetSpec) -> pa.Schema:
    """Normalized event columns (see pipelines.spec.events) plus Kafka provenance."""
    fields = [
        *event_schema(spec),
        pa.field(PARTITION_COLUMN, pa.int32(), nullable=False),
        pa.field(OFFSET_COLUMN, pa.int64(), nullable=False),
    ]
    return pa.schema(fields)


def event_schema(spec: DatasetSpec) -> pa.Schema:
    """The event columns (`spec.event_fields`) in their stored types."""
    types = {spec.event_id: pa.string(), spec.timestamp: pa.int64(), spec.label: pa.int32()}
    if spec.entity_key:
        types[spec.entity_key] = pa.string()
    reserved = [pa.field(name, types[name], nullable=False) for name in spec.reserved_fields]
    return pa.schema(
        [*reserved, *(pa.field(f.name, feature_arrow_type(f), nullable=f.nullable) for f in spec.features)]
    )
