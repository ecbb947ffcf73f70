"""The batch catalog: what each ingestion batch added to the model table, in the order the batches were published.

One JSON document per spec (`pipelines.layout.batches_path`), committed with the data of every run. Each entry
holds what later runs need without reading the data again:
- where the batch's rows are: its raw files, its model-table files, its event-id index and the id
  filter's parameters (pipelines.features.dedup; absent in batches of format 1: their index is read whole);
- its event-time range (min/max), so a run reads history only from batches that can overlap its window;
- its counts (rows, positive labels, splits, duplicates, valid/quarantined events), from which dataset-level
  checks are computed without rescanning the table;
- the spec hash and the feature-definition hash its rows were built with: a run refuses to append rows
  built with another feature definition (`flywheel dataset rebuild` rebuilds the table instead).
The catalog also keeps the running count of every categorical value (the vocabularies, most frequent first).
The model-table files themselves are never rewritten; only this small document is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import layout
from pipelines.config import setting
from pipelines.errors import FlywheelError
from pipelines.lake import Lake
from pipelines.spec.model import DatasetSpec

CATALOG_FORMAT = 2  # 2 added BatchEntry.id_filter
READABLE_FORMATS = (1, 2)
REBUILD_COMMAND = "flywheel dataset rebuild"


class FeatureDefinitionChangedError(FlywheelError):
    """The model table was built with another feature definition than the spec's: rebuild it first."""


@dataclass
class BatchEntry:
    seq: int
    run_id: str
    spec_hash: str
    feature_hash: str
    raw_paths: list[str]
    feature_paths: list[str]
    id_index: str
    rows: int
    labels: int  # rows with label 1
    min_ts: int | None  # event-time range of the batch's rows (None: no rows)
    max_ts: int | None
    splits: dict[str, int] = field(default_factory=dict)
    raw_rows: int = 0
    duplicates_in_batch: int = 0  # re-sends within the batch
    duplicates_across_batches: int = 0  # ids an earlier batch already published
    valid: int = 0
    quarantined: int = 0
    # {"path", "hash", "layout", "bits", "hashes", "bucket_bits"} of the batch's id filter (features.dedup);
    # None for batches written before it existed
    id_filter: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchEntry:
        return cls(**data)


@dataclass
class Catalog:
    spec: str
    batches: list[BatchEntry] = field(default_factory=list)
    value_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # {categorical: {value: rows}}

    @property
    def next_seq(self) -> int:
        return self.batches[-1].seq + 1 if self.batches else 1

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def labels(self) -> int:
        return sum(b.labels for b in self.batches)

    @property
    def splits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.batches:
            for name, n in b.splits.items():
                out[name] = out.get(name, 0) + n
        return out

    def before(self, seq: int) -> Catalog:
        """The catalog as it was before batch `seq` was added (for checks of that batch)."""
        return Catalog(self.spec, [b for b in self.batches if b.seq < seq], {})

    def overlapping(self, low: int, high: int) -> list[BatchEntry]:
        """Batches with rows whose event time may lie in [low, high]."""
        return [
            b
            for b in self.batches
            if b.rows and b.min_ts is not None and b.max_ts is not None and b.max_ts >= low and b.min_ts <= high
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CATALOG_FORMAT,
            "spec": self.spec,
            "batches": [asdict(b) for b in self.batches],
            "value_counts": self.value_counts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalog:
        if data.get("format") not in READABLE_FORMATS:
            raise FlywheelError(
                f"batch catalog of spec {data.get('spec')!r} has format {data.get('format')!r}, this code reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))}: upgrade Flywheel or run `{REBUILD_COMMAND}`"
            )
        return cls(
            spec=str(data["spec"]),
            batches=[BatchEntry.from_dict(b) for b in data.get("batches", [])],
            value_counts={k: dict(v) for k, v in data.get("value_counts", {}).items()},
        )


def feature_definition(spec: DatasetSpec) -> dict[str, Any]:
    """The parts of a spec that decide the model table's rows: fields, feature types, aggregates, split.
    Thresholds, model and rollout settings do not: changing them needs no rebuild."""
    return {
        "reserved": spec.reserved_fields,
        "entity_key": spec.entity_key,
        "features": [
            {"name": f.name, "type": f.type, "integer": getattr(f, "integer", False), "nullable": f.nullable}
            for f in spec.features
        ],
        "aggregates": [a.model_dump(mode="json") for a in spec.aggregates],
        "split": spec.split.model_dump(mode="json"),
    }


def feature_hash(spec: DatasetSpec) -> str:
    canonical = json.dumps(feature_definition(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read_catalog(lake: Lake, ref: str, spec: DatasetSpec) -> Catalog:
    """The catalog at ref; an empty one before the first batch. A model table without a catalog (written by
    a Flywheel before incremental ingestion) cannot be appended to: the error says to rebuild it."""
    path = layout.batches_path(spec)
    if lake.exists(ref, path):
        return Catalog.from_json(lake.read_json(ref, path))
    if any(p.endswith(".parquet") for p in lake.list_paths(ref, layout.features_prefix(spec))):
        raise FeatureDefinitionChangedError(
            f"the model table under {layout.features_prefix(spec)!r} at {ref!r} has no batch catalog "
            f"({path}): it was built before incremental ingestion. Run `{REBUILD_COMMAND} --spec <spec>` once "
            "to rebuild it from the raw events, then ingest again"
        )
    return Catalog(spec.name)


def check_feature_definition(catalog: Catalog, spec: DatasetSpec) -> None:
    """Refuse to append rows built with another feature definition than the table's last batch."""
    if not catalog.batches:
        return
    spec_reference = setting("FLYWHEEL_SPEC") or spec.name
    last = catalog.batches[-1]
    wanted = feature_hash(spec)
    if last.feature_hash != wanted:
        raise FeatureDefinitionChangedError(
            f"the model table of spec {spec.name!r} was built with feature definition {last.feature_hash} "
            f"(batches 1-{last.seq}, spec hash {last.spec_hash}); this spec defines {wanted} (its fields, "
            "feature types, aggregates or split changed). Appending would mix rows of two definitions: run "
            f"`{REBUILD_COMMAND} --spec {spec_reference}` to rebuild the whole table from the raw events "
            "(published through the same gate), then ingest again"
        )


def value_counts(table: pa.Table, spec: DatasetSpec) -> dict[str, dict[str, int]]:
    """{categorical feature: {value: rows}} of a model-table batch (nulls not counted)."""
    out: dict[str, dict[str, int]] = {}
    for f in spec.categorical_features:
        counts = pc.value_counts(table.column(f.name).drop_null()).to_pylist()
        out[f.name] = {c["values"]: int(c["counts"]) for c in counts}
    return out


def add_counts(total: dict[str, dict[str, int]], batch: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {name: dict(values) for name, values in total.items()}
    for name, values in batch.items():
        into = out.setdefault(name, {})
        for value, n in values.items():
            into[value] = into.get(value, 0) + n
    return out


def vocabularies_from_counts(counts: dict[str, dict[str, int]], spec: DatasetSpec) -> dict[str, list[str]]:
    """{categorical feature: values, most frequent first (ties by name), then unseen allowed values}: the
    vocabularies of the whole table, from the running counts (pipelines.features.build.vocabularies gives
    the same for one table)."""
    vocab: dict[str, list[str]] = {}
    for f in spec.categorical_features:
        seen = sorted(counts.get(f.name, {}).items(), key=lambda vc: (-vc[1], vc[0]))
        values = [v for v, _ in seen]
        values += [v for v in f.values if v not in set(values)]
        vocab[f.name] = values
    return vocab


def split_counts(table: pa.Table) -> dict[str, int]:
    return {s["values"]: int(s["counts"]) for s in table.column(layout.SPLIT_COLUMN).value_counts().to_pylist()}


def time_range(table: pa.Table, spec: DatasetSpec) -> tuple[int | None, int | None]:
    if table.num_rows == 0:
        return None, None
    bounds = pc.min_max(table.column(spec.timestamp)).as_py()
    return int(bounds["min"]), int(bounds["max"])
